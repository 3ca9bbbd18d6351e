"""Channels, consent states and suppression reasons."""

from __future__ import annotations

from enum import StrEnum

from .errors import FieldError


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    WEBPUSH = "webpush"
    WHATSAPP = "whatsapp"
    VOICE = "voice"
    WEBHOOK = "webhook"
    INAPP = "inapp"


class ConsentStatus(StrEnum):
    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"
    PENDING_CONFIRMATION = "pending_confirmation"


class SuppressionReason(StrEnum):
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    MANUAL = "manual"
    ERASED = "erased"


ALL_TOPICS = "*"  # consent for every topic of a channel


def parse_enum(enum_type: type[StrEnum], raw: object, field_name: str):
    try:
        return enum_type(str(raw).strip().lower())
    except ValueError:
        allowed = ", ".join(m.value for m in enum_type)
        raise FieldError(field_name, f"{raw!r} is not one of: {allowed}") from None

"""Channels, consent states and suppression reasons."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
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


# What the proof of a consent may hold (GDPR Art. 7(1): the controller must be able to show it). ``source`` is
# where the consent was first given as another system recorded it ("Mailchimp: signup form"); the ledger's own
# source column says how it reached Clarion (api, import, unsubscribe_link ...).
PROOF_FIELDS = ("form", "ip", "user_agent", "text_version", "text", "url", "confirmed_at", "keyword", "campaign_id",
                "source")

# The channel each address suppression covers: an email address, or a phone number for the phone channels.
ADDRESS_OF_CHANNEL = {Channel.EMAIL: "email", Channel.SMS: "phone", Channel.WHATSAPP: "phone",
                      Channel.VOICE: "phone"}

# Statuses as other tools export them (listmonk: confirmed/unconfirmed/unsubscribed; Mailchimp: subscribed/
# unsubscribed/pending; yes/no columns of spreadsheets), all lower case.
_STATUS_WORDS = {
    ConsentStatus.OPTED_IN: ("opted_in", "opt_in", "optin", "opt-in", "subscribed", "confirmed", "yes", "y",
                             "true", "1", "granted"),
    ConsentStatus.OPTED_OUT: ("opted_out", "opt_out", "optout", "opt-out", "unsubscribed", "no", "n", "false",
                              "0", "revoked", "withdrawn"),
    ConsentStatus.PENDING_CONFIRMATION: ("pending_confirmation", "pending", "unconfirmed"),
}
STATUS_SYNONYMS = {word: status for status, words in _STATUS_WORDS.items() for word in words}


def parse_consent_status(raw: object, field_name: str = "status") -> ConsentStatus:
    """A consent status from its own name or a common synonym (``subscribed``, ``unconfirmed``, ``yes`` ...)."""
    status = STATUS_SYNONYMS.get(str(raw).strip().lower())
    if status is None:
        raise FieldError(field_name, f"{raw!r} is not a consent status; use opted_in, opted_out or "
                                     "pending_confirmation (subscribed, unsubscribed, unconfirmed, yes and no "
                                     "are read as those)")
    return status


@dataclass(frozen=True)
class ConsentChange:
    """A consent to record for a contact, as an import row or a command states it."""

    channel: Channel
    status: ConsentStatus
    topic: str = ALL_TOPICS
    occurred_at: datetime | None = None  # when it was given; None: not stated (recorded as now)
    proof: Mapping[str, str] = field(default_factory=dict)

    @property
    def has_dated_proof(self) -> bool:
        return self.occurred_at is not None and bool(self.proof)


@dataclass(frozen=True)
class Blocker:
    """What stands against an opt-in: an opt-out recorded earlier, or a suppression of the address."""

    what: str  # "email opted out of newsletter", "email address suppressed (unsubscribe)"
    since: datetime
    liftable: bool = True  # False: no consent can lift it (a hard bounce, a complaint, a manual suppression)


def opt_in_refusal(change: ConsentChange, blockers: list[Blocker]) -> str | None:
    """Why ``change`` may not replace an opt-out or a suppression, or None when it may.

    An opt-out always goes through. Anything else goes over a recorded opt-out or an unsubscribe only with a
    proof dated after it: an old export must not re-subscribe people who left since. A bounce, a complaint or
    a manual suppression is never lifted by a consent: someone must look at the address.
    """
    if change.status == ConsentStatus.OPTED_OUT:
        return None
    for blocker in blockers:
        since = f"{blocker.since:%Y-%m-%d %H:%M} UTC"
        if not blocker.liftable:
            return f"{blocker.what} since {since}; a consent does not lift it (check the address, then " \
                   "`clarion suppressions remove`)"
        if not change.has_dated_proof:
            return f"{blocker.what} since {since}; opting in again needs a dated proof newer than that " \
                   "(a consent date and a proof such as the form or the consent text version)"
        if change.occurred_at <= blocker.since:
            return f"{blocker.what} since {since}, after this consent of {change.occurred_at:%Y-%m-%d %H:%M} UTC"
    return None

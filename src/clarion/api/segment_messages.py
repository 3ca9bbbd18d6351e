"""Segment Tracking API messages → Clarion calls, without I/O.

Shapes follow https://segment.com/docs/connections/spec/ : ``userId``/``anonymousId``, ``traits``
(identify), ``event``/``properties`` (track), ``name``/``category`` (page, screen), ``messageId``,
``timestamp``, ``originalTimestamp``, ``sentAt``, ``context``. What Clarion does with each type:

- identify: create or update the contact, traits normalised by ``parse_traits``;
- track: store the event (idempotent by ``messageId``);
- page / screen: stored as the events "Page Viewed" / "Screen Viewed", with ``name`` and
  ``category`` added to the properties;
- group, alias: accepted (so SDKs do not retry them) and ignored; Clarion has no accounts, and
  merging happens when an identify or track carries both ``userId`` and ``anonymousId``.

``context`` is accepted and not stored. Times: ``timestamp`` when given; otherwise
``originalTimestamp`` corrected for the sender's clock skew (``receivedAt - (sentAt -
originalTimestamp)``, as Segment does), or as is without ``sentAt``; otherwise the time received.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..domain.errors import FieldError
from ..domain.events import check_event_name, check_properties, parse_timestamp, purchase_of
from ..domain.traits import parse_traits
from ..services.identity import Identifiers
from ..services.ingestion import IdentifyCall, TrackCall
from .errors import loc_to_field

MAX_USER_ID = 255  # contacts.external_id
MAX_ANONYMOUS_ID = 320  # identities.value
MAX_MESSAGE_ID = 200  # events.message_id
PAGE_VIEWED = "Page Viewed"
SCREEN_VIEWED = "Screen Viewed"
IGNORED_TYPES = ("group", "alias")


class SegmentMessage(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: str | None = None
    user_id: str | int | None = Field(None, alias="userId")
    anonymous_id: str | int | None = Field(None, alias="anonymousId")
    message_id: str | int | None = Field(None, alias="messageId")
    timestamp: str | None = None
    original_timestamp: str | None = Field(None, alias="originalTimestamp")
    sent_at: str | None = Field(None, alias="sentAt")
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None


class IdentifyMessage(SegmentMessage):
    traits: dict[str, Any] | None = None


class TrackMessage(SegmentMessage):
    event: str | None = None
    properties: dict[str, Any] | None = None


class PageMessage(SegmentMessage):
    name: str | None = None
    category: str | None = None
    properties: dict[str, Any] | None = None


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    batch: list[dict[str, Any]]
    sent_at: str | None = Field(None, alias="sentAt")
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    write_key: str | None = Field(None, alias="writeKey")


M = TypeVar("M", bound=BaseModel)
MODELS: dict[str, type[SegmentMessage]] = {
    "identify": IdentifyMessage, "track": TrackMessage, "page": PageMessage, "screen": PageMessage,
    "group": SegmentMessage, "alias": SegmentMessage,
}


def validate(model: type[M], data: Any) -> M:
    """The model, or the first problem as a FieldError (the API's 422)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise FieldError(loc_to_field(("body", *first["loc"])), first["msg"]) from None


@dataclass(frozen=True)
class Parser:
    """Parses messages of one request: they share its receive time and the batch's ``sentAt``."""

    received_at: datetime
    default_region: str
    batch_sent_at: str | None = None

    def parse(self, kind: str, data: dict[str, Any]) -> IdentifyCall | TrackCall | None:
        model = MODELS.get(kind)
        if model is None:
            raise FieldError("type", f"{kind!r} is not one of: {', '.join(MODELS)}")
        message = validate(model, data)
        if kind in IGNORED_TYPES:
            return None
        ids = identifiers(message)
        if isinstance(message, IdentifyMessage):
            return self._identify(ids, message)
        event, properties = _event_name(kind, message), _properties(kind, message)
        purchase_of(event, properties)  # a bad revenue or currency is refused before any write
        return TrackCall(ids=ids, event=event, message_id=_message_id(message),
                         occurred_at=self.occurred_at(message), received_at=self.received_at,
                         properties=properties)

    def _identify(self, ids: Identifiers, message: IdentifyMessage) -> IdentifyCall:
        traits = message.traits or {}
        try:  # validated here so a bad trait names its place; the service parses again
            parse_traits(traits, default_region=self.default_region)
        except FieldError as exc:
            raise FieldError(f"traits.{exc.field}", exc.reason) from None
        return IdentifyCall(ids=ids, traits=traits)

    def occurred_at(self, message: SegmentMessage) -> datetime:
        try:
            if message.timestamp:
                return parse_timestamp(message.timestamp, "timestamp")
            if not message.original_timestamp:
                return self.received_at
            original = parse_timestamp(message.original_timestamp, "originalTimestamp")
            sent_raw = message.sent_at or self.batch_sent_at
            if not sent_raw:
                return original
            return self.received_at - (parse_timestamp(sent_raw, "sentAt") - original)
        except OverflowError:
            raise FieldError("timestamp", "the time is out of range") from None


def identifiers(message: SegmentMessage) -> Identifiers:
    ids = Identifiers(external_id=_text_id(message.user_id, "userId", MAX_USER_ID),
                      anonymous_id=_text_id(message.anonymous_id, "anonymousId", MAX_ANONYMOUS_ID))
    ids.require_any()
    return ids


def _text_id(raw: str | int | None, field: str, limit: int) -> str | None:
    if raw is None:
        return None
    text = str(raw).strip()
    if len(text) > limit:
        raise FieldError(field, f"longer than {limit} characters")
    return text or None


def _message_id(message: SegmentMessage) -> str:
    text = _text_id(message.message_id, "messageId", MAX_MESSAGE_ID)
    return text or str(uuid.uuid4())


def _event_name(kind: str, message: SegmentMessage) -> str:
    if kind == "page":
        return PAGE_VIEWED
    if kind == "screen":
        return SCREEN_VIEWED
    return check_event_name(getattr(message, "event", None))


def _properties(kind: str, message: SegmentMessage) -> dict[str, Any]:
    properties = dict(getattr(message, "properties", None) or {})
    if kind in ("page", "screen"):
        for key in ("name", "category"):
            value = getattr(message, key, None)
            if value is not None:
                properties.setdefault(key, value)
    return check_properties(properties)  # the limits the other entry points apply too

"""The native REST API for events (admin keys): list and record."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ..bootstrap import Clarion
from ..domain.errors import FieldError
from ..domain.events import EventInput, check_event_name, check_properties, parse_timestamp, purchase_of
from ..domain.profiles import clean_text, normalize_email, normalize_phone
from ..services.clock import utcnow
from ..services.identity import Identifiers
from .auth import ClarionDep, require_admin
from .params import MAX_ID, Limit, Offset, OptionalContactId

router = APIRouter(prefix="/api/events", tags=["Events"], dependencies=[Depends(require_admin)])


class EventBody(BaseModel):
    """One event for a contact named by ``contact_id`` or by identifiers (created if unknown)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    contact_id: int | None = Field(None, ge=1, le=MAX_ID)
    external_id: str | None = None
    email: str | None = None
    phone: str | None = None
    anonymous_id: str | None = Field(None, max_length=320)
    properties: dict[str, Any] = Field(default_factory=dict)
    occurred_at: str | None = Field(None, description="ISO 8601; the time received when omitted")
    message_id: str | None = Field(None, max_length=200,
                                   description="Idempotency key; generated when omitted")


def time_param(raw: str | None, field: str) -> datetime | None:
    if raw is None or not raw.strip():
        return None
    try:
        return parse_timestamp(raw, field)
    except OverflowError:
        raise FieldError(field, "the time is out of range") from None


def _identifiers(clarion: Clarion, body: EventBody) -> Identifiers:
    region = clarion.settings.default_phone_region
    ids = Identifiers(
        external_id=clean_text(body.external_id, "external_id", 255) if body.external_id else None,
        email=normalize_email(body.email) if body.email else None,
        phone=normalize_phone(body.phone, region) if body.phone else None,
        anonymous_id=(body.anonymous_id or "").strip() or None)
    if not ids.pairs():
        raise FieldError("contact_id", "give contact_id or one of external_id, email, phone, anonymous_id")
    return ids


def _event_input(body: EventBody) -> EventInput:
    try:
        name = check_event_name(body.name)
    except FieldError as exc:
        raise FieldError("name", exc.reason) from None
    now = utcnow()
    properties = check_properties(body.properties)  # integers beyond 64 bits are stored as /v1 stores them
    purchase_of(name, properties)
    return EventInput(name=name, message_id=(body.message_id or "").strip() or str(uuid.uuid4()),
                      occurred_at=time_param(body.occurred_at, "occurred_at") or now, received_at=now,
                      properties=properties)


@router.get("", summary="Events, newest first")
def list_events(clarion: ClarionDep, contact_id: OptionalContactId = None, name: str | None = None,
                since: str | None = None, until: str | None = None,
                limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
    start, end = time_param(since, "since"), time_param(until, "until")
    with clarion.store.read() as conn:
        total, items = clarion.events.list(conn, contact_id=contact_id, name=name, since=start, until=end,
                                           limit=limit, offset=offset)
    return {"total": total, "limit": limit, "offset": offset, "items": items}


@router.post("", status_code=201, summary="Record an event (idempotent by message_id)",
             responses={200: {"description": "A replay of a message id already stored"}})
def record(clarion: ClarionDep, body: EventBody) -> JSONResponse:
    item = _event_input(body)
    ids = None if body.contact_id is not None else _identifiers(clarion, body)
    with clarion.store.write() as conn:
        if ids is None:
            clarion.contacts.require(conn, body.contact_id)
            item.contact_id = body.contact_id
        else:
            item.contact_id = clarion.contacts.resolve(conn, ids)
        result = clarion.events.ingest(conn, [item])
    duplicate = result.inserted == 0
    body = {"contact_id": item.contact_id, "message_id": item.message_id, "duplicate": duplicate}
    return JSONResponse(body,
                        status_code=200 if duplicate else 201)

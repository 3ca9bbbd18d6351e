"""The native REST API for consent (admin keys): per-contact state and ledger, topics, suppressions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from ..domain.consent import ALL_TOPICS, Channel, SuppressionReason, parse_enum
from ..domain.errors import FieldError, NotFound
from ..services.consent import address_of, requested_status
from .auth import ClarionDep, require_admin
from .events import time_param
from .params import ContactId, Limit, Offset

router = APIRouter(prefix="/api", tags=["Consent"], dependencies=[Depends(require_admin)])


class ConsentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(description=f"One of: {', '.join(c.value for c in Channel)}")
    topic: str = Field(ALL_TOPICS, description="A topic key, or '*' for every topic of the channel")
    status: str = Field(description="opted_in or opted_out (pending_confirmation on a double opt-in topic)")
    source: str = Field("api", max_length=64)
    proof: dict[str, Any] = Field(default_factory=dict)
    occurred_at: str | None = None


class ConfirmBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str
    topic: str
    source: str = Field("api", max_length=64)
    proof: dict[str, Any] = Field(default_factory=dict)


class TopicBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    name: str = Field("", max_length=200)
    description: str | None = None
    double_opt_in: bool = False


class SuppressionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str | None = None
    phone: str | None = None
    reason: str = "manual"
    note: str | None = None


@router.get("/contacts/{contact_id}/consent", summary="Current consent state and the full ledger")
def get_consent(clarion: ClarionDep, contact_id: ContactId) -> dict[str, Any]:
    with clarion.store.read() as conn:
        clarion.contacts.require(conn, contact_id)
        state = [{"channel": c, "topic": t, "status": s}
                 for (c, t), s in sorted(clarion.consent.state(conn, contact_id).items())]
        return {"contact_id": contact_id, "state": state, "ledger": clarion.consent.ledger(conn, contact_id)}


@router.post("/contacts/{contact_id}/consent", status_code=201, summary="Record a consent change")
def record_consent(clarion: ClarionDep, contact_id: ContactId, body: ConsentBody) -> dict[str, Any]:
    channel, status = parse_enum(Channel, body.channel, "channel"), requested_status(body.status)
    occurred_at = time_param(body.occurred_at, "occurred_at")
    with clarion.store.write() as conn:
        clarion.contacts.require(conn, contact_id)
        topic = clarion.consent.require_topic(conn, body.topic)
        return clarion.consent.record(conn, contact_id, channel, status, topic=topic, source=body.source,
                                      proof=body.proof, occurred_at=occurred_at)


@router.post("/contacts/{contact_id}/consent/confirm", summary="Confirm a pending double opt-in")
def confirm_consent(clarion: ClarionDep, contact_id: ContactId, body: ConfirmBody) -> dict[str, Any]:
    channel = parse_enum(Channel, body.channel, "channel")
    with clarion.store.write() as conn:
        clarion.contacts.require(conn, contact_id)
        topic = clarion.consent.require_topic(conn, body.topic)
        return clarion.consent.confirm(conn, contact_id, channel, topic, source=body.source, proof=body.proof)


@router.get("/topics", summary="Subscription topics")
def list_topics(clarion: ClarionDep) -> dict[str, Any]:
    with clarion.store.read() as conn:
        return {"items": clarion.consent.list_topics(conn)}


@router.post("/topics", status_code=201, summary="Create a subscription topic")
def create_topic(clarion: ClarionDep, body: TopicBody) -> dict[str, Any]:
    with clarion.store.write() as conn:
        return clarion.consent.create_topic(conn, body.key, body.name, description=body.description,
                                            double_opt_in=body.double_opt_in)


@router.get("/suppressions", summary="The suppression list, or the entry of one email or phone")
def list_suppressions(clarion: ClarionDep, email: str | None = None, phone: str | None = None,
                      kind: str | None = None, limit: Limit = 100,
                      offset: Offset = 0) -> dict[str, Any]:
    with clarion.store.read() as conn:
        if email or phone:
            entry = clarion.consent.suppression(conn, *address_of(email, phone, clarion.settings.default_phone_region))
            items = [entry] if entry else []
            return {"total": len(items), "limit": limit, "offset": 0, "items": items}
        if kind is not None and kind not in ("email", "phone"):
            raise FieldError("kind", "must be 'email' or 'phone'")
        total, items = clarion.consent.list_suppressions(conn, kind=kind, limit=limit, offset=offset)
    return {"total": total, "limit": limit, "offset": offset, "items": items}


@router.post("/suppressions", status_code=201, summary="Suppress an email or phone (first reason kept)")
def add_suppression(clarion: ClarionDep, body: SuppressionBody) -> dict[str, Any]:
    kind, address = address_of(body.email, body.phone, clarion.settings.default_phone_region)
    reason = parse_enum(SuppressionReason, body.reason, "reason")
    if reason == SuppressionReason.ERASED:
        raise FieldError("reason", "'erased' is set by GDPR erasure only")
    with clarion.store.write() as conn:
        clarion.consent.suppress(conn, kind, address, reason, body.note)
        return clarion.consent.suppression(conn, kind, address) or {}


@router.delete("/suppressions", status_code=204, summary="Lift the suppression of an email or phone")
def remove_suppression(clarion: ClarionDep, email: str | None = None, phone: str | None = None) -> Response:
    kind, address = address_of(email, phone, clarion.settings.default_phone_region)
    with clarion.store.write() as conn:
        if not clarion.consent.unsuppress(conn, kind, address):
            raise NotFound(f"liftable suppression of {kind}", address)
    return Response(status_code=204)

"""Twilio's webhooks: inbound texts, delivery receipts and call statuses, accepted only when signed.

The signature covers the URL Twilio called, which is ``CLARION_PUBLIC_URL`` + the path and query (so it
holds behind a proxy), and the form parameters. A missing or wrong signature answers 403 and changes
nothing. Configure the Messaging Service's inbound URL as ``{public_url}/hooks/twilio/sms`` and let
Clarion set each message's and call's status callback (``CLARION_TWILIO_STATUS_CALLBACKS``).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response

from ..channels.sms_twilio import verify_signature
from ..services.sms_inbound import call_status, delivery_receipt, inbound_text
from .auth import ClarionDep
from .body import read_limited

router = APIRouter(prefix="/hooks/twilio", tags=["Webhooks"])
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_FORM = 64 * 1024  # bytes: a Twilio webhook is a few hundred


async def _signed_form(request: Request, token: str) -> dict[str, str] | None:
    """The form, when Twilio signed it; a body over :data:`MAX_FORM` answers 413 before it is all read."""
    body = await read_limited(request, MAX_FORM)
    if not token:
        return None
    # Parsed here rather than with request.form(), which would need python-multipart for a plain form.
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    public = str(request.app.state.clarion.settings.public_url).rstrip("/")
    url = public + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    signature = request.headers.get("x-twilio-signature", "")
    return form if signature and verify_signature(token, url, form, signature) else None


@router.post("/sms", summary="An inbound text: STOP and START keywords change SMS consent")
async def inbound(clarion: ClarionDep, request: Request) -> Response:
    form = await _signed_form(request, clarion.settings.twilio_auth_token)
    if form is None:
        return Response("invalid signature", status_code=403)
    with clarion.store.write() as conn:
        inbound_text(conn, clarion.consent, form.get("From", ""), form.get("Body", ""))
    # Empty TwiML: Twilio's own opt-out handling already answers STOP with its confirmation text.
    return Response(EMPTY_TWIML, media_type="application/xml")


@router.post("/sms/status", summary="A delivery receipt for a text Clarion sent")
async def status(clarion: ClarionDep, request: Request, message_id: str = "") -> Response:
    return await _status(clarion, request, message_id, delivery_receipt)


@router.post("/voice/status", summary="A status of a call Clarion placed (answered, completed, busy, failed ...)")
async def voice_status(clarion: ClarionDep, request: Request, message_id: str = "") -> Response:
    return await _status(clarion, request, message_id, call_status)


async def _status(clarion, request: Request, message_id: str, record: Callable[..., bool]) -> Response:
    """A signed status callback, recorded on the delivery ``message_id`` names (404 when none does)."""
    form = await _signed_form(request, clarion.settings.twilio_auth_token)
    if form is None:
        return Response("invalid signature", status_code=403)
    with clarion.store.write() as conn:
        found = record(conn, clarion.consent, message_id[:250], form)
    return Response(status_code=204 if found else 404)

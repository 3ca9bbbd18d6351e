"""Meta's WhatsApp webhook: the subscription handshake (GET) and signed notifications (POST).

Configure the app's WhatsApp webhook (App Dashboard > WhatsApp > Configuration) with the callback URL
``{public_url}/hooks/whatsapp``, the verify token ``CLARION_WHATSAPP_VERIFY_TOKEN``, and subscribe to the
``messages`` field. https://developers.facebook.com/docs/graph-api/webhooks/getting-started

- GET: Meta sends ``hub.mode=subscribe``, ``hub.verify_token`` and ``hub.challenge``; the challenge is
  echoed as text/plain when the token matches, else 403.
- POST: ``X-Hub-Signature-256`` is "sha256=" + the hex HMAC-SHA256 of the raw body with the app secret
  (``CLARION_WHATSAPP_APP_SECRET``). Missing, wrong or unconfigured: 403 and nothing changes. The body is
  read only up to :data:`MAX_BODY`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import asdict
from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from ..services.whatsapp_inbound import WhatsAppInbound
from .auth import ClarionDep

router = APIRouter(prefix="/hooks/whatsapp", tags=["Webhooks"])
SIGNATURE_HEADER = "X-Hub-Signature-256"
MAX_BODY = 3 * 1024 * 1024  # bytes: "webhook payloads can be up to 3MB" (Cloud API webhooks docs)
MAX_CHALLENGE = 256  # characters: Meta's challenge is a short integer


def signature(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends with ``body``."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(app_secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of the header against the raw body; never true without a configured secret."""
    if not app_secret or not header:
        return False
    return hmac.compare_digest(signature(app_secret, body).encode(), header.strip().encode())


@router.get("", summary="Meta's webhook subscription handshake", response_class=PlainTextResponse)
def handshake(clarion: ClarionDep, mode: Annotated[str, Query(alias="hub.mode")] = "",
              token: Annotated[str, Query(alias="hub.verify_token")] = "",
              challenge: Annotated[str, Query(alias="hub.challenge", max_length=MAX_CHALLENGE)] = "") -> Response:
    expected = clarion.settings.whatsapp_verify_token
    if mode != "subscribe" or not expected or not hmac.compare_digest(expected.encode(), token.encode()):
        return PlainTextResponse("verification failed", status_code=403)
    return PlainTextResponse(challenge)


@router.post("", summary="WhatsApp notifications: inbound messages and message statuses")
async def notifications(clarion: ClarionDep, request: Request) -> Response:
    body = await _bounded_body(request)
    if body is None:
        return PlainTextResponse("payload too large", status_code=413)
    if not verify_signature(clarion.settings.whatsapp_app_secret, body, request.headers.get(SIGNATURE_HEADER)):
        return PlainTextResponse("invalid signature", status_code=403)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return PlainTextResponse("the body is not JSON", status_code=400)
    if not isinstance(payload, dict):
        return PlainTextResponse("the body is not a JSON object", status_code=400)
    inbound = WhatsAppInbound(clarion.contacts, clarion.events, clarion.consent)
    with clarion.store.write() as conn:
        summary = inbound.process(conn, payload)
    return JSONResponse(asdict(summary))


async def _bounded_body(request: Request) -> bytes | None:
    """The raw body (the signature covers these exact bytes), or None past :data:`MAX_BODY`."""
    declared = request.headers.get("content-length", "")
    if declared.isdecimal() and int(declared) > MAX_BODY:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)

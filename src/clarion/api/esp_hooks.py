"""Email service providers' feedback webhooks: Amazon SES through SNS, and SendGrid's Event Webhook.

Both routes are public and authenticated by signature only (docs/channels/ses.md, docs/channels/sendgrid.md):

- ``POST /hooks/ses``: an SNS message whose signature verifies against Amazon's certificate
  (tracking.sns). A ``SubscriptionConfirmation`` is confirmed by fetching its ``SubscribeURL``; a
  ``Notification`` carries SES feedback (services.esp_events). Topics outside ``ses_topic_arns`` (when it
  is set) are refused before anything is fetched.
- ``POST /hooks/sendgrid``: a batch of events signed with ECDSA by SendGrid (tracking.sendgrid), the
  timestamp within ten minutes of Clarion's clock.

A missing or bad signature answers 403 and changes nothing. A signing certificate that cannot be fetched
answers 502, so SNS tries again later. Verified events answer 200 with what they did (``recorded``,
``replayed``, ``unknown``, ``ignored``), also for messages Clarion did not send, so no ESP retries them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..bootstrap import Clarion
from ..services.clock import utcnow
from ..services.esp_events import EspEvent, EspEventService, Tally, sendgrid_event, ses_event
from ..tracking import sendgrid
from ..tracking.sns import FetchFailed, HttpsFetcher, Route, SnsRejected, SnsVerifier, UrlPolicy
from .auth import ClarionDep
from .body import KB, read_limited

log = logging.getLogger("clarion.api.esp")
router = APIRouter(prefix="/hooks", tags=["Webhooks"])
# Bytes. SNS messages are at most 256 KB; inside the SNS envelope the SES JSON is a string, escaped, so
# the body can approach twice that. SendGrid posts a batch "when the batch size reaches 768 kilobytes"
# (Event Webhook docs), so a batch can pass 768 KB by one event.
MAX_SES_BODY = 1024 * KB
MAX_SENDGRID_BODY = 1024 * KB


@router.post("/ses", summary="Amazon SES feedback (bounces, complaints, deliveries) through Amazon SNS")
async def ses(clarion: ClarionDep, request: Request) -> Response:
    body = await read_limited(request, MAX_SES_BODY)
    verifier = sns_verifier(request.app, clarion)
    return await run_in_threadpool(_ses, clarion, verifier, body)


@router.post("/sendgrid", summary="SendGrid's Event Webhook (deliveries, bounces, drops, spam reports)")
async def sendgrid_events(clarion: ClarionDep, request: Request) -> Response:
    body = await read_limited(request, MAX_SENDGRID_BODY)
    signature = request.headers.get(sendgrid.SIGNATURE_HEADER)
    timestamp = request.headers.get(sendgrid.TIMESTAMP_HEADER)
    return await run_in_threadpool(_sendgrid, clarion, body, signature, timestamp)


def sns_verifier(app: FastAPI, clarion: Clarion) -> SnsVerifier:
    """The app's verifier, built once: it keeps the certificates it fetched."""
    verifier = getattr(app.state, "sns_verifier", None)
    if verifier is None:
        settings = clarion.settings
        policy = UrlPolicy(Route.parse(settings.ses_certificate_resolve))
        fetcher = HttpsFetcher(policy, ca_file=settings.ses_certificate_ca_file)
        topics = [arn.strip() for arn in settings.ses_topic_arns.split(",") if arn.strip()]
        verifier = app.state.sns_verifier = SnsVerifier(fetcher, policy, topics)
    return verifier


def _ses(clarion: Clarion, verifier: SnsVerifier, body: bytes) -> Response:
    message = _json(body)
    if not isinstance(message, dict):
        return _malformed("the body is not an SNS message (a JSON object)")
    try:
        kind = verifier.verify(message)
        if kind == "SubscriptionConfirmation":
            verifier.confirm(message)
            log.info("ses webhook: confirmed the subscription to %s", message["TopicArn"])
            return JSONResponse({"confirmed": message["TopicArn"]})
    except SnsRejected as exc:
        return _refused(str(exc))
    except FetchFailed as exc:
        log.warning("ses webhook: %s", exc)
        return JSONResponse({"error": "fetch_failed", "message": str(exc)}, status_code=502)
    if kind == "UnsubscribeConfirmation":
        return JSONResponse({"unsubscribed": message["TopicArn"]})
    return _apply(clarion, "ses", [ses_event(_json(message["Message"].encode("utf-8")))])


def _sendgrid(clarion: Clarion, body: bytes, signature: str | None, timestamp: str | None) -> Response:
    key_text = clarion.settings.sendgrid_webhook_public_key
    if not key_text:
        return _refused("no SendGrid verification key is configured (CLARION_SENDGRID_WEBHOOK_PUBLIC_KEY)")
    try:
        key = sendgrid.load_public_key(key_text)
    except ValueError as exc:
        log.error("sendgrid webhook: %s", exc)
        return _refused(str(exc))
    try:
        sendgrid.verify(key, body, signature, timestamp, time.time())
    except sendgrid.SignatureRejected as exc:
        return _refused(str(exc))
    batch = _json(body)
    if not isinstance(batch, list):
        return _malformed("the body is not a JSON array of events")
    return _apply(clarion, "sendgrid", [sendgrid_event(item) for item in batch])


def _apply(clarion: Clarion, source: str, events: list[EspEvent]) -> Response:
    service = EspEventService(clarion.settings, clarion.consent)
    with clarion.store.write() as conn:
        tally: Tally = service.apply(conn, events, utcnow())
    if tally.unknown:
        log.info("%s webhook: %d event(s) for messages Clarion did not send", source, tally.unknown)
    return JSONResponse(asdict(tally))


def _json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def _refused(reason: str) -> Response:
    return JSONResponse({"error": "invalid_signature", "message": reason}, status_code=403)


def _malformed(reason: str) -> Response:
    return JSONResponse({"error": "malformed_body", "message": reason}, status_code=400)

"""The HTTP API's app factory. Nothing is built or connected at import time.

Run it with ``uvicorn --factory`` around a function that builds a :class:`~clarion.bootstrap.Clarion`,
or ``clarion serve``. The caller owns the ``Clarion`` and closes it.
"""

from __future__ import annotations

from fastapi import FastAPI

from ..bootstrap import Clarion
from . import (
    campaigns,
    consent,
    contacts,
    devices,
    esp_hooks,
    events,
    inbox,
    reports,
    scores,
    segment,
    segments,
    timeline,
    tracking,
    twilio_hooks,
    unsubscribe,
    webpush,
    whatsapp_hooks,
)
from .auth import KeyToucher
from .errors import install_error_handlers
from .gate import RequestGate

DESCRIPTION = """
Clarion's HTTP API.

* **/v1** — Segment-compatible tracking (identify, track, page, screen, batch/import). Authenticate
  with an `ingest` (or `admin`) key as the basic-auth user name and an empty password, as the
  Segment SDKs do with their write key.
* **/api** — the native REST API for contacts, events, consent, segments, scores, templates and
  campaigns. Authenticate
  with an `admin` key: `Authorization: Bearer <key>`.

Errors are JSON: `{"error": <code>, "message": ..., ...}`; an invalid field answers 422 with
`field` and `reason`; an invalid segment rule answers 422 `invalid_rule` with `reason` and where:
`line` and `column` in the text form, `path` in the JSON form; an invalid template answers 422
`invalid_template` with every problem.
* **/u/{token}** — the unsubscribe page and RFC 8058 one-click unsubscribe (signed links, no key).
* **/c/{token}**, **/o/{token}** — tracked links (302 to the stored URL) and the email open pixel.
* **/hooks/ses**, **/hooks/sendgrid** — ESP feedback (bounces, complaints, deliveries), authenticated by
  signature only.

The key (or contact token) is checked before a request's body is read, and every path has a body limit,
counted as the body arrives: 500 KB on /v1, 2 MB on /api/templates, 256 KB elsewhere on /api, 16 KB on
the browser routes; a larger body answers 413 `payload_too_large` with `limit_bytes`. Paths are matched
exactly: a trailing slash is not redirected.
"""


def create_app(clarion: Clarion) -> FastAPI:
    # No trailing-slash redirects: Starlette builds their Location from the request's Host header, which a
    # client chooses (a forged Host would make Clarion redirect to any site).
    app = FastAPI(title="Clarion", version="0.1.0", description=DESCRIPTION, docs_url="/docs",
                  redirect_slashes=False)
    app.state.clarion = clarion
    app.state.key_toucher = KeyToucher()
    install_error_handlers(app)

    # Routes are matched in order: the liveness probe first (clicks and opens never reach the router).
    @app.get("/health", tags=["Health"], summary="Liveness probe (no authentication)")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    for router in (segment.router, contacts.router, events.router, consent.router, segments.router,
                   scores.rfm_router, scores.predictions_router, scores.leads_router, campaigns.router,
                   devices.router, unsubscribe.router, twilio_hooks.router, whatsapp_hooks.router,
                   esp_hooks.router, reports.router):
        app.include_router(router)
    app.include_router(inbox.router)
    app.include_router(timeline.router)
    app.include_router(webpush.router)
    app.add_middleware(RequestGate)  # credentials and body limits before any route reads a body
    app.add_middleware(tracking.TrackingPaths, clarion=clarion)  # clicks and opens, before everything else

    return app

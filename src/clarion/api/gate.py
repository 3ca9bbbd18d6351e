"""The gate every request passes before a route sees it: credentials first, then a body limit per path.

FastAPI reads and parses a route's body before the route's dependencies run, so a route cannot check
its key before a large body has been buffered. The gate does, in this order, before any byte of the
body is read:

1. a body declared (``Content-Length``) larger than the path's limit is refused: 413;
2. on key-authenticated paths the key is checked (401, 403), on the browser paths the contact token (401);
3. the body is read, counted as it arrives (also without a ``Content-Length``, in chunked encoding),
   and refused with 413 as soon as it passes the limit; the route then receives the bytes read.

Limits, in bytes received (a gzip body counts compressed; ``/v1`` also bounds what it inflates to):

===========================  =========  ================================================================
path                         limit      credentials checked by the gate
===========================  =========  ================================================================
``/v1/...``                  500 KB     an ``ingest`` key (Segment's batch limit; a single call: 32 KB)
``/api/templates``           2 MB       an ``admin`` key (an HTML email in a few locales)
``/api/inbox...``            16 KB      a contact token of scope ``inbox``
``/api/...``                 256 KB     an ``admin`` key
``/webpush/subscriptions``   16 KB      a contact token of scope ``webpush`` (a subscription is ~500 B)
``/hooks/twilio/...``        64 KB      none: the route checks Twilio's signature (a webhook is < 1 KB)
``/hooks/whatsapp``          3 MB       none: the route checks Meta's signature (Meta's own limit)
``/hooks/ses``               1 MB       none: the route checks the SNS signature (an SNS message is <= 256 KB)
``/hooks/sendgrid``          1 MB       none: the route checks SendGrid's ECDSA signature (batches reach 768 KB)
anything else                16 KB      none (``/u/...`` one-click unsubscribe sends ~30 bytes)
===========================  =========  ================================================================

Browser preflights (``OPTIONS``) carry no credentials and pass without them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import authenticate, contact_of
from .body import KB, too_large
from .cors import cors_headers
from .errors import ApiError, error_response
from .segment import MAX_BATCH
from .twilio_hooks import MAX_FORM
from .whatsapp_hooks import MAX_BODY as MAX_WHATSAPP

MB = 1024 * KB
Check = Callable[[Request], Awaitable[None]]


def api_key(scope: str) -> Check:
    async def check(request: Request) -> None:
        await run_in_threadpool(authenticate, request, scope)  # a database look-up: off the event loop

    return check


def contact_token(scope: str) -> Check:
    async def check(request: Request) -> None:
        contact_of(request, scope)

    return check


@dataclass(frozen=True)
class Rule:
    """Requests to ``prefix`` (the path itself or below it) carry at most ``limit`` bytes of body."""

    prefix: str
    limit: int
    check: Check | None = None
    cors: bool = False  # the browser paths: errors carry the CORS headers, so the page can read them

    def matches(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix.rstrip("/") + "/")


RULES = (
    Rule("/v1", MAX_BATCH, api_key("ingest")),
    Rule("/api/templates", 2 * MB, api_key("admin")),
    Rule("/api/inbox", 16 * KB, contact_token("inbox"), cors=True),
    Rule("/api", 256 * KB, api_key("admin")),
    Rule("/webpush/subscriptions", 16 * KB, contact_token("webpush"), cors=True),
    Rule("/webpush", 16 * KB, cors=True),
    Rule("/hooks/twilio", MAX_FORM),
    Rule("/hooks/whatsapp", MAX_WHATSAPP),
    Rule("/hooks/ses", MB),  # api.esp_hooks.MAX_SES_BODY
    Rule("/hooks/sendgrid", MB),  # api.esp_hooks.MAX_SENDGRID_BODY
)
DEFAULT_RULE = Rule("/", 16 * KB)


def rule_for(path: str) -> Rule:
    return next((rule for rule in RULES if rule.matches(path)), DEFAULT_RULE)


class RequestGate:
    """ASGI middleware applying :data:`RULES` (see the module's notes)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = rule_for(_route_path(scope))
        request = Request(scope)
        try:
            _check_declared_size(request, rule.limit)
            if rule.check is not None and scope["method"] != "OPTIONS":
                await rule.check(request)
            body = await _read_body(receive, rule.limit)
        except ApiError as exc:
            headers = {**(exc.headers or {}), **(cors_headers(request) if rule.cors else {})}
            if _has_body(request):  # the rest of it is never read: the connection cannot carry another request
                headers["Connection"] = "close"
            response = error_response(exc.status, exc.error, exc.message, headers=headers, **exc.extra)
            await response(scope, receive, send)
            return
        except ClientDisconnect:
            return
        await self.app(scope, _replay(body, receive), send)


def _route_path(scope: Scope) -> str:
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def _has_body(request: Request) -> bool:
    return "transfer-encoding" in request.headers or request.headers.get("content-length", "0") not in ("", "0")


def _check_declared_size(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length", "")
    if declared.isdecimal() and int(declared) > limit:
        raise too_large(limit)


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, refused as soon as more than ``limit`` bytes have arrived."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """What the app receives: the body already read, in one message, then whatever the server sends next."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed

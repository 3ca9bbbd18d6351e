"""``/c/{token}`` (tracked links) and ``/o/{token}`` (the email open pixel): public, no key, signed tokens.

A click redirects (302) to the URL stored for the token's link row, never to one named by the request,
so the route cannot be used as an open redirect. A forged, edited, truncated or unknown token, and one
whose link row is gone (an erased contact's), answers a 404 page and records nothing. A HEAD request is
recorded as a machine and answered without a redirect: link checkers and scanners ask for headers,
people do not. The pixel is a 1x1 transparent GIF that no cache may keep, so every open reaches us.

These are the busiest public paths (every recipient's click and open), so they are answered by a small
ASGI layer in front of the application, before routing, dependency injection and the request gate: the
framework's own work per request was most of a click's cost (bench/tracking.py). They take no body.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from anyio import to_thread

from ..bootstrap import Clarion
from ..services.response import ResponseService
from ..tracking.classify import Request as TrackedRequest
from ..tracking.links import InvalidLink

# The smallest transparent GIF89a: 1x1, one-colour palette, transparency extension (43 bytes).
PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
NO_STORE = ((b"cache-control", b"no-store, no-cache, must-revalidate, max-age=0"), (b"pragma", b"no-cache"),
            (b"referrer-policy", b"no-referrer"), (b"x-robots-tag", b"noindex, nofollow"))
# Characters a Location header may carry as they are (RFC 3986 reserved and unreserved, and "%"):
# anything else (spaces, non-ASCII letters of an IRI) is percent-encoded as UTF-8.
_URL_SAFE = ":/?#[]@!$&'()*+,;=-._~%"
NOT_FOUND = b"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Link not found</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head><body style="font-family: sans-serif;
max-width: 32rem; margin: 3rem auto"><h1>This link is not valid</h1><p>It may have been copied incompletely.
Please use the link from the message.</p></body></html>"""
MAX_USER_AGENT_BYTES = 1024


class TrackingPaths:
    """ASGI middleware: answers GET and HEAD on ``/c/...`` and ``/o/...``; passes everything else on."""

    def __init__(self, app: Any, clarion: Clarion) -> None:
        self.app = app
        self.clarion = clarion
        self.service = ResponseService(clarion.settings)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path.startswith("/c/") or path.startswith("/o/")) or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        client = _client(scope)
        # The store's drivers block: the transaction runs in a worker thread, as FastAPI runs sync routes.
        status, headers, body = await to_thread.run_sync(self._answer, path[1], path[3:], client)
        await send({"type": "http.response.start", "status": status,
                    "headers": [*NO_STORE, *headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": b"" if client.method == "HEAD" else body})

    def _answer(self, kind: str, token: str, client: TrackedRequest) -> tuple[int, list, bytes]:
        try:
            with self.clarion.store.write() as conn:
                if kind == "o":
                    self.service.pixel(conn, token, client)
                    return 200, [(b"content-type", b"image/gif")], PIXEL
                answer = self.service.click(conn, token, client)
        except InvalidLink:
            return 404, [(b"content-type", b"text/html; charset=utf-8")], NOT_FOUND
        if client.method == "HEAD" or answer.url is None:
            return 200, [], b""
        return 302, [(b"location", quote(answer.url, safe=_URL_SAFE).encode("ascii"))], b""


def _client(scope: dict) -> TrackedRequest:
    user_agent = b""
    for name, value in scope.get("headers", ()):
        if name == b"user-agent":
            user_agent = value[:MAX_USER_AGENT_BYTES]
            break
    peer = scope.get("client")
    return TrackedRequest(method=scope["method"], user_agent=user_agent.decode("latin-1"),
                          ip=peer[0] if peer else None)

"""``/c/{token}`` (tracked links) and ``/o/{token}`` (the email open pixel): public, no key, signed tokens.

A click redirects (302) to the URL stored for the token's link row, never to one named by the request,
so the route cannot be used as an open redirect. A forged, edited, truncated or unknown token, and one
whose link row is gone (an erased contact's), answers a 404 page and records nothing. A HEAD request is
recorded as a machine and answered without a redirect: link checkers and scanners ask for headers,
people do not. The pixel is a 1x1 transparent GIF that no cache may keep, so every open reaches us.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from ..services.response import ResponseService
from ..tracking.classify import Request as TrackedRequest
from ..tracking.links import InvalidLink
from .auth import ClarionDep

router = APIRouter(tags=["Tracking"])

# The smallest transparent GIF89a: 1x1, one-colour palette, transparency extension (43 bytes).
PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
NO_STORE = {"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0", "Pragma": "no-cache",
            "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow"}
# Characters a Location header may carry as they are (RFC 3986 reserved and unreserved, and "%"):
# anything else (spaces, non-ASCII letters of an IRI) is percent-encoded as UTF-8.
_URL_SAFE = ":/?#[]@!$&'()*+,;=-._~%"
_NOT_FOUND = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Link not found</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head><body style="font-family: sans-serif;
max-width: 32rem; margin: 3rem auto"><h1>This link is not valid</h1><p>It may have been copied incompletely.
Please use the link from the message.</p></body></html>"""


def _client(request: Request) -> TrackedRequest:
    return TrackedRequest(method=request.method, user_agent=request.headers.get("user-agent", ""),
                          ip=request.client.host if request.client else None)


def _not_found() -> HTMLResponse:
    return HTMLResponse(_NOT_FOUND, status_code=404, headers=NO_STORE)


@router.api_route("/c/{token}", methods=["GET", "HEAD"], include_in_schema=False)
def click(clarion: ClarionDep, token: str, request: Request) -> Response:
    service = ResponseService(clarion.settings)
    try:
        with clarion.store.write() as conn:
            answer = service.click(conn, token, _client(request))
    except InvalidLink:
        return _not_found()
    if request.method == "HEAD" or answer.url is None:
        return Response(status_code=200, headers=NO_STORE)
    return Response(status_code=302, headers={**NO_STORE, "Location": quote(answer.url, safe=_URL_SAFE)})


@router.api_route("/o/{token}", methods=["GET", "HEAD"], include_in_schema=False)
def pixel(clarion: ClarionDep, token: str, request: Request) -> Response:
    service = ResponseService(clarion.settings)
    try:
        with clarion.store.write() as conn:
            service.pixel(conn, token, _client(request))
    except InvalidLink:
        return _not_found()
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)

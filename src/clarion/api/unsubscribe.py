"""``/u/{token}``: the unsubscribe page and RFC 8058 one-click unsubscribe (no API key: the token is signed).

GET shows a page with a button and changes nothing, because mail scanners follow links; POST records
the opt-out. Mail clients send the one-click POST themselves, with the body
``List-Unsubscribe=One-Click`` (RFC 8058 §3.2). A forged or edited token answers 400.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ..services.unsubscribe import unsubscribe
from ..tracking.links import InvalidLink, verify_unsubscribe
from .auth import ClarionDep

router = APIRouter(tags=["Unsubscribe"])

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 3rem auto"><h1>{title}</h1>{body}</body></html>"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=escape(title), body=body), status_code=status,
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def _invalid(exc: InvalidLink) -> HTMLResponse:
    return _page("This link is not valid", f"<p>{escape(str(exc))}. Please use the link from the email.</p>", 400)


@router.get("/u/{token}", response_class=HTMLResponse, summary="The unsubscribe page (changes nothing)")
def unsubscribe_page(clarion: ClarionDep, token: str) -> HTMLResponse:
    try:
        target = verify_unsubscribe(clarion.settings.link_secret, token)
    except InvalidLink as exc:
        return _invalid(exc)
    what = f"the {escape(target.topic)} messages" if target.topic else f"all {escape(target.channel)} messages"
    return _page("Unsubscribe", f'<p>Stop receiving {what}?</p><form method="post">'
                 f'<button type="submit">Unsubscribe</button></form>')


@router.post("/u/{token}", response_class=HTMLResponse, summary="Unsubscribe (RFC 8058 one-click or the page's button)")
async def unsubscribe_now(clarion: ClarionDep, token: str, request: Request) -> HTMLResponse:
    try:
        target = verify_unsubscribe(clarion.settings.link_secret, token)
    except InvalidLink as exc:
        return _invalid(exc)
    body = (await request.body())[:1000].decode("utf-8", "replace")
    one_click = "List-Unsubscribe=One-Click" in body
    proof = {"form": "list-unsubscribe one-click" if one_click else "unsubscribe page",
             "user_agent": request.headers.get("user-agent"),
             "ip": request.client.host if request.client else None}
    with clarion.store.write() as conn:
        unsubscribe(conn, clarion.consent, target, proof)
    return _page("You are unsubscribed", "<p>You will not receive these messages any more.</p>")

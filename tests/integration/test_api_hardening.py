"""The request gate: credentials are checked before a body is read, and no route buffers more than its limit.

The bodies here are produced on demand and count what the server took from them, so "not buffered"
is measured, not assumed: a request without a key takes nothing from a 100 MB body, and one with a key
takes no more than its path's limit.
"""

# ruff: noqa: F811 - pytest fixtures imported from test_api_support are parameters here

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select
from test_api_support import admin, admin_key, client, ingest_key, make_key  # noqa: F401 - fixtures

from clarion.api.app import create_app
from clarion.bootstrap import Clarion
from clarion.store.schema import contacts, events
from clarion.tracking.contact_tokens import sign_contact_token

CHUNK = 64 * 1024
HUNDRED_MB = 1_600  # chunks of 64 KiB
KB = 1024


class Upload:
    """A body of ``chunks`` chunks made on demand; ``taken`` counts the chunks the server asked for."""

    def __init__(self, chunks: int = HUNDRED_MB, chunk: bytes = b"x" * CHUNK) -> None:
        self.chunks, self.chunk, self.taken = chunks, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.taken += 1
            yield self.chunk


def send(app: Clarion, method: str, path: str, body: Upload | bytes, headers: dict[str, str]) -> httpx.Response:
    async def request() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://clarion.test") as http:
            return await http.request(method, path, content=body, headers=headers)

    return asyncio.run(request())


def count(app: Clarion, table) -> int:
    with app.store.read() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


GATED = [("POST", "/api/contacts"), ("POST", "/api/events"), ("PUT", "/api/templates"), ("POST", "/v1/track"),
         ("POST", "/v1/batch"), ("POST", "/webpush/subscriptions"), ("POST", "/api/inbox/read")]


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize(("method", "path"), GATED)
def test_a_huge_body_without_credentials_is_refused_before_a_byte_is_read(app, method, path, declared):
    # given 100 MB on its way, with no key or token
    body = Upload()
    headers = {"Content-Type": "application/json"} | ({"Content-Length": str(HUNDRED_MB * CHUNK)} if declared else {})
    # when it is sent
    response = send(app, method, path, body, headers)
    # then it is refused (401, or 413 for a body declared too large) and not one chunk was taken
    assert response.status_code in (401, 413)
    assert response.status_code == 401 or declared
    assert body.taken == 0
    assert count(app, contacts) == 0


@pytest.mark.parametrize(("method", "path", "scope", "limit"), [
    ("POST", "/api/contacts", "admin", 256 * KB),
    ("PUT", "/api/templates", "admin", 2 * KB * KB),
    ("POST", "/v1/batch", "ingest", 500 * KB),
    ("POST", "/v1/track", "admin", 500 * KB),
])
def test_a_huge_body_with_a_key_is_cut_off_at_the_limit(app, method, path, scope, limit):
    # given a valid key and 100 MB sent chunked, with no length announced
    body = Upload()
    headers = {"Authorization": f"Bearer {make_key(app, scope)}", "Content-Type": "application/json"}
    # when it is sent
    response = send(app, method, path, body, headers)
    # then 413 names the limit, and no more than the limit (and the chunk that passed it) was read
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large" and response.json()["limit_bytes"] == limit
    assert body.taken * CHUNK <= limit + CHUNK
    assert count(app, contacts) == count(app, events) == 0


def test_a_body_declared_too_large_is_refused_unread_even_with_a_key(app):
    body = Upload()
    headers = {"Authorization": f"Bearer {make_key(app, 'admin')}", "Content-Length": str(HUNDRED_MB * CHUNK)}
    response = send(app, "POST", "/api/contacts", body, headers)
    assert response.status_code == 413 and body.taken == 0
    assert response.headers["connection"] == "close"


def test_the_unauthenticated_routes_have_limits_too(app):
    # given the webhooks and the unsubscribe link, which take no key (the gate runs before the link is checked)
    for path, limit in (("/hooks/twilio/sms", 64 * KB), ("/hooks/whatsapp", 3 * KB * KB), ("/u/any-token", 16 * KB),
                        ("/health", 16 * KB)):
        body = Upload()
        # when 100 MB is sent to each
        response = send(app, "POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"})
        # then each stops reading at its limit
        assert response.status_code == 413, path
        assert response.json()["limit_bytes"] == limit
        assert body.taken * CHUNK <= limit + CHUNK


def test_a_browser_route_refuses_with_the_cors_headers_its_page_needs(app):
    # given a page on the business's origin sending an oversized subscription with a valid contact token
    token = sign_contact_token(app.settings.link_secret, 1, "webpush", 3600)
    body = Upload()
    headers = {"Authorization": f"Bearer {token}", "Origin": "https://shop.example"}
    # when it is sent, then the refusal is readable by the page
    response = send(app, "POST", "/webpush/subscriptions", body, headers)
    assert response.status_code == 413 and body.taken * CHUNK <= 16 * KB + CHUNK
    assert response.headers["access-control-allow-origin"] == "https://shop.example"
    # and a missing token is a 401 the page can read too
    refused = send(app, "POST", "/webpush/subscriptions", Upload(), {"Origin": "https://shop.example"})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "https://shop.example"


def test_bodies_within_the_limit_reach_the_route_chunked_or_not(app):
    headers = {"Authorization": f"Bearer {make_key(app, 'admin')}", "Content-Type": "application/json"}
    # when a contact is created with a chunked body, and a template larger than /api's 256 KB is saved
    contact = Upload(chunks=1, chunk=b'{"email": "ana@example.com"}')
    created = send(app, "POST", "/api/contacts", contact, headers)
    html = "<p>" + "Hello there. " * 30_000 + "</p>"  # ~390 KB, within /api/templates' 2 MB
    document = {"name": "long", "document": {"default_locale": "en", "default": {
        "email": {"subject": "Hi", "html": html}}}}
    saved = send(app, "PUT", "/api/templates", json.dumps(document).encode(), headers)
    # then both reach their route whole and are stored
    assert created.status_code == 200, created.text
    assert created.json()["email"] == "ana@example.com" and contact.taken == 1
    assert saved.status_code == 200, saved.text[:300]
    assert len(saved.json()["document"]["default"]["email"]["html"]) == len(html)


def test_a_trailing_slash_is_not_redirected_to_a_forged_host(admin):
    # when paths are asked for with a trailing slash and a Host header naming another site
    answers = [admin.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
               for path in ("/api/contacts/", "/health/", "/api/segments/", "/docs/")]
    # then none redirects anywhere, least of all to the forged host
    for response in answers:
        assert response.status_code == 404
        assert "location" not in response.headers


@pytest.fixture
def live_server(app: Clarion) -> Iterator[tuple[str, int]]:
    """Clarion under uvicorn on a socket that already listens, so a client can connect at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(uvicorn.Config(create_app(app), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _head(address: tuple[str, int], request: bytes) -> bytes:
    """Sends the request's head only (no body byte follows) and returns the answer's head."""
    with socket.create_connection(address, timeout=30) as conn:
        conn.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def test_a_real_server_answers_before_the_body_is_sent(app, live_server):
    # given clients that announce a body and send none of it (a server waiting for it would never answer)
    def head(length: int, authorization: bytes = b"") -> bytes:
        return (b"POST /api/contacts HTTP/1.1\r\nHost: clarion.test\r\nContent-Type: application/json\r\n"
                + b"Content-Length: %d\r\n" % length + authorization + b"\r\n")

    key = make_key(app, "admin").encode()
    # when they announce 200 KB (within /api's limit) without a key or with a wrong one, or 100 MB with a valid key
    unauthenticated = _head(live_server, head(200_000))
    wrong = _head(live_server, head(200_000, b"Authorization: Bearer nope\r\n"))
    huge = _head(live_server, head(104_857_600, b"Authorization: Bearer " + key + b"\r\n"))
    # then each is answered at once, unread: 401, 401, and 413 for the size announced
    assert unauthenticated.startswith(b"HTTP/1.1 401")
    assert wrong.startswith(b"HTTP/1.1 401")
    assert huge.startswith(b"HTTP/1.1 413")
    assert count(app, contacts) == 0

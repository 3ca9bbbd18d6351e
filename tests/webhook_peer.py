"""A local webhook receiver for tests: ``http.server`` on 127.0.0.1 (an ephemeral port), in a thread,
plain HTTP or HTTPS (a trustme certificate authority).

    with WebhookPeer(secret="whsec_test") as peer:            # WebhookPeer(tls=True, names=("hooks.test",))
        ... POST to peer.url("/ok") ...
        peer.requests          # every request: path, headers, body, whether its signature verified, the SNI
        peer.received          # the bodies of the requests it accepted (2xx), parsed

It plays the business's endpoint as docs/channels/webhook.md tells it to behave: it checks
``X-Clarion-Signature`` independently of Clarion's code (hex HMAC-SHA256 over ``"<timestamp>." + body``,
``v1=`` prefix, timestamp within 5 minutes, the scheme Stripe documents at
https://docs.stripe.com/webhooks#verify-manually) and answers 401 when it does not verify; then it
answers by the request's path (``DEFAULT_ANSWERS``: ``/busy`` is 503, ``/slow-down`` is 429 with
Retry-After 7, ``/moved`` is a 302 ...), else 200. A repeated ``Idempotency-Key`` is answered 200 and
not recorded as received again, as a receiver that deduplicates does. ``/hang`` answers after
``hang_seconds`` (a timeout test).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from threaded_server import PeerHandler, ThreadedPeer

TOLERANCE = 300  # seconds: the receiver's replay window


@dataclass(frozen=True)
class Answer:
    status: int
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


DEFAULT_ANSWERS: Mapping[str, Answer] = {
    "/accepted": Answer(202, '{"queued": true}'),
    "/no-content": Answer(204),
    "/moved": Answer(302, "", {"Location": "http://169.254.169.254/latest/meta-data/"}),
    "/permanent": Answer(308, "", {"Location": "/ok"}),
    "/bad": Answer(400, '{"error": "unknown campaign"}'),
    "/forbidden": Answer(403, "forbidden"),
    "/missing": Answer(404, "not found"),
    "/gone": Answer(410, "this endpoint was retired"),
    "/unprocessable": Answer(422, '{"error": "contact.email missing"}'),
    "/request-timeout": Answer(408, "request timeout"),
    "/too-early": Answer(425, "too early"),
    "/slow-down": Answer(429, "rate limited", {"Retry-After": "7"}),
    "/busy": Answer(503, "maintenance", {"Retry-After": "120"}),
    "/broken": Answer(500, "Internal Server Error"),
    "/bad-gateway": Answer(502, "bad gateway"),
    "/come-back-next-year": Answer(503, "down", {"Retry-After": "31536000"}),
    "/huge": Answer(500, "x" * 1_000_000),
}


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    signature_ok: bool
    server_name: str | None  # the TLS SNI the client sent (None over plain HTTP, or without SNI)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookPeer(ThreadedPeer):
    secret: str = "whsec_test"
    tls: bool = False
    names: tuple[str, ...] = ("localhost", "127.0.0.1")  # the certificate's names (tls=True)
    answers: Mapping[str, Answer] = field(default_factory=lambda: dict(DEFAULT_ANSWERS))
    hang_seconds: float = 3.0
    requests: list[Request] = field(default_factory=list)
    received: list[Any] = field(default_factory=list)
    ca_file: str | None = None  # written on start when tls=True: the authority to trust
    _seen_keys: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _tmp: Any = None
    _sni_names: dict[int, str | None] = field(default_factory=dict)  # id(TLS socket) -> the SNI it sent

    thread_name = "webhook-peer"

    def url(self, path: str = "/ok", host: str = "127.0.0.1") -> str:
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    def handler(self) -> type[_Handler]:
        return type("Handler", (_Handler,), {"webhook": self})

    def tls_context(self) -> ssl.SSLContext | None:
        return self._tls_context() if self.tls else None

    def stop(self) -> None:
        super().stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _tls_context(self) -> ssl.SSLContext:
        import tempfile

        import trustme

        authority = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert(*self.names).configure_cert(context)
        self._tmp = tempfile.TemporaryDirectory(prefix="webhook-peer-")
        self.ca_file = f"{self._tmp.name}/ca.pem"
        authority.cert_pem.write_to_path(self.ca_file)

        def remember(sock: ssl.SSLSocket, server_name: str | None, _context: ssl.SSLContext) -> None:
            with self._lock:
                self._sni_names[id(sock)] = server_name
        context.sni_callback = remember
        return context

    def handle(self, path: str, headers: dict[str, str], body: bytes, server_name: str | None
               ) -> tuple[int, dict[str, str], bytes]:
        ok = _verifies(self.secret, headers.get("x-clarion-timestamp"), body, headers.get("x-clarion-signature"))
        with self._lock:
            self.requests.append(Request(path, headers, body, ok, server_name))
        if not ok:
            return 401, {"Content-Type": "text/plain"}, b"signature does not verify"
        if path == "/hang":
            time.sleep(self.hang_seconds)
            return 200, {}, b"too late"
        answer = self.answers.get(path.split("?")[0], Answer(200, '{"ok": true}'))
        with self._lock:
            key = headers.get("idempotency-key", "")
            if 200 <= answer.status < 300 and key not in self._seen_keys:
                self._seen_keys.add(key)
                self.received.append(json.loads(body))
        return answer.status, dict(answer.headers), answer.body.encode()


def _verifies(secret: str, timestamp: str | None, body: bytes, header: str | None) -> bool:
    """The receiver's check, written from the documentation rather than imported from Clarion."""
    if not timestamp or not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE:
        return False
    expected = "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, given.strip()) for given in (header or "").split(","))


class _Handler(PeerHandler):
    webhook: WebhookPeer

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        server_name = self.webhook._sni_names.get(id(self.connection))
        self.reply(*self.webhook.handle(self.path, self.lower_headers(), self.request_body(), server_name))

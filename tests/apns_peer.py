"""A local APNs provider API for tests: HTTP/2 over TLS on 127.0.0.1 (an ephemeral port), hypercorn in a thread.

    with ApnsPeer() as peer:                      # its own CA (trustme) and its own .p8 signing key
        settings = ApnsSettings(key_pem=peer.key_pem, key_id=peer.key_id, team_id=peer.team_id,
                                topic=peer.topic, base_url=peer.base_url, ca_file=peer.ca_file)
        ...
        peer.requests, peer.jwts, peer.delivered

It speaks the documented provider API
(https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns and
https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns):
``POST /3/device/<token>`` only, the JWT in ``authorization: bearer`` verified like APNs does (ES256
signature against the team key's public key, ``kid``, ``iss``; ``iat`` older than one hour by the
peer's ``clock`` is 403 ExpiredProviderToken, anything else wrong 403 InvalidProviderToken, none 403
MissingProviderToken), then ``apns-topic``, ``apns-push-type``, ``apns-priority``, ``apns-expiration``,
``apns-id``, ``apns-collapse-id``, the device token (64+ hex digits, else 400 BadDeviceToken) and the
payload (4,096 bytes, else 413 PayloadTooLarge). Then it answers what ``answers`` scripts for the device
token (``Answer(410, "Unregistered", timestamp_ms=...)``), else 200 with the ``apns-id`` header and an
empty body. Error bodies have APNs's shape: ``{"reason": "..."}``, plus ``"timestamp"`` for 410. Every
request is recorded with its HTTP version (APNs is HTTP/2 only) and the connection it came on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypercorn.asyncio import serve
from hypercorn.config import Config

MAX_PAYLOAD = 4096  # bytes, APNs's limit for a regular remote notification
MAX_COLLAPSE_ID = 64  # bytes
TOKEN_LIFETIME = 3600  # seconds: APNs refuses a provider token whose iat is older than one hour
PUSH_TYPES = frozenset({"alert", "background", "location", "voip", "complication", "fileprovider", "mdm",
                        "liveactivity", "pushtoapp", "widgets"})
_DEVICE_TOKEN = re.compile(r"[0-9a-f]{64,200}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    timestamp_ms: int | None = None  # 410 only: when APNs last knew the token was invalid
    delay: float = 0.0  # seconds to wait before answering (a client timeout)


@dataclass(frozen=True)
class Request:
    token: str
    headers: dict[str, str]  # names lower-cased, as HTTP/2 sends them
    body: bytes
    http_version: str
    client: tuple[str, int]  # the connection's remote address: one value per connection
    jwt: str | None
    status: int = 0
    reason: str | None = None

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class ApnsPeer:
    topic: str = "com.clarion.shop"
    team_id: str = "TEAM123456"  # Apple: 10 characters
    key_id: str = "KEY1234567"  # Apple: 10 characters
    other_topics: tuple[str, ...] = ()  # more bundle ids of the team
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    answers: dict[str, Answer | list[Answer]] = field(default_factory=dict)  # device token -> answer(s)
    requests: list[Request] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="apns-peer-")
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.key_pem = self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()).decode()
        self.key_file = str(Path(self._dir.name) / f"AuthKey_{self.key_id}.p8")
        Path(self.key_file).write_text(self.key_pem)
        self._ca = trustme.CA()
        self.ca_file = str(Path(self._dir.name) / "ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_file)
        self._port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._port, "the peer is not started"
        return f"https://127.0.0.1:{self._port}"

    @property
    def jwts(self) -> list[str]:
        """The provider tokens seen, each once, in the order first seen."""
        return list(dict.fromkeys(r.jwt for r in self.requests if r.jwt))

    @property
    def delivered(self) -> list[Request]:
        return [r for r in self.requests if r.status == 200]

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> ApnsPeer:
        config = self._config()
        started = threading.Event()

        async def main() -> None:
            self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
            started.set()
            await serve(self.app, config, shutdown_trigger=self._stopping.wait, mode="asgi")

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), name="apns-peer", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the APNs peer did not start")
        return self

    def _config(self) -> Config:
        cert = self._ca.issue_cert("127.0.0.1", "localhost")
        certfile, keyfile = Path(self._dir.name) / "server.pem", Path(self._dir.name) / "server.key"
        cert.cert_chain_pems[0].write_to_path(certfile)
        for extra in cert.cert_chain_pems[1:]:
            extra.write_to_path(certfile, append=True)
        cert.private_key_pem.write_to_path(keyfile)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)  # connections wait in the backlog until hypercorn accepts them: no start-up race
        self._port = listener.getsockname()[1]
        config = Config()
        config.bind = [f"fd://{listener.detach()}"]  # hypercorn owns the socket from here on
        config.certfile, config.keyfile = str(certfile), str(keyfile)
        config.alpn_protocols = ["h2", "http/1.1"]  # both offered: the records show which one a client chose
        config.errorlog = logging.getLogger("apns-peer")
        config.graceful_timeout = 1.0
        return config

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = self._stopping = self._thread = None
        self._dir.cleanup()

    def __enter__(self) -> ApnsPeer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the provider API ---------------------------------------------------------------------
    async def app(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"]  # lifespan.startup, then lifespan.shutdown
                await send({"type": f"{kind}.complete"})
                if kind == "lifespan.shutdown":
                    return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status, reason, extra = await self.answer(scope["method"], scope["path"], headers, body,
                                                  scope["http_version"], tuple(scope["client"]))
        payload = b"" if status == 200 else json.dumps({"reason": reason, **extra}).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"apns-id", headers.get("apns-id", str(uuid.uuid4())).encode()),
            (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})

    async def answer(self, method: str, path: str, headers: dict[str, str], body: bytes, http_version: str,
                     client: tuple[str, int]) -> tuple[int, str | None, dict[str, Any]]:
        token = path.removeprefix("/3/device/") if path.startswith("/3/device/") else ""
        bearer = headers.get("authorization", "")
        bearer = bearer[len("bearer "):] if bearer.lower().startswith("bearer ") else None
        status, reason, extra, delay = self._check(method, path, token, headers, body, bearer)
        with self._lock:
            self.requests.append(Request(token, headers, body, http_version, client, bearer, status, reason))
        if delay:
            await asyncio.sleep(delay)
        return status, reason, extra

    def _check(self, method: str, path: str, token: str, headers: Mapping[str, str], body: bytes,
               bearer: str | None) -> tuple[int, str | None, dict[str, Any], float]:
        if method != "POST":
            return 405, "MethodNotAllowed", {}, 0.0
        if not path.startswith("/3/device/"):
            return 404, "BadPath", {}, 0.0
        problem = self._check_jwt(bearer) or self._check_headers(headers)
        if problem is None and not _DEVICE_TOKEN.fullmatch(token):
            problem = 400, "BadDeviceToken"
        if problem is None and not body:
            problem = 400, "PayloadEmpty"
        if problem is None and len(body) > MAX_PAYLOAD:
            problem = 413, "PayloadTooLarge"
        if problem is not None:
            return *problem, {}, 0.0
        scripted = self._scripted(token)
        if scripted is None:
            return 200, None, {}, 0.0
        extra = {"timestamp": scripted.timestamp_ms} if scripted.timestamp_ms is not None else {}
        return scripted.status, scripted.reason, extra, scripted.delay

    def _scripted(self, token: str) -> Answer | None:
        with self._lock:
            answer = self.answers.get(token)
            if isinstance(answer, list):  # one per request, then 200
                return answer.pop(0) if answer else None
            return answer

    def _check_jwt(self, bearer: str | None) -> tuple[int, str] | None:
        if not bearer:
            return 403, "MissingProviderToken"
        try:
            header = jwt.get_unverified_header(bearer)
            claims = jwt.decode(bearer, self._key.public_key(), algorithms=["ES256"],
                                options={"require": ["iss", "iat"], "verify_iat": False, "verify_exp": False})
        except jwt.PyJWTError:
            return 403, "InvalidProviderToken"
        if header.get("alg") != "ES256" or header.get("kid") != self.key_id or claims["iss"] != self.team_id:
            return 403, "InvalidProviderToken"
        if not isinstance(claims["iat"], int):
            return 403, "InvalidProviderToken"
        if self.clock().timestamp() - claims["iat"] > TOKEN_LIFETIME:
            return 403, "ExpiredProviderToken"
        return None

    def _check_headers(self, headers: Mapping[str, str]) -> tuple[int, str] | None:
        topic = headers.get("apns-topic")
        if not topic:
            return 400, "MissingTopic"
        if topic not in (self.topic, *self.other_topics):
            return 400, "TopicDisallowed"
        push_type = headers.get("apns-push-type", "alert")
        if push_type not in PUSH_TYPES:
            return 400, "InvalidPushType"
        priority = headers.get("apns-priority", "10")
        if priority not in ("1", "5", "10") or (push_type == "background" and priority == "10"):
            return 400, "BadPriority"  # Apple: priority 10 is an error for a background notification
        if not headers.get("apns-expiration", "0").isdigit():
            return 400, "BadExpirationDate"
        if "apns-id" in headers and not _UUID.fullmatch(headers["apns-id"]):
            return 400, "BadMessageId"
        if len(headers.get("apns-collapse-id", "").encode()) > MAX_COLLAPSE_ID:
            return 400, "BadCollapseId"
        return None

"""A local push service for tests, speaking Mozilla autopush's two protocols, in a thread with its own loop.

    with AutopushPeer() as peer:
        peer.ws_url        # ws://127.0.0.1:<port>: Firefox's dom.push.serverURL (the browser side)
        peer.ca_file       # the HTTPS side's certificate authority (the sender trusts it)
        peer.subscribe(app_server_key)   # a subscription with no browser: messages are kept, not relayed
        peer.relayed, peer.acks          # what was accepted over HTTP, what the browser acknowledged

The browser side is autopush's WebSocket protocol ("push-notification" subprotocol), as Firefox's
``dom/push/PushServiceWebSocket.sys.mjs`` speaks it and https://mozilla-services.github.io/autopush-rs/
documents it: ``hello {use_webpush, uaid?}`` -> ``{messageType: "hello", uaid, status: 200, use_webpush:
true}``; ``register {channelID, key?}`` -> ``{messageType: "register", channelID, status: 200,
pushEndpoint}``; the server sends ``{messageType: "notification", channelID, version, data (base64url),
headers: {encoding: "aes128gcm"}}`` and the browser answers ``ack {updates: [{channelID, version,
code}]}``; ``unregister {channelID}``; a ping is ``"{}"`` both ways.

The sender side is HTTPS (trustme: Clarion only sends to https endpoints): ``POST /wpush/v2/<token>``
(RFC 8030 §5) checked as autopush checks it (https://mozilla-services.github.io/autopush-rs/errors.html):
unknown token 404 errno 102, unsubscribed 410 errno 103, no ``TTL`` 400 errno 111, not
``Content-Encoding: aes128gcm`` 400 errno 110, a bad or expired VAPID header (RFC 8292), a wrong ``aud``
or a key other than the one subscribed with 401 errno 109, a body over 4,096 bytes 413 errno 104. Accepted
messages answer 201 with a ``Location`` and are relayed to the connected browser (or kept for the
next hello). Tokens named in ``DEFAULT_ANSWERS`` ("answer-410" ...) answer as scripted.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import trustme
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

MAX_BODY = 4_096  # bytes: RFC 8030 §7.2 and autopush's limit for the encrypted body
MAX_VAPID_LIFETIME = 24 * 3600  # seconds: RFC 8292 §2
ERRORS_URL = "http://autopush.readthedocs.io/en/latest/http.html#error-codes"  # autopush's more_info


@dataclass(frozen=True)
class Answer:
    status: int
    errno: int | None = None
    message: str = ""
    retry_after: str | None = None


DEFAULT_ANSWERS: Mapping[str, Answer] = {
    "answer-400": Answer(400, 111, "Missing necessary headers"),
    "answer-401": Answer(401, 109, "Invalid Authorization header"),
    "answer-403": Answer(403, 109, "Forbidden: the VAPID key does not match the subscription"),
    "answer-404": Answer(404, 102, "Request did not validate, invalid token"),
    "answer-410": Answer(410, 103, "Request did not validate, subscription expired"),
    "answer-413": Answer(413, 104, "This message is intended for a constrained device and is limited in size."),
    "answer-429": Answer(429, None, "Too many requests", retry_after="9"),
    "answer-500": Answer(500, 999, "An unexpected server error occurred"),
    "answer-503": Answer(503, 202, "Service Unavailable", retry_after="30"),
}


@dataclass
class Channel:
    token: str  # the last path segment of the push endpoint
    channel_id: str
    uaid: str | None  # None: a subscription with no browser behind it (Python-side tests)
    key: bytes | None  # the applicationServerKey it was created with: VAPID's k must be this key
    active: bool = True


@dataclass(frozen=True)
class Relayed:
    """One message the HTTP side accepted: the encrypted body and headers as received."""

    token: str
    channel_id: str
    version: str
    body: bytes
    headers: dict[str, str]  # names lower-cased
    claims: dict[str, Any]  # the VAPID JWT's claims


@dataclass
class AutopushPeer:
    answers: Mapping[str, Answer] = field(default_factory=lambda: dict(DEFAULT_ANSWERS))
    relayed: list[Relayed] = field(default_factory=list)
    acks: list[dict[str, Any]] = field(default_factory=list)
    ws_log: list[dict[str, Any]] = field(default_factory=list)  # every message a browser sent
    channels: dict[str, Channel] = field(default_factory=dict)  # by token
    _sockets: dict[str, ServerConnection] = field(default_factory=dict)  # uaid -> live connection
    _pending: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # uaid -> undelivered
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _stop: asyncio.Event | None = None
    _dir: tempfile.TemporaryDirectory | None = None
    ws_port: int = 0
    https_port: int = 0

    # -- life ------------------------------------------------------------------------------------
    def start(self) -> AutopushPeer:
        self._dir = tempfile.TemporaryDirectory(prefix="autopush-peer-")
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(Path(self._dir.name) / "ca.pem"))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(context, ready), name="autopush-peer", daemon=True)
        self._thread.start()
        if not ready.wait(10) or not self.https_port:
            raise RuntimeError("the autopush peer did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> AutopushPeer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def ca_file(self) -> str:
        assert self._dir is not None, "the peer is not started"
        return str(Path(self._dir.name) / "ca.pem")

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/"

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def endpoint(self, token: str) -> str:
        return f"{self.origin}/wpush/v2/{token}"

    # -- test helpers ----------------------------------------------------------------------------
    def subscribe(self, app_server_key: bytes | None = None) -> str:
        """A subscription with no browser (its messages are kept in ``relayed``); returns its endpoint."""
        channel = Channel(secrets.token_urlsafe(24), str(uuid.uuid4()), None, app_server_key)
        with self._lock:
            self.channels[channel.token] = channel
        return self.endpoint(channel.token)

    def unsubscribe(self, endpoint: str) -> None:
        with self._lock:
            self.channels[endpoint.rsplit("/", 1)[-1]].active = False

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate():
                    return True
            time.sleep(0.05)
        return False

    # -- the loop --------------------------------------------------------------------------------
    def _run(self, context: Any, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve(context, ready))
        finally:
            self._loop.close()

    async def _serve(self, context: Any, ready: threading.Event) -> None:
        self._stop = asyncio.Event()
        app = web.Application(client_max_size=MAX_BODY * 4)
        app.router.add_post("/wpush/{version}/{token}", self._http_push)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        self.https_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with serve(self._ws_session, "127.0.0.1", 0, subprotocols=["push-notification"],
                         ping_interval=None) as server:
            self.ws_port = next(iter(server.sockets)).getsockname()[1]
            ready.set()
            await self._stop.wait()
        await runner.cleanup()

    # -- the browser side (WebSocket) -------------------------------------------------------------
    async def _ws_session(self, ws: ServerConnection) -> None:
        uaid: str | None = None
        try:
            async for raw in ws:
                if raw == "{}":  # a ping
                    await ws.send("{}")
                    continue
                message = json.loads(raw)
                with self._lock:
                    self.ws_log.append(message)
                uaid = await self._ws_message(ws, uaid, message)
        except ConnectionClosed:  # a browser killed at the end of a test sends no close frame
            pass
        finally:
            if uaid is not None and self._sockets.get(uaid) is ws:
                del self._sockets[uaid]

    async def _ws_message(self, ws: ServerConnection, uaid: str | None, message: dict[str, Any]) -> str | None:
        kind = message.get("messageType")
        if kind == "hello":
            uaid = message.get("uaid") or uuid.uuid4().hex
            self._sockets[uaid] = ws
            await ws.send(json.dumps({"messageType": "hello", "uaid": uaid, "status": 200, "use_webpush": True,
                                      "broadcasts": {}}))
            for notification in self._pending.pop(uaid, []):
                await ws.send(json.dumps(notification))
        elif kind == "register" and uaid is not None:
            key = _unb64(message["key"]) if message.get("key") else None
            channel = Channel(secrets.token_urlsafe(24), message["channelID"], uaid, key)
            with self._lock:
                self.channels[channel.token] = channel
            await ws.send(json.dumps({"messageType": "register", "channelID": channel.channel_id, "status": 200,
                                      "pushEndpoint": self.endpoint(channel.token)}))
        elif kind == "unregister":
            with self._lock:
                for channel in self.channels.values():
                    if channel.channel_id == message.get("channelID"):
                        channel.active = False
            await ws.send(json.dumps({"messageType": "unregister", "channelID": message.get("channelID"),
                                      "status": 200}))
        elif kind in ("ack", "nack"):
            with self._lock:
                self.acks.append(message)
        elif kind == "ping":
            await ws.send("{}")
        return uaid  # broadcast_subscribe and others: nothing to do

    # -- the sender side (HTTPS) ------------------------------------------------------------------
    async def _http_push(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        body = await request.read()
        headers = {name.lower(): value for name, value in request.headers.items()}
        if token in self.answers:
            return _error(self.answers[token])
        with self._lock:
            channel = self.channels.get(token)
        if channel is None:
            return _error(Answer(404, 102, "Request did not validate, invalid token"))
        if not channel.active:
            return _error(Answer(410, 103, "Request did not validate, subscription expired"))
        refused, claims = self._check(headers, body, channel)
        if refused is not None:
            return _error(refused)
        version = uuid.uuid4().hex
        with self._lock:
            self.relayed.append(Relayed(token, channel.channel_id, version, body, headers, claims))
        await self._relay(channel, version, body)
        return web.Response(status=201, headers={"Location": f"{self.origin}/m/{version}",
                                                 "TTL": headers.get("ttl", "0")})

    def _check(self, headers: dict[str, str], body: bytes, channel: Channel) -> tuple[Answer | None, dict]:
        if "ttl" not in headers or not headers["ttl"].isdigit():
            return Answer(400, 111, "Missing TTL header"), {}
        if headers.get("content-encoding", "").lower() != "aes128gcm":
            return Answer(400, 110, "Unknown Content-Encoding"), {}
        if len(body) > MAX_BODY:
            return Answer(413, 104, "Payload too large"), {}
        try:
            # The audience is the origin the sender addressed: its Host (127.0.0.1 or localhost here).
            claims, key = verify_vapid(headers.get("authorization", ""), f"https://{headers.get('host', '')}")
        except ValueError as exc:
            return Answer(401, 109, f"Invalid Authorization header: {exc}"), {}
        if channel.key is not None and key != channel.key:
            return Answer(401, 109, "the VAPID key is not the one the subscription was created with"), {}
        return None, claims

    async def _relay(self, channel: Channel, version: str, body: bytes) -> None:
        if channel.uaid is None:
            return
        notification = {"messageType": "notification", "channelID": channel.channel_id, "version": version,
                        "data": base64.urlsafe_b64encode(body).rstrip(b"=").decode(),
                        "headers": {"encoding": "aes128gcm"}}
        ws = self._sockets.get(channel.uaid)
        if ws is None:
            self._pending.setdefault(channel.uaid, []).append(notification)
        else:
            await ws.send(json.dumps(notification))


def verify_vapid(authorization: str, audience: str) -> tuple[dict[str, Any], bytes]:
    """RFC 8292 §3: ``vapid t=<JWT>, k=<key>``; the JWT signed ES256 by that key, for ``audience``, fresh.
    Written here independently of the sender (PyJWT, not py_vapid) so the tests check the sender."""
    scheme, _, rest = authorization.partition(" ")
    if scheme.lower() != "vapid":
        raise ValueError("not a vapid Authorization")
    params = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part)
    if "t" not in params or "k" not in params:
        raise ValueError("t and k are required")
    raw_key = _unb64(params["k"])
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw_key)
    try:
        claims = jwt.decode(params["t"], public, algorithms=["ES256"], audience=audience,
                            options={"require": ["exp", "aud", "sub"]})
    except jwt.PyJWTError as exc:
        raise ValueError(str(exc)) from None
    if claims["exp"] - time.time() > MAX_VAPID_LIFETIME:
        raise ValueError("exp is more than 24 hours away")
    return claims, raw_key


def _unb64(text: str) -> bytes:
    text = text.rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _error(answer: Answer) -> web.Response:
    headers = {"Retry-After": answer.retry_after} if answer.retry_after else {}
    body = {"code": answer.status, "errno": answer.errno, "error": _REASONS.get(answer.status, "Error"),
            "message": answer.message, "more_info": ERRORS_URL}
    return web.json_response(body, status=answer.status, headers=headers)


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 410: "Gone",
            413: "Payload Too Large", 429: "Too Many Requests", 500: "Internal Server Error",
            503: "Service Unavailable"}

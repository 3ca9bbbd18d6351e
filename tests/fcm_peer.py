"""A local Firebase Cloud Messaging HTTP v1 API and its OAuth 2.0 token endpoint, for tests and bench/push.py.

    with FcmPeer() as peer:
        key_file = peer.service_account(tmp_path / "sa.json")   # a throwaway RSA key, token_uri -> the peer
        ... FcmProvider(FcmSettings(service_account_file=str(key_file), base_url=peer.base_url)) ...
        peer.messages, peer.requests, peer.token_requests

    .venv/bin/python tests/fcm_peer.py --service-account sa.json --port-file port.txt   # its own process

aiohttp.web on 127.0.0.1 (an ephemeral port), in a thread with its own event loop (or a process of its
own for the benchmark, which drives 100,000 requests through it; uvloop there when installed).

``POST /token``: the JWT bearer grant (RFC 7523 §2.1, as Google's endpoint takes it:
https://developers.google.com/identity/protocols/oauth2/service-account#httprest). The assertion must be
RS256-signed by a service account the peer knows (by ``iss``, the client email), with ``aud`` the token
URI (the peer's, or Google's, which google-auth always puts there), ``iat``/``exp`` current and the FCM
scope. Answers ``{"access_token", "expires_in", "token_type": "Bearer"}``, else 400 with
``{"error": "invalid_grant" | "invalid_scope" | "unsupported_grant_type", "error_description"}``.
``token_failures``: scripted answers (an HTTP status, or an OAuth error name) for the next fetches.

``POST /v1/projects/{project}/messages:send`` (https://firebase.google.com/docs/reference/fcm/rest/v1/
projects.messages/send): the Bearer token must be one the peer issued and not expired (else 401
UNAUTHENTICATED), the project the service account's (else 403 PERMISSION_DENIED); the message is checked
as FCM checks it (known fields only, exactly one of token/topic/condition, string data values, ``ttl`` as
"3.5s", the notification and data at most 4,096 bytes), else 400 INVALID_ARGUMENT with a
``google.rpc.BadRequest`` field violation. Then the token's prefix picks a scripted error
(``DEFAULT_ANSWERS``: "unregistered..." is 404 UNREGISTERED ...), else 200 ``{"name":
"projects/{p}/messages/0:..."}``. Error bodies are google.rpc.Status objects with an ``FcmError`` detail
(https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode). ``GET /stats`` (the peer's own,
not FCM's) counts what it answered, for a peer in another process.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import secrets
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import orjson
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"  # also allows FCM sends
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"  # RFC 7523 §2.1
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
MAX_PAYLOAD = 4096  # bytes: notification + data, FCM's limit for a message to a token (ErrorCode docs)
MAX_TTL = 2_419_200  # seconds (4 weeks), ErrorCode docs: "Invalid TTL"
MESSAGE_FIELDS = frozenset({"name", "data", "notification", "android", "webpush", "apns", "fcm_options",
                            "token", "topic", "condition"})  # projects.messages#Message
_DURATION = re.compile(r"\d+(\.\d{1,9})?s")  # protobuf Duration in JSON: "3.5s"
UNAUTHENTICATED = ("Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                   "or other valid authentication credential.")


@dataclass(frozen=True)
class Answer:
    status: int
    rpc_status: str  # google.rpc.Code name
    error_code: str | None  # the FcmError errorCode; None: no FcmError detail
    message: str
    retry_after: str | None = None
    token_violation: bool = False  # a BadRequest field violation on message.token


DEFAULT_ANSWERS: Mapping[str, Answer] = {  # by the token's prefix
    "unregistered": Answer(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
    "invalid-token": Answer(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
                            "The registration token is not a valid FCM registration token"),
    "invalid-field": Answer(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Request contains an invalid argument.",
                            token_violation=True),
    "bad-argument": Answer(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
                           "Invalid value at 'message.android.notification.color'"),
    "mismatch": Answer(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
    "quota": Answer(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded for quota metric 'Send requests'",
                    retry_after="30"),
    "unavailable": Answer(503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable.",
                          retry_after="10"),
    "internal": Answer(500, "INTERNAL", "INTERNAL", "Internal error encountered."),
    "apns-auth": Answer(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "Auth error from APNS or Web Push Service"),
    "denied": Answer(403, "PERMISSION_DENIED", None,
                     "Permission 'cloudmessaging.messages.create' denied on resource"),
    "revoked": Answer(401, "UNAUTHENTICATED", None, UNAUTHENTICATED),  # every access token refused
}


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # the JSON document
    answered: int = 0  # the HTTP status
    reply: Any = None  # the JSON answer


@dataclass
class FcmPeer:
    project_id: str = "clarion-test"
    token_lifetime: int = 3599  # seconds (Google's expires_in)
    answers: Mapping[str, Answer] = field(default_factory=lambda: dict(DEFAULT_ANSWERS))
    record: bool = True  # False: count only (the benchmark)
    requests: list[Request] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    token_requests: list[dict] = field(default_factory=list)  # the assertion's claims, or why it was refused
    token_failures: list[int | str] = field(default_factory=list)  # the next fetches' scripted answers
    stats: dict[str, int] = field(default_factory=lambda: {"tokens": 0, "sends": 0, "sent": 0})
    port: int = 0
    _keys: dict[str, Any] = field(default_factory=dict)  # client email -> RSA public key
    _issued: dict[str, float] = field(default_factory=dict)  # access token -> expiry (time.time())
    _ids: Any = field(default_factory=lambda: itertools.count(1_500_415_314_455_276))
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    # -- service accounts ------------------------------------------------------------------------
    def service_account(self, path: Path, email: str = "clarion@clarion-test.iam.gserviceaccount.com") -> Path:
        """Writes a service-account key file (a fresh RSA-2048 key) whose token_uri is this peer's, and trusts it."""
        write_service_account(Path(path), self.token_uri, self.project_id, email)
        self.trust(path)
        return Path(path)

    def trust(self, path: Path) -> None:
        """Accepts assertions signed with the key of this service-account file (made here or elsewhere)."""
        document = json.loads(Path(path).read_text())
        private = serialization.load_pem_private_key(document["private_key"].encode(), password=None)
        self._keys[document["client_email"]] = private.public_key()

    def expire_tokens(self) -> None:
        """Every access token issued so far is refused from now on (as after a revocation)."""
        self._issued.clear()

    # -- the server ------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/token", self._token)
        app.router.add_post("/v1/projects/{project}/messages:send", self._send)
        app.router.add_get("/stats", self._stats)
        return app

    def start(self) -> FcmPeer:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._open())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="fcm-peer", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the FCM peer did not start")
        return self

    async def _open(self, port: int = 0) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, backlog=1024)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        if self._loop is not None:
            self._loop.close()
        self._loop = self._runner = self._thread = None

    def __enter__(self) -> FcmPeer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- handlers --------------------------------------------------------------------------------
    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.stats["tokens"] += 1
        if self.token_failures:
            failure = self.token_failures.pop(0)
            if isinstance(failure, int):
                return web.Response(status=failure, text="<html>token endpoint trouble</html>",
                                    content_type="text/html")
            return _oauth_error(failure, "scripted")
        if form.get("grant_type") != JWT_BEARER:
            return _oauth_error("unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type')}")
        claims, why = self._verify(str(form.get("assertion") or ""))
        if self.record:
            self.token_requests.append(claims or {"refused": why})
        if claims is None:
            return _oauth_error("invalid_grant", why)
        if not {SCOPE, CLOUD_PLATFORM_SCOPE} & set(str(claims.get("scope", "")).split()):
            return _oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        token = "ya29.peer-" + secrets.token_urlsafe(32)
        self._issued[token] = time.time() + self.token_lifetime
        return _json(200, {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"})

    def _verify(self, assertion: str) -> tuple[dict | None, str]:
        try:
            issuer = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError as exc:
            return None, f"Invalid JWT: {exc}"
        key = self._keys.get(issuer)
        if key is None:
            return None, "Invalid grant: account not found"
        try:
            claims = jwt.decode(assertion, key, algorithms=["RS256"], audience=[self.token_uri, GOOGLE_TOKEN_URI],
                                issuer=issuer, options={"require": ["iss", "aud", "exp", "iat"]})
        except jwt.InvalidSignatureError:
            return None, "Invalid JWT Signature."
        except jwt.PyJWTError as exc:
            return None, f"Invalid JWT: {exc}"
        return claims, ""

    async def _send(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.stats["sends"] += 1
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        status, headers, payload = self._answer(request, body)
        if self.record:
            self.requests.append(Request(request.path, {k.lower(): v for k, v in request.headers.items()}, body,
                                         status, payload))
        self.stats[str(status)] = self.stats.get(str(status), 0) + 1
        return _json(status, payload, headers)

    def _answer(self, request: web.Request, body: Any) -> tuple[int, dict[str, str], dict]:
        authorization = request.headers.get("Authorization", "")
        expiry = self._issued.get(authorization[7:]) if authorization.startswith("Bearer ") else None
        if expiry is None or expiry < time.time():
            return _rpc_error(Answer(401, "UNAUTHENTICATED", None, UNAUTHENTICATED))
        if request.match_info["project"] != self.project_id:
            return _rpc_error(Answer(403, "PERMISSION_DENIED", None,
                                     "Permission 'cloudmessaging.messages.create' denied on resource"))
        if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
            return _invalid("message", "Invalid JSON payload received. Expected a message object.")
        message = body["message"]
        violation = check_message(message)
        if violation is not None:
            return _invalid(*violation)
        token = message.get("token") or ""
        for prefix, answer in self.answers.items():
            if token.startswith(prefix):
                return _rpc_error(answer)
        if self.record:
            self.messages.append(message)
        self.stats["sent"] += 1
        return 200, {}, {"name": f"projects/{self.project_id}/messages/0:{next(self._ids)}%{secrets.token_hex(8)}"}

    async def _stats(self, request: web.Request) -> web.Response:
        return _json(200, self.stats)


def write_service_account(path: Path, token_uri: str, project_id: str = "clarion-test",
                          email: str = "clarion@clarion-test.iam.gserviceaccount.com") -> Path:
    """A throwaway service-account key file, shaped as the Firebase console's "Generate new private key"."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    document = {"type": "service_account", "project_id": project_id, "private_key_id": secrets.token_hex(20),
                "private_key": pem, "client_email": email, "client_id": "1" + "0" * 20,
                "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri}
    path.write_text(json.dumps(document))
    return path


def check_message(message: dict) -> tuple[str, str] | None:
    """(field, description) of the first thing FCM would refuse in a Message, or None."""
    unknown = sorted(set(message) - MESSAGE_FIELDS)
    if unknown:
        return "message", f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at 'message'"
    targets = [name for name in ("token", "topic", "condition") if message.get(name)]
    if len(targets) != 1:
        return "message", "Exactly one of token, topic or condition must be set." if targets \
            else "Recipient of the message is not set."
    data = message.get("data") or {}
    if not isinstance(data, dict):
        return "message.data", "Invalid value at 'message.data' (type.googleapis.com/google.protobuf.Struct)"
    for index, (key, value) in enumerate(data.items()):
        if not isinstance(value, str):
            return f"message.data[{index}].value", f"Invalid value at 'message.data[{index}].value' (TYPE_STRING)"
        if key in ("from", "gcm") or key.startswith("google"):
            return f"message.data[{index}].key", f"Invalid data key {key!r}: reserved by FCM"
    ttl = (message.get("android") or {}).get("ttl")
    if ttl is not None and (not isinstance(ttl, str) or not _DURATION.fullmatch(ttl) or float(ttl[:-1]) > MAX_TTL):
        return "message.android.ttl", f"Invalid value at 'message.android.ttl' (type.googleapis.com/" \
                                      f"google.protobuf.Duration), {ttl!r}"
    size = len(orjson.dumps(message.get("notification") or {})) + len(orjson.dumps(data))
    if size > MAX_PAYLOAD:
        return "message", f"Message is too big: {size} bytes of notification and data (limit {MAX_PAYLOAD})"
    return None


def _rpc_error(answer: Answer) -> tuple[int, dict[str, str], dict]:
    details = []
    if answer.error_code:
        details.append({"@type": FCM_ERROR, "errorCode": answer.error_code})
    if answer.token_violation:
        details.append({"@type": BAD_REQUEST, "fieldViolations": [
            {"field": "message.token", "description": "Invalid registration token"}]})
    error = {"code": answer.status, "message": answer.message, "status": answer.rpc_status}
    if details:
        error["details"] = details
    return answer.status, {"Retry-After": answer.retry_after} if answer.retry_after else {}, {"error": error}


def _invalid(field_name: str, description: str) -> tuple[int, dict[str, str], dict]:
    return 400, {}, {"error": {"code": 400, "message": description, "status": "INVALID_ARGUMENT", "details": [
        {"@type": BAD_REQUEST, "fieldViolations": [{"field": field_name, "description": description}]},
        {"@type": FCM_ERROR, "errorCode": "INVALID_ARGUMENT"}]}}


def _oauth_error(error: str, description: str) -> web.Response:
    return _json(400, {"error": error, "error_description": description})


def _json(status: int, payload: dict, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), headers=headers,
                        content_type="application/json", charset="UTF-8")


def main() -> None:
    """Serves in this process until killed: for the benchmark, so the peer does not share a worker's CPU."""
    parser = argparse.ArgumentParser(description="A local FCM HTTP v1 API (tests/fcm_peer.py)")
    parser.add_argument("--service-account", action="append", default=[], help="key files to trust (repeatable)")
    parser.add_argument("--project-id", default="clarion-test")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the port here once listening")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    peer = FcmPeer(project_id=args.project_id, record=False)
    for path in args.service_account:
        peer.trust(Path(path))

    async def serve() -> None:
        await peer._open(args.port)
        if args.port_file:
            Path(args.port_file).write_text(str(peer.port))
        print(f"fcm peer listening on {peer.base_url}", file=sys.stderr, flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()

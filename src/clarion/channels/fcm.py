"""Mobile push through Firebase Cloud Messaging's HTTP v1 API: one POST per device token.

    provider = FcmProvider(FcmSettings(service_account_file="/etc/clarion/fcm.json"))
    result = await provider.send_to(message, PushTarget(kind="fcm", token="dQw4..."))
    await provider.aclose()

Auth: an OAuth 2.0 access token for the service account of the JSON key file (RFC 7523 JWT bearer grant,
made and signed by google-auth, sent to the file's ``token_uri``). The token is fetched when missing or
close to its expiry, in a worker thread (google-auth's transport is synchronous), under an asyncio lock:
concurrent sends share one fetch. A 401 UNAUTHENTICATED forces one fetch and one resend.

Request: ``POST {base_url}/v1/projects/{project_id}/messages:send`` with ``Authorization: Bearer`` and
``{"message": {"token", "notification", "data", "android", "apns", "webpush"}}`` built from
:class:`~.base.OutboundPush` and deep-merged with ``message.overrides`` (a ``None`` there drops a key).
https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages

Classification (FCM v1 error codes: https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode and
https://firebase.google.com/docs/cloud-messaging/error-codes; the ``errorCode`` of the
``google.firebase.fcm.v1.FcmError`` detail when there is one, else the google.rpc ``status``):

===========================================  =========================  =========================================
Answer                                       Outcome                    Why
===========================================  =========================  =========================================
200 with a message ``name``                  SENT                       ``provider_id`` = the name
2xx without a ``name``                       CONFIG_ERROR               ``base_url`` is not FCM
UNREGISTERED (404)                           BAD_ADDRESS + gone token   the app was uninstalled or the token
                                                                        expired: never valid again
INVALID_ARGUMENT (400) naming the token      BAD_ADDRESS + gone token   "not a valid FCM registration token",
                                                                        or a field violation on message.token
INVALID_ARGUMENT (400), anything else        FAILED                     the message itself (size, ttl, a key)
SENDER_ID_MISMATCH (403)                     BAD_ADDRESS + gone token   the token belongs to another project
QUOTA_EXCEEDED (429), any 429                RETRY                      ``Retry-After`` honoured
UNAVAILABLE (503), INTERNAL (500), 5xx       RETRY                      ``Retry-After`` honoured when given
THIRD_PARTY_AUTH_ERROR (401)                 CONFIG_ERROR               the project's APNs key or web push
                                                                        credentials are wrong in Firebase
UNAUTHENTICATED (401) after one refresh      CONFIG_ERROR               our access token keeps being refused
PERMISSION_DENIED (403), 404 without         CONFIG_ERROR               service account role, project id or
UNREGISTERED                                                            base URL
other 4xx                                    FAILED                     code and message kept
token endpoint: invalid_grant (any 4xx)      CONFIG_ERROR               key revoked, clock skew, wrong account
token endpoint: 5xx, unreachable             RETRY                      google-auth retried it already
connect error, timeout, broken connection    RETRY                      nothing was classified
===========================================  =========================  =========================================

A retried FCM message may arrive twice (FCM has no idempotency key); ``data.message_id`` lets the app
drop a duplicate. Cost per message matters (bench/push.py): the body is built with orjson from plain
dicts, the URL is parsed once, and the client and its keep-alive connections are shared.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import httpx
import orjson
from google.auth import exceptions as auth_exceptions
from google.auth import transport as auth_transport
from google.oauth2 import service_account

from .base import DeliveryResult, GoneToken, OutboundPush, Outcome, PushTarget
from .http import one_line as _line
from .sms_twilio import parse_retry_after

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"  # FCM HTTP v1 docs, "Authorize send requests"
DETAIL_CHARS = 300  # a provider message shortened to one line of at most this many characters
REFRESH_MARGIN = 300.0  # seconds: fetch a new access token this long before expiry (at most half its life)
DEFAULT_TOKEN_LIFETIME = 3600.0  # seconds: Google's access tokens live an hour; used when expires_in is absent
APNS_COLLAPSE_ID_MAX = 64  # bytes: APNs refuses a longer apns-collapse-id
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
GONE_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})
RETRY_CODES = frozenset({"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"})
CONFIG_CODES = frozenset({"THIRD_PARTY_AUTH_ERROR", "UNAUTHENTICATED", "PERMISSION_DENIED"})
_HEADERS = {"Content-Type": "application/json; charset=UTF-8", "Accept": "application/json"}


@dataclass(frozen=True)
class FcmSettings:
    """``project_id`` empty: the service account's. ``timeout``: seconds per connect, write or read.
    ``max_connections``: requests in flight at once (the worker's push concurrency)."""

    service_account_file: str
    base_url: str = "https://fcm.googleapis.com"
    project_id: str = ""
    timeout: float = 30.0
    max_connections: int = 16
    http2: bool = False  # httpx only (aiohttp speaks HTTP/1.1); the local peer is HTTP/1.1, so not measured
    # The HTTP client: "httpx", "aiohttp", or "auto" (aiohttp when installed: about 5x less CPU per request
    # than httpx + httpcore in bench/push.py; both give the same answers).
    client: str = "auto"

    def __post_init__(self) -> None:
        if not self.service_account_file:
            raise ValueError("FCM needs a service account JSON file (CLARION_FCM_SERVICE_ACCOUNT_FILE)")
        if self.timeout <= 0 or self.max_connections < 1:
            raise ValueError("FCM timeout and max_connections must be positive")
        if self.client not in ("auto", "httpx", "aiohttp"):
            raise ValueError(f"FCM client must be auto, httpx or aiohttp, not {self.client!r}")

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> FcmSettings:
        values = {"service_account_file": settings.fcm_service_account_file, "base_url": settings.fcm_base_url,
                  "project_id": settings.fcm_project_id, "max_connections": max(1, settings.push_concurrency)}
        return cls(**(values | overrides))


class FcmProvider:
    """A :class:`~.base.PushProvider` for ``fcm`` targets; call :meth:`send_to` concurrently."""

    def __init__(self, settings: FcmSettings) -> None:
        self.settings = settings
        try:
            self.credentials = service_account.Credentials.from_service_account_file(
                settings.service_account_file, scopes=[SCOPE])
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"FCM service account file {settings.service_account_file!r}: {exc}") from exc
        self.project_id = settings.project_id or self.credentials.project_id
        if not self.project_id:
            raise ValueError("FCM project id: set CLARION_FCM_PROJECT_ID or use a key file with project_id")
        self.url = httpx.URL(f"{settings.base_url.rstrip('/')}/v1/projects/{self.project_id}/messages:send")
        self._aiohttp_url: Any = None  # the URL parsed once by yarl (aiohttp's URL type)
        self.token_fetches = 0  # access tokens fetched (for tests and the benchmark's report)
        self._bearer: str | None = None  # "Bearer ya29..."
        self._fresh_until = 0.0  # time.time() after which the bearer is refreshed before use
        self._generation = 0  # fetches done; a send that waited for the lock shares the fetch it waited for
        self._last: str | DeliveryResult | None = None  # the latest fetch's bearer, or why it failed
        self._lock: asyncio.Lock | None = None
        self._client: httpx.AsyncClient | None = None  # created on first use, in the running loop
        self._session: Any = None  # aiohttp.ClientSession, likewise
        self._aiohttp = _aiohttp() if settings.client in ("auto", "aiohttp") else None
        if settings.client == "aiohttp" and self._aiohttp is None:
            raise ValueError("FCM client 'aiohttp' is not installed")
        self._transport = _HttpxTransport(settings.timeout)
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> FcmProvider:
        return cls(FcmSettings.from_settings(settings, **overrides))

    async def send_to(self, message: OutboundPush, target: PushTarget) -> DeliveryResult:
        if self._closed:
            raise RuntimeError("FcmProvider.send_to after aclose")
        if target.kind != "fcm":
            raise ValueError(f"FcmProvider cannot send to a {target.kind!r} target")
        body = build_body(message, target.token)
        stale = None
        for _ in range(2):  # a 401 means the token was revoked or expired early: one fetch, one resend
            bearer = await self.authorization(stale=stale)
            if isinstance(bearer, DeliveryResult):
                return bearer
            response = await self._post(body, bearer)
            if isinstance(response, DeliveryResult):
                return response
            status, retry_after, content = response
            if status != 401 or _error_code(_json(content)) == "THIRD_PARTY_AUTH_ERROR":
                break
            stale = bearer
        return classify(status, _json(content), target.token, retry_after)

    async def aclose(self) -> None:
        self._closed = True
        if self._client is not None:
            await self._client.aclose()
        if self._session is not None:
            await self._session.close()
        self._transport.close()

    # -- the access token ------------------------------------------------------------------------
    async def authorization(self, stale: str | None = None) -> str | DeliveryResult:
        """The ``Authorization`` value to send, fetching a token when there is none, it is about to expire,
        or it is ``stale`` (refused with 401). A failed fetch is a RETRY or CONFIG_ERROR result."""
        bearer = self._bearer
        if bearer is not None and bearer != stale and time.time() < self._fresh_until:
            return bearer
        generation = self._generation
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._generation != generation and self._last is not None:
                return self._last  # fetched (or failed) while this send waited: share it
            self._last = await self._fetch()
            self._generation += 1
            return self._last

    async def _fetch(self) -> str | DeliveryResult:
        try:
            await asyncio.to_thread(self.credentials.refresh, self._transport)
        except auth_exceptions.RefreshError as exc:  # the endpoint answered with an error
            code, detail = _refresh_error(exc)
            outcome = Outcome.RETRY if getattr(exc, "retryable", False) else Outcome.CONFIG_ERROR
            return DeliveryResult(outcome, code=code, detail=_line(f"token endpoint: {detail}"))
        except auth_exceptions.TransportError as exc:  # unreachable, timed out
            return DeliveryResult(Outcome.RETRY, code="token_endpoint", detail=_line(f"token endpoint: {exc}"))
        except (TypeError, ValueError, KeyError) as exc:  # a 200 that is not a token (an HTML page): not FCM's
            return DeliveryResult(Outcome.CONFIG_ERROR, code="token_endpoint",
                                  detail=_line(f"token endpoint: no access token in the answer ({exc!r})"))
        self.token_fetches += 1
        now = time.time()
        expiry = self.credentials.expiry  # naive UTC (google-auth's convention)
        lifetime = expiry.replace(tzinfo=UTC).timestamp() - now if expiry else DEFAULT_TOKEN_LIFETIME
        self._fresh_until = now + lifetime - min(REFRESH_MARGIN, lifetime / 2)
        self._bearer = f"Bearer {self.credentials.token}"
        return self._bearer

    # -- the request -----------------------------------------------------------------------------
    async def _post(self, body: bytes, bearer: str) -> tuple[int, str | None, bytes] | DeliveryResult:
        """(HTTP status, Retry-After, body) of one POST, or RETRY when nothing was answered."""
        if self._aiohttp is not None:
            return await self._post_aiohttp(body, bearer)
        try:
            response = await self._http().post(self.url, content=body, headers={"Authorization": bearer})
        except httpx.TimeoutException as exc:
            return DeliveryResult(Outcome.RETRY, detail=_line(f"timed out ({type(exc).__name__}): {exc}"))
        except httpx.TransportError as exc:  # refused, reset, DNS, TLS: nothing classified was said
            return DeliveryResult(Outcome.RETRY, detail=_line(f"{type(exc).__name__}: {exc}"))
        return response.status_code, response.headers.get("retry-after"), response.content

    async def _post_aiohttp(self, body: bytes, bearer: str) -> tuple[int, str | None, bytes] | DeliveryResult:
        aiohttp = self._aiohttp
        if self._session is None:
            size = self.settings.max_connections
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=size, limit_per_host=size),
                timeout=aiohttp.ClientTimeout(sock_connect=self.settings.timeout, sock_read=self.settings.timeout),
                headers=_HEADERS, skip_auto_headers=("User-Agent",))
            from yarl import URL  # aiohttp's own dependency

            self._aiohttp_url = URL(str(self.url), encoded=True)
        try:
            async with self._session.post(self._aiohttp_url, data=body,
                                          headers={"Authorization": bearer}) as response:
                return response.status, response.headers.get("Retry-After"), await response.read()
        except TimeoutError as exc:
            return DeliveryResult(Outcome.RETRY, detail=_line(f"timed out ({type(exc).__name__}): {exc}"))
        except aiohttp.ClientError as exc:  # refused, reset, DNS, TLS, a broken answer
            return DeliveryResult(Outcome.RETRY, detail=_line(f"{type(exc).__name__}: {exc}"))

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            size = self.settings.max_connections
            self._client = httpx.AsyncClient(
                http2=self.settings.http2, timeout=httpx.Timeout(self.settings.timeout),
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size), headers=_HEADERS)
        return self._client


def _aiohttp() -> Any:
    try:
        import aiohttp
    except ImportError:
        return None
    return aiohttp


def build_body(message: OutboundPush, token: str) -> bytes:
    """The JSON request body for one device: the message's fields in FCM's shape, then its overrides."""
    high = message.urgency == "high"
    ttl = max(0, int(message.ttl_seconds))
    notification = {"title": message.title, "body": message.body}
    if message.image:
        notification["image"] = message.image
    data = {k: v if type(v) is str else str(v) for k, v in message.data.items()}  # FCM: string values only
    data["message_id"] = message.message_id
    if message.url:
        data["url"] = message.url
    android: dict[str, Any] = {"priority": "HIGH" if high else "NORMAL", "ttl": f"{ttl}s"}
    apns_headers = {"apns-priority": "10" if high else "5",
                    "apns-expiration": str(int(time.time()) + ttl if ttl else 0)}
    aps: dict[str, Any] = {}
    if message.sound:
        android["notification"] = {"sound": message.sound}
        aps["sound"] = message.sound
    if message.badge is not None:
        aps["badge"] = message.badge
    if message.collapse_key:
        android["collapse_key"] = message.collapse_key
        apns_headers["apns-collapse-id"] = message.collapse_key.encode()[:APNS_COLLAPSE_ID_MAX].decode(
            "utf-8", "ignore")
    webpush: dict[str, Any] = {"headers": {"TTL": str(ttl), "Urgency": "high" if high else "normal"}}
    if message.icon:
        webpush["notification"] = {"icon": message.icon}
    if message.url and message.url.startswith("https://"):  # FCM accepts only https links here
        webpush["fcm_options"] = {"link": message.url}
    body = {"token": token, "notification": notification, "data": data, "android": android,
            "apns": {"headers": apns_headers, "payload": {"aps": aps}}, "webpush": webpush}
    if message.overrides:
        body = deep_merge(body, message.overrides)
    return orjson.dumps({"message": body})


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` laid over it: objects merge key by key, anything else replaces, and a
    ``None`` removes the key (a template can drop a block Clarion would send)."""
    merged = dict(base)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def classify(status: int, payload: dict[str, Any], token: str, retry_after: str | None = None) -> DeliveryResult:
    """The outcome of one messages:send answer: its HTTP status and JSON body ({} if none)."""
    if 200 <= status < 300:
        name = payload.get("name")
        if isinstance(name, str) and name:
            return DeliveryResult(Outcome.SENT, provider_id=name)
        return DeliveryResult(Outcome.CONFIG_ERROR, detail=f"HTTP {status} without a message name: is base_url FCM?")
    error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
    code = _error_code(payload) or str(status)
    detail = _line(str(error.get("message") or payload.get("message") or f"HTTP {status}"))
    gone = (GoneToken("fcm", token),)
    if code in GONE_CODES:
        return DeliveryResult(Outcome.BAD_ADDRESS, code=code, detail=detail, gone=gone)
    if code == "INVALID_ARGUMENT" and _names_the_token(error):
        return DeliveryResult(Outcome.BAD_ADDRESS, code=code, detail=detail, gone=gone)
    if status == 429 or status >= 500 or code in RETRY_CODES:
        return DeliveryResult(Outcome.RETRY, code=code, detail=detail, retry_after=parse_retry_after(retry_after))
    if code in CONFIG_CODES or status in (401, 403, 404):
        return DeliveryResult(Outcome.CONFIG_ERROR, code=code, detail=detail)
    return DeliveryResult(Outcome.FAILED, code=code, detail=detail)


def _error_code(payload: dict[str, Any]) -> str | None:
    """The FcmError detail's ``errorCode``, else the google.rpc status ("NOT_FOUND", "UNAUTHENTICATED")."""
    error = payload.get("error")
    if not isinstance(error, dict):
        return None
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and detail.get("@type") == FCM_ERROR_TYPE and detail.get("errorCode"):
            return str(detail["errorCode"])
    status = error.get("status")
    return str(status) if status else None


def _names_the_token(error: dict[str, Any]) -> bool:
    """INVALID_ARGUMENT about the registration token itself (not the message): FCM says so in the message
    ("The registration token is not a valid FCM registration token") or as a field violation."""
    if "registration token" in str(error.get("message") or "").lower():
        return True
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and detail.get("@type") == BAD_REQUEST_TYPE:
            for violation in detail.get("fieldViolations") or ():
                if isinstance(violation, dict) and violation.get("field") == "message.token":
                    return True
    return False


def _refresh_error(exc: auth_exceptions.RefreshError) -> tuple[str, str]:
    """(code, words) of a failed token fetch: google-auth passes the endpoint's JSON as the second arg."""
    data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
    code = str(data.get("error") or "token_endpoint")
    words = data.get("error_description") or (exc.args[0] if exc.args else code)
    return code, str(words)


def _json(content: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(content) if content else {}
    except orjson.JSONDecodeError:  # an HTML error page from a proxy or load balancer
        return {"message": content[:DETAIL_CHARS].decode("utf-8", "replace")}
    return payload if isinstance(payload, dict) else {}




class _HttpxResponse(auth_transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> dict[str, str]:
        return dict(self._response.headers)

    @property
    def data(self) -> bytes:
        return self._response.content


class _HttpxTransport(auth_transport.Request):
    """google-auth's synchronous transport interface over an httpx.Client (no ``requests`` dependency)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._client: httpx.Client | None = None

    def __call__(self, url: str, method: str = "GET", body: bytes | None = None,
                 headers: dict[str, str] | None = None, timeout: float | None = None, **kwargs: Any) -> _HttpxResponse:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout)
        try:
            response = self._client.request(method, url, content=body, headers=headers,
                                            timeout=timeout or self.timeout)
        except httpx.HTTPError as exc:
            raise auth_exceptions.TransportError(f"{type(exc).__name__}: {exc}") from exc
        return _HttpxResponse(response)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

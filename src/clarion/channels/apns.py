"""Apple Push Notification service (APNs): HTTP/2, token (JWT) authentication, the classification of its answers.

    provider = ApnsProvider(ApnsSettings(key_pem=open("AuthKey_ABC123DEFG.p8").read(), key_id="ABC123DEFG",
                                         team_id="DEF123GHIJ", topic="com.shop.app"))
    result = await provider.send_to(message, PushTarget(kind="apns", token="a1b2..."))
    await provider.aclose()

One POST per device to ``{base_url}/3/device/{token}`` over ONE HTTP/2 connection: APNs multiplexes
many streams on a connection and asks providers to keep it open rather than reconnect per message
(https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns).
The ``authorization: bearer <jwt>`` provider token is ES256-signed with the team's .p8 key, header
``{"alg": "ES256", "kid": key_id}``, claims ``{"iss": team_id, "iat": now}``. It is reused for every
request and minted again once it is 50 minutes old: Apple rejects tokens older than 60 minutes
(ExpiredProviderToken) and refreshes more often than every 20 minutes (TooManyProviderTokenUpdates)
(https://developer.apple.com/documentation/usernotifications/establishing-a-token-based-connection-to-apns).
A 403 ExpiredProviderToken all the same (a skewed clock) mints a new token and resends once.

``apns-id`` is a UUID derived from the message's idempotency key and the device token, so a retry of the
same notification carries the same id. A message without title and body is a background (data-only)
notification: ``apns-push-type: background``, ``content-available: 1``, priority 5, as Apple requires.

Classification (https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns):

=================================================================  ============  ===================================
Answer                                                             Outcome       Why
=================================================================  ============  ===================================
200                                                                SENT          ``provider_id`` = the apns-id header
400 BadDeviceToken, DeviceTokenNotForTopic                         BAD_ADDRESS   token gone (invalidated); note a
                                                                                 sandbox token sent to production
                                                                                 says BadDeviceToken too
410 Unregistered, ExpiredToken (``timestamp``, ms since epoch)     BAD_ADDRESS   gone since that instant: a token
                                                                                 registered again later is kept
400 BadTopic, TopicDisallowed, MissingTopic                        CONFIG_ERROR  our bundle id / topic
403 InvalidProviderToken, MissingProviderToken, BadCertificate*,   CONFIG_ERROR  our key, key id or team id
403 Forbidden, BadEnvironmentKeyInToken (any 403 but the next)
403 ExpiredProviderToken                                           RETRY         after the one resend with a new token
404 BadPath, 405 MethodNotAllowed                                  CONFIG_ERROR  ``base_url`` is not APNs
413 PayloadTooLarge (also checked before sending: 4,096 bytes)     FAILED        the message, not the device
429 TooManyRequests, TooManyProviderTokenUpdates                   RETRY         ``Retry-After`` honoured if sent
400 IdleTimeout                                                    RETRY         the connection, not the message
500 InternalServerError, 503 ServiceUnavailable, Shutdown, 5xx     RETRY         Apple-side trouble
other 400 (BadCollapseId, BadExpirationDate, BadPriority, ...)     FAILED        reason kept as ``code``
connect error, timeout, GOAWAY / reset stream                      RETRY         ``apns-id`` makes the retry the same
=================================================================  ============  ===================================
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ..services.clock import utcnow
from .base import DeliveryResult, GoneToken, OutboundPush, Outcome, PushTarget
from .http import json_object as _json
from .http import one_line as _line
from .sms_twilio import parse_retry_after

MAX_PAYLOAD = 4096  # bytes: APNs's limit for a regular remote notification (5,120 only for VoIP)
MAX_COLLAPSE_ID = 64  # bytes: apns-collapse-id, Apple's "Sending notification requests to APNs"
TOKEN_REFRESH_AGE = timedelta(minutes=50)  # Apple: refresh at most every 20 min, rejected past 60 min
_DEVICE_TOKEN = re.compile(r"[0-9a-fA-F]{64,200}")  # 32 bytes in hex today; Apple may lengthen them
_APNS_ID_NAMESPACE = uuid.UUID("6d1f4f0e-3a53-4c8e-9a57-0c1a7e5f2b11")  # Clarion's own: apns-id = uuid5(ns, ...)

GONE_REASONS = frozenset({"BadDeviceToken", "DeviceTokenNotForTopic", "Unregistered", "ExpiredToken"})
CONFIG_REASONS = frozenset({
    "BadTopic", "TopicDisallowed", "MissingTopic",  # 400: the apns-topic (bundle id) is ours to fix
    "InvalidProviderToken", "MissingProviderToken", "BadCertificate", "BadCertificateEnvironment",
    "BadEnvironmentKeyInToken", "Forbidden",  # 403: the key, key id, team id or environment
    "BadPath", "MethodNotAllowed",  # 404/405: base_url does not lead to APNs
})
RETRY_REASONS = frozenset({"TooManyRequests", "TooManyProviderTokenUpdates", "IdleTimeout", "ExpiredProviderToken",
                           "InternalServerError", "ServiceUnavailable", "Shutdown"})
EXPIRED_PROVIDER_TOKEN = "ExpiredProviderToken"


@dataclass(frozen=True)
class ApnsSettings:
    """``key_pem``: the .p8 signing key (PKCS#8 PEM, EC P-256). ``ca_file``: a CA to trust instead of the
    system's (tests: the local peer's). ``concurrency``: streams in flight at once on the connection.
    ``timeout``: seconds per connect, write or read."""

    key_pem: str = field(repr=False)
    key_id: str
    team_id: str
    topic: str
    base_url: str = "https://api.push.apple.com"
    ca_file: str | None = None
    concurrency: int = 16
    timeout: float = 30.0

    def __post_init__(self) -> None:
        missing = [name for name in ("key_pem", "key_id", "team_id", "topic") if not getattr(self, name)]
        if missing:
            raise ValueError(f"APNs needs {', '.join(missing)}")
        if self.concurrency < 1 or self.timeout <= 0:
            raise ValueError("APNs concurrency and timeout must be positive")

    @classmethod
    def from_settings(cls, settings: Any) -> ApnsSettings | None:
        """None when APNs is not configured; ValueError when it is half configured or the key is unreadable."""
        values = {"apns_key_file": settings.apns_key_file, "apns_key_id": settings.apns_key_id,
                  "apns_team_id": settings.apns_team_id, "apns_topic": settings.apns_topic}
        if not any(values.values()):
            return None
        missing = [f"CLARION_{name.upper()}" for name, value in values.items() if not value]
        if missing:
            raise ValueError(f"APNs is partly configured: set {', '.join(missing)}")
        try:
            key_pem = Path(settings.apns_key_file).read_text()
        except OSError as exc:
            raise ValueError(f"cannot read CLARION_APNS_KEY_FILE {settings.apns_key_file!r}: {exc}") from None
        return cls(key_pem=key_pem, key_id=settings.apns_key_id, team_id=settings.apns_team_id,
                   topic=settings.apns_topic, base_url=settings.apns_base_url, ca_file=settings.apns_ca_file or None,
                   concurrency=settings.push_concurrency)


def load_signing_key(pem: str) -> ec.EllipticCurvePrivateKey:
    """The .p8 key as a P-256 private key, or ValueError saying what is wrong with it."""
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"the APNs key is not a PEM private key (.p8): {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("the APNs key must be an EC P-256 key (Apple's .p8 signing key, ES256)")
    return key


class ProviderToken:
    """The provider JWT: one for every request until it is ``max_age`` old (by ``clock``), then a new one."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, key_id: str, team_id: str,
                 clock: Callable[[], datetime] = utcnow, max_age: timedelta = TOKEN_REFRESH_AGE) -> None:
        self._key, self._key_id, self._team_id = key, key_id, team_id
        self._clock, self._max_age = clock, max_age
        self._token: str | None = None
        self._issued: datetime | None = None

    def current(self) -> str:
        now = self._clock()
        if self._token is None or self._issued is None or now - self._issued >= self._max_age:
            return self._mint(now)
        return self._token

    def renew(self, rejected: str) -> str:
        """APNs called ``rejected`` expired: mint once, however many streams in flight were refused with it."""
        if self._token == rejected:
            return self._mint(self._clock())
        return self.current()

    def _mint(self, now: datetime) -> str:
        claims = {"iss": self._team_id, "iat": int(now.timestamp())}
        self._token = jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self._key_id})
        self._issued = now
        return self._token


class ApnsProvider:
    """A :class:`~.base.PushProvider` for APNs; call :meth:`send_to` concurrently (one HTTP/2 connection)."""

    def __init__(self, settings: ApnsSettings, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.clock = clock
        self.tokens = ProviderToken(load_signing_key(settings.key_pem), settings.key_id, settings.team_id, clock)
        self._client: httpx.AsyncClient | None = None  # created on first use, in the running loop
        self._gate: asyncio.Semaphore | None = None
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Any, clock: Callable[[], datetime] = utcnow) -> ApnsProvider | None:
        apns = ApnsSettings.from_settings(settings)
        return cls(apns, clock) if apns is not None else None

    async def send_to(self, message: OutboundPush, target: PushTarget) -> DeliveryResult:
        if self._closed:
            raise RuntimeError("ApnsProvider.send_to after aclose")
        if not _DEVICE_TOKEN.fullmatch(target.token):  # also keeps the token from reshaping the URL path
            return DeliveryResult(Outcome.BAD_ADDRESS, code="BadDeviceToken", detail="not a hexadecimal device token",
                                  gone=(GoneToken("apns", target.token),))
        headers, body = build_request(message, target, self.settings.topic, self.clock())
        if len(body) > MAX_PAYLOAD:
            return DeliveryResult(Outcome.FAILED, code="PayloadTooLarge",
                                  detail=f"payload is {len(body)} bytes; APNs takes at most {MAX_PAYLOAD}")
        if len(headers.get("apns-collapse-id", "").encode()) > MAX_COLLAPSE_ID:
            return DeliveryResult(Outcome.FAILED, code="BadCollapseId",
                                  detail=f"collapse key is over {MAX_COLLAPSE_ID} bytes")
        url = f"{self.settings.base_url.rstrip('/')}/3/device/{target.token}"
        bearer = self.tokens.current()
        response = await self._post(url, headers, body, bearer)
        if isinstance(response, httpx.Response) and _reason(response) == EXPIRED_PROVIDER_TOKEN:
            response = await self._post(url, headers, body, self.tokens.renew(bearer))  # once: the next is RETRY
        if isinstance(response, DeliveryResult):
            return response
        return classify(response.status_code, _json(response), target, response.headers.get("apns-id")
                        or headers["apns-id"], response.headers.get("Retry-After"))

    async def aclose(self) -> None:
        self._closed = True
        if self._client is not None:
            await self._client.aclose()

    async def _post(self, url: str, headers: dict[str, str], body: bytes,
                    bearer: str) -> httpx.Response | DeliveryResult:
        client, gate = self._http()
        try:
            async with gate:
                return await client.post(url, content=body, headers={**headers, "authorization": f"bearer {bearer}"})
        except httpx.TimeoutException as exc:
            return DeliveryResult(Outcome.RETRY, detail=_line(f"timed out ({type(exc).__name__}): {exc}"))
        except httpx.TransportError as exc:  # refused, reset, TLS, GOAWAY: nothing classified was said
            return DeliveryResult(Outcome.RETRY, detail=_line(f"{type(exc).__name__}: {exc}"))

    def _http(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        if self._client is None or self._gate is None:
            settings = self.settings
            verify: ssl.SSLContext | bool = True
            if settings.ca_file:
                verify = ssl.create_default_context(cafile=settings.ca_file)
                verify.minimum_version = ssl.TLSVersion.TLSv1_2  # Apple: TLS 1.2 or later
            # One connection, many streams: APNs wants connections kept open, not one per notification.
            limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            self._client = httpx.AsyncClient(http1=False, http2=True, verify=verify, limits=limits,
                                             timeout=httpx.Timeout(settings.timeout),
                                             headers={"content-type": "application/json"})
            self._gate = asyncio.Semaphore(settings.concurrency)
        return self._client, self._gate


def build_request(message: OutboundPush, target: PushTarget, topic: str, now: datetime) -> tuple[dict[str, str], bytes]:
    """The apns-* headers (without authorization) and the JSON payload for one device."""
    background = not message.title and not message.body
    ttl = max(0, message.ttl_seconds)
    headers = {
        "apns-push-type": "background" if background else "alert",
        "apns-topic": target.app_id or topic,
        "apns-priority": "10" if message.urgency == "high" and not background else "5",
        "apns-expiration": str(int(now.timestamp()) + ttl) if ttl else "0",  # 0: deliver now or never
        "apns-id": apns_id(message.idempotency_key, target.token),
    }
    if message.collapse_key:
        headers["apns-collapse-id"] = message.collapse_key
    override = message.overrides.get("apns") or {}
    for name, value in (override.get("headers") or {}).items():
        if name.lower().startswith("apns-") and name.lower() != "apns-id":
            headers[name.lower()] = str(value)
    payload = _merge(build_payload(message, background), override.get("payload") or {})
    return headers, json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def build_payload(message: OutboundPush, background: bool) -> dict[str, Any]:
    aps: dict[str, Any] = {"content-available": 1} if background else {
        "alert": {"title": message.title, "body": message.body}}
    if message.badge is not None:
        aps["badge"] = message.badge
    if message.sound and not background:
        aps["sound"] = message.sound
    if message.image and not background:
        aps["mutable-content"] = 1  # lets the app's notification service extension fetch the image
    payload: dict[str, Any] = {key: value for key, value in message.data.items() if key != "aps"}
    payload["message_id"] = message.message_id
    if message.url:
        payload["url"] = message.url
    if message.image:
        payload["image"] = message.image
    payload["aps"] = aps
    return payload


def apns_id(idempotency_key: str, token: str) -> str:
    """The same notification to the same device always has the same apns-id (canonical lower-case UUID)."""
    return str(uuid.uuid5(_APNS_ID_NAMESPACE, f"{idempotency_key}\n{token.lower()}"))


def classify(status: int, body: Mapping[str, Any], target: PushTarget, apns_id_: str | None = None,
             retry_after: str | None = None) -> DeliveryResult:
    """The outcome of one APNs answer: its status, its JSON body ({"reason", "timestamp"}; {} if none)."""
    reason = str(body["reason"]) if body.get("reason") else None
    code = reason or str(status)
    detail = _line(f"HTTP {status} {reason or ''}".strip())
    if status == 200:
        return DeliveryResult(Outcome.SENT, provider_id=apns_id_)
    if reason in GONE_REASONS or (reason is None and status == 410):
        since = _since(body.get("timestamp")) if status == 410 else None
        return DeliveryResult(Outcome.BAD_ADDRESS, code=code, detail=detail,
                              gone=(GoneToken("apns", target.token, since),))
    if reason in RETRY_REASONS or status == 429 or status >= 500:
        return DeliveryResult(Outcome.RETRY, code=code, detail=detail, retry_after=parse_retry_after(retry_after))
    if reason in CONFIG_REASONS or status in (403, 404, 405) or (reason or "").startswith("BadCertificate"):
        return DeliveryResult(Outcome.CONFIG_ERROR, code=code, detail=detail)
    return DeliveryResult(Outcome.FAILED, code=code, detail=detail)  # 413 and every other 4xx


def _since(timestamp: Any) -> datetime | None:
    """APNs's 410 ``timestamp``: milliseconds since the epoch when the token was last known invalid."""
    try:
        return datetime.fromtimestamp(int(timestamp) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, Mapping) and isinstance(
            merged.get(key), dict) else value
    return merged


def _reason(response: httpx.Response) -> str | None:
    return str(_json(response).get("reason") or "") or None





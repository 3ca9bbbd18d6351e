"""Web push (RFC 8030) to browsers: an encrypted payload (RFC 8291, aes128gcm) signed with VAPID (RFC 8292).

    provider = WebPushProvider(WebPushSettings(vapid_private_key_pem=pem, subject="mailto:ops@shop.example"))
    result = await provider.send_to(message, PushTarget("webpush", endpoint, p256dh=..., auth=...))
    await provider.aclose()

One POST per subscription to its endpoint (the push service's URL the browser gave), through httpx.
The body is the JSON document ``{"title", "body", "icon", "url", "message_id", "data"}`` (at most
3,993 bytes, RFC 8291 §4) encrypted for the subscription's ``p256dh`` key and ``auth`` secret. The
``Authorization: vapid t=<JWT>, k=<public key>`` header names the push service's origin (``aud``) and
our contact (``sub``); its JWT is cached per origin for 12 hours. ``TTL``, ``Urgency`` and ``Topic``
(RFC 8030 §5.2-5.4) come from the message's ``ttl_seconds``, ``urgency`` and ``collapse_key``.

An endpoint is a URL that came from a browser, so it is untrusted: at send time its host is resolved
and any loopback, private, link-local or reserved address among the answers is refused (SSRF) unless
``allow_private`` (tests). The request then goes to the vetted address itself, with the name kept as
Host header and TLS SNI (the certificate is checked against the name), so a DNS answer that changes
between the check and the connection (DNS rebinding) cannot move it inside; one client per push
service host name, so a TLS connection is never reused under another name. Redirects are never followed.

Classification (RFC 8030 §5-§8; autopush: https://mozilla-services.github.io/autopush-rs/errors.html;
FCM: https://firebase.google.com/docs/cloud-messaging/migrate-v1 web push, "404/410: expired"):

=====================================================  ============  ==================================
Answer                                                 Outcome       Why
=====================================================  ============  ==================================
201 / 202 (any 2xx)                                    SENT          ``provider_id`` = ``Location``
404 Not Found, 410 Gone                                BAD_ADDRESS   the subscription is gone (``gone``)
413 Payload Too Large                                  FAILED        this message, not the subscription
429 Too Many Requests                                  RETRY         ``Retry-After`` honoured
400 Bad Request (missing TTL, bad crypto headers)      FAILED        the request, not the subscription
401 / 403 (VAPID refused, or key mismatch)             CONFIG_ERROR  our VAPID key or subject
5xx, timeout, connection error                         RETRY         push-service trouble
3xx (redirects are not followed), other 4xx            FAILED        code and message kept
endpoint resolves to an internal address               BAD_ADDRESS   ``ssrf_blocked``, and ``gone``
not https, or no p256dh/auth keys                      BAD_ADDRESS   ``bad_subscription``, and ``gone``
payload over 3,993 bytes                               FAILED        ``payload_too_large``, not sent
=====================================================  ============  ==================================
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import http_ece
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from ..domain.network import is_public
from .base import DeliveryResult, GoneToken, OutboundPush, Outcome, PushTarget
from .http import HttpAdapter, pool_limits
from .http import one_line as _line
from .sms_twilio import parse_retry_after
from .webhook import Refused, Resolver, Target, check_url, resolve

MAX_PLAINTEXT = 3_993  # bytes: RFC 8291 §4, 4,096-byte record minus 86 header, 16 tag, 1 padding delimiter
RECORD_SIZE = 4_096  # bytes: RFC 8291 §4, one record holds the whole payload
VAPID_LIFETIME = 23 * 3600  # seconds: RFC 8292 §2 allows at most 24 h; an hour of margin for clock skew
VAPID_REUSE = 12 * 3600  # seconds: a cached JWT is re-signed after 12 h, so it has >= 11 h left when used
TOPIC_CHARS = 32  # RFC 8030 §5.4: at most 32 characters of the base64url alphabet
URGENCIES = ("very-low", "low", "normal", "high")  # RFC 8030 §5.3
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")


@dataclass(frozen=True)
class WebPushSettings:
    """``timeout``: seconds per connect, write or read. ``max_connections``: requests in flight at once."""

    vapid_private_key_pem: bytes = field(repr=False)
    subject: str  # mailto: or https: contact for the push service's operators (RFC 8292 §2.1)
    allow_private: bool = False  # tests only: a local push service on 127.0.0.1
    ca_file: str | None = None  # tests only: trust a local push service's certificate authority
    timeout: float = 30.0
    max_connections: int = 16

    def __post_init__(self) -> None:
        if not self.subject.startswith(("mailto:", "https:")):
            raise ValueError("the VAPID subject must be a mailto: or https: URI (RFC 8292 §2.1)")
        if self.timeout <= 0 or self.max_connections < 1:
            raise ValueError("web push timeout and max_connections must be positive")


def load_vapid(pem: bytes) -> Vapid02:
    """The VAPID key pair from a PEM private key (``clarion webpush keys`` writes one)."""
    try:
        return Vapid02.from_pem(pem)
    except Exception as exc:  # py_vapid raises bare ValueError/TypeError for junk
        raise ValueError(f"not a PEM EC P-256 private key: {exc}") from None


def application_server_key(vapid: Vapid02) -> str:
    """The public key as the browser's ``applicationServerKey`` wants it: the uncompressed point, base64url."""
    raw = vapid.public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64url(raw)


class WebPushProvider(HttpAdapter):
    """A :class:`~.base.PushProvider` for ``webpush`` targets; call :meth:`send_to` concurrently."""

    def __init__(self, settings: WebPushSettings, resolver: Resolver = resolve) -> None:
        self.settings = settings
        self.resolver = resolver  # name, port -> addresses (blocking; run in a thread)
        self.vapid = load_vapid(settings.vapid_private_key_pem)
        self.public_key = application_server_key(self.vapid)
        self._jwts: dict[str, tuple[str, float]] = {}  # origin -> (Authorization header, signed at, Unix s)
        self._clients: dict[str, httpx.AsyncClient] = {}  # push service host name -> its client

    @classmethod
    def from_settings(cls, settings: Any) -> WebPushProvider:
        """From :class:`clarion.config.Settings`; a missing key file or subject is a clear ValueError."""
        if not settings.webpush_vapid_private_key_file or not settings.webpush_vapid_subject:
            raise ValueError("web push needs CLARION_WEBPUSH_VAPID_PRIVATE_KEY_FILE and CLARION_WEBPUSH_VAPID_SUBJECT")
        pem = Path(settings.webpush_vapid_private_key_file).read_bytes()
        return cls(WebPushSettings(vapid_private_key_pem=pem, subject=settings.webpush_vapid_subject,
                                   allow_private=settings.webpush_allow_private_endpoints,
                                   ca_file=settings.webpush_ca_file or None,
                                   max_connections=max(1, settings.webpush_concurrency)))

    async def send_to(self, message: OutboundPush, target: PushTarget) -> DeliveryResult:
        self.check_open()
        endpoint = target.token
        gone = (GoneToken("webpush", endpoint),)
        problem = _subscription_problem(target)
        if problem:
            return DeliveryResult(Outcome.BAD_ADDRESS, code="bad_subscription", detail=problem, gone=gone)
        plaintext = payload(message)
        if len(plaintext) > MAX_PLAINTEXT:
            return DeliveryResult(Outcome.FAILED, code="payload_too_large",
                                  detail=f"payload is {len(plaintext)} bytes; web push carries {MAX_PLAINTEXT}")
        vetted = await self._vetted(endpoint, gone)
        if isinstance(vetted, DeliveryResult):
            return vetted
        service, address = vetted
        body = encrypt(plaintext, target.p256dh or "", target.auth or "")
        headers = self.headers(message, endpoint) | {"Host": service.host_header}
        response = await self.post(service.url_for(address), client=self._client_for(service.hostname),
                                   content=body, headers=headers, extensions={"sni_hostname": service.hostname})
        if isinstance(response, DeliveryResult):
            return response
        return classify(response.status_code, endpoint, _error_text(response), response.headers.get("Location"),
                        response.headers.get("Retry-After"))

    def headers(self, message: OutboundPush, endpoint: str) -> dict[str, str]:
        headers = {"TTL": str(max(0, int(message.ttl_seconds))), "Content-Encoding": "aes128gcm",
                   "Content-Type": "application/octet-stream",
                   "Urgency": message.urgency if message.urgency in URGENCIES else "normal",
                   "Authorization": self.authorization(origin(endpoint))}
        if message.collapse_key:
            headers["Topic"] = topic(message.collapse_key)
        return headers

    def authorization(self, aud: str, now: float | None = None) -> str:
        """``vapid t=<JWT>,k=<key>`` for one push service origin, re-signed every :data:`VAPID_REUSE` seconds."""
        now = time.time() if now is None else now
        cached = self._jwts.get(aud)
        if cached is None or now - cached[1] >= VAPID_REUSE:
            claims = {"aud": aud, "exp": int(now) + VAPID_LIFETIME, "sub": self.settings.subject}
            cached = self.vapid.sign(claims)["Authorization"], now
            self._jwts[aud] = cached
        return cached[0]

    async def _vetted(self, endpoint: str, gone: tuple[GoneToken, ...]) -> tuple[Target, str] | DeliveryResult:
        """The endpoint's parts and the public address to connect to, or why not."""
        try:
            service = check_url(endpoint)  # https only, no credentials, a valid host name
        except Refused as refused:
            return DeliveryResult(Outcome.BAD_ADDRESS, code="bad_subscription", detail=refused.result.detail,
                                  gone=gone)
        try:
            addresses = await asyncio.to_thread(self.resolver, service.hostname, service.port)
        except OSError as exc:  # DNS down or the name is gone for now: the push service may come back
            return DeliveryResult(Outcome.RETRY, code="dns", detail=_line(f"cannot resolve the endpoint: {exc}"))
        inside = [] if self.settings.allow_private else [a for a in addresses if not is_public(a)]
        if inside or not addresses:
            return DeliveryResult(Outcome.BAD_ADDRESS, code="ssrf_blocked", gone=gone,
                                  detail=f"the endpoint's host resolves to {', '.join(inside) or 'nothing'}, "
                                         "not a public address")
        return service, addresses[0]

    def _client_for(self, hostname: str) -> httpx.AsyncClient:
        if hostname not in self._clients:
            # trust_env=False: a proxy from the environment would connect by name, around the vetting.
            self._clients[hostname] = httpx.AsyncClient(**self.client_options(), trust_env=False)
        return self._clients[hostname]

    async def aclose(self) -> None:
        await super().aclose()
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    def client_options(self) -> dict[str, Any]:
        settings = self.settings
        limits = pool_limits(settings.max_connections)
        verify: ssl.SSLContext | bool = True
        if settings.ca_file:
            verify = ssl.create_default_context(cafile=settings.ca_file)
        return {"limits": limits, "timeout": httpx.Timeout(settings.timeout), "verify": verify,
                "follow_redirects": False}


def payload(message: OutboundPush) -> bytes:
    """The plaintext the service worker reads with ``event.data.json()``."""
    document = {"title": message.title, "body": message.body, "icon": message.icon, "url": message.url,
                "message_id": message.message_id, "data": dict(message.data)}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def encrypt(plaintext: bytes, p256dh: str, auth: str) -> bytes:
    """RFC 8291 aes128gcm: a fresh sender key pair and salt per message; the header carries both."""
    sender = ec.generate_private_key(ec.SECP256R1())
    return http_ece.encrypt(plaintext, private_key=sender, dh=b64url_decode(p256dh), auth_secret=b64url_decode(auth),
                            version="aes128gcm", rs=RECORD_SIZE)


def classify(status: int, endpoint: str, detail: str, location: str | None = None,
             retry_after: str | None = None) -> DeliveryResult:
    """The outcome of one push service answer (the module docstring's table)."""
    code = str(status)
    if 200 <= status < 300:
        return DeliveryResult(Outcome.SENT, provider_id=location or None, code=code)
    if status in (404, 410):
        return DeliveryResult(Outcome.BAD_ADDRESS, code=code, detail=detail,
                              gone=(GoneToken("webpush", endpoint),))
    if status == 429 or status >= 500:
        return DeliveryResult(Outcome.RETRY, code=code, detail=detail, retry_after=parse_retry_after(retry_after))
    if status in (401, 403):
        return DeliveryResult(Outcome.CONFIG_ERROR, code=code, detail=_line(f"VAPID refused: {detail}"))
    return DeliveryResult(Outcome.FAILED, code=code, detail=detail)


def origin(endpoint: str) -> str:
    """The VAPID ``aud``: scheme, host and a non-default port (RFC 8292 §2: the push resource's origin)."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    default = 443 if parts.scheme == "https" else 80
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{host}{port}"


def topic(collapse_key: str) -> str:
    """A ``Topic`` header: the collapse key itself when it fits RFC 8030 §5.4, else a digest of it."""
    if _TOPIC.fullmatch(collapse_key):
        return collapse_key
    return b64url(hashlib.sha256(collapse_key.encode()).digest())[:TOPIC_CHARS]


def _subscription_problem(target: PushTarget) -> str | None:
    parts = urlsplit(target.token)
    if parts.scheme != "https" or not parts.hostname:
        return "a web push endpoint must be an https URL"
    if not target.p256dh or not target.auth:
        return "the subscription has no p256dh/auth keys, so no payload can be encrypted for it"
    try:
        if len(b64url_decode(target.p256dh)) != 65 or len(b64url_decode(target.auth)) != 16:
            return "p256dh must be a 65-byte P-256 point and auth a 16-byte secret (RFC 8291 §3)"
    except (binascii.Error, ValueError):
        return "p256dh or auth is not base64url"
    return None


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    text = text.strip().replace("+", "-").replace("/", "_").rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _error_text(response: httpx.Response) -> str:
    """autopush answers ``{"code", "errno", "error", "message", "more_info"}``; FCM a text or JSON body."""
    try:
        body = response.json()
    except ValueError:
        return _line(response.text or f"HTTP {response.status_code}")
    if isinstance(body, dict):
        errno = f"errno {body['errno']}: " if body.get("errno") is not None else ""
        return _line(errno + str(body.get("message") or body.get("error") or f"HTTP {response.status_code}"))
    return _line(response.text)



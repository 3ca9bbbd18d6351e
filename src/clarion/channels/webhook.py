"""Signed JSON webhooks to the business's own endpoint (httpx), with SSRF protection.

    channel = WebhookChannel(WebhookSettings(secret="whsec_..."))
    result = await channel.send(OutboundWebhook(url="https://crm.example/hooks/clarion", body=b'{...}',
                                                message_id="42.ab12", idempotency_key="ab12..."))
    await channel.aclose()

One POST per message, the body exactly as composed, with::

    Content-Type: application/json
    User-Agent: Clarion-Webhook/1
    X-Clarion-Message-Id: <message id>          Idempotency-Key: <idempotency key> (the same on every retry)
    X-Clarion-Timestamp: <Unix seconds>         X-Clarion-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

The timestamp is inside the MAC (as Stripe does, https://docs.stripe.com/webhooks#verify-manually), so a
captured request cannot be replayed later: the receiver checks it with :func:`verify_signature`.

**SSRF.** The URL comes from a setting or a campaign, and its name may resolve anywhere, so every send:
requires https (unless ``allow_private``); resolves the host now, in a thread; refuses the message when
ANY resolved address is not public (loopback, private, link-local with the 169.254.169.254 metadata
service, CGNAT, multicast, reserved, unspecified, IPv4-mapped or 6to4 addresses of those); then connects
to a vetted address itself, with the name kept as Host header and TLS SNI (and certificate check), so a
DNS answer that changes between the check and the connection (DNS rebinding) cannot move the request
inside. Redirects are never followed. One HTTP client per host name: a TLS connection opened for one
name is never reused for another name that shares its address.

Classification:

========================================  ============  =====================================================
Answer                                    Outcome       Why
========================================  ============  =====================================================
2xx                                       SENT          the receiver took it
408, 425, 429, any 5xx                    RETRY         ``Retry-After`` honoured, capped at MAX_RETRY_AFTER
3xx                                       FAILED        ``redirect``: redirects are refused (SSRF)
other 4xx (and anything else)             FAILED        the receiver refused this message; status kept
an address that is not public             FAILED        ``ssrf_blocked``
not a URL, credentials in it, not https   CONFIG_ERROR  ``bad_url`` / ``https_required``: pause, fix the URL
name does not resolve, connect or TLS     RETRY         the Idempotency-Key lets the receiver drop a
error, timeout, broken connection                       repeat of a message it already has
========================================  ============  =====================================================
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx

from ..domain.network import host_address, is_public
from .base import DeliveryResult, OutboundWebhook, Outcome
from .http import one_line as _line
from .sms_twilio import parse_retry_after

USER_AGENT = "Clarion-Webhook/1"
SIGNATURE_VERSION = "v1"
DETAIL_BYTES = 2048  # bytes of the answer's body read at most: a hostile endpoint cannot make us buffer more
MAX_RETRY_AFTER = 3600.0  # seconds: a Retry-After further out is cut to an hour (CLARION_RETRY_CAP_SECONDS' default)
DEFAULT_TOLERANCE = 300  # seconds a signature stays acceptable (Stripe's default tolerance)
MAX_CLIENTS = 64  # host names with an open client at once; the least recently used is closed beyond
RETRY_STATUSES = frozenset({408, 425, 429})  # timeout, too early, too many requests (RFC 9110, 8470, 6585)

Resolver = Callable[[str, int], list[str]]


@dataclass(frozen=True)
class WebhookSettings:
    """``timeout``: seconds for the whole request; ``concurrency``: requests in flight per host name.
    ``ca_file``: a certificate authority to trust besides the system's (tests with a local https peer)."""

    secret: str = field(repr=False)
    timeout: float = 10.0
    concurrency: int = 8
    allow_private: bool = False  # tests only: loopback and private addresses, and plain http
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if not self.secret:
            raise ValueError("a webhook secret is required: messages are never sent unsigned")
        if self.timeout <= 0 or self.concurrency < 1:
            raise ValueError("webhook timeout and concurrency must be positive")

    @classmethod
    def from_settings(cls, settings) -> WebhookSettings:
        """From :class:`clarion.config.Settings` (CLARION_WEBHOOK_*)."""
        return cls(secret=settings.webhook_secret, timeout=settings.webhook_timeout_seconds,
                   concurrency=settings.webhook_concurrency, allow_private=settings.webhook_allow_private_urls)


class Refused(Exception):
    """The URL may not be called; ``result`` says why (an expected outcome, turned into a value by send)."""

    def __init__(self, result: DeliveryResult) -> None:
        super().__init__(result.detail)
        self.result = result


class WebhookChannel:
    """Sends :class:`~.base.OutboundWebhook` messages; call :meth:`send` concurrently."""

    def __init__(self, settings: WebhookSettings, *, clock: Callable[[], float] = time.time,
                 resolver: Resolver | None = None) -> None:
        self.settings = settings
        self.clock = clock  # Unix seconds for X-Clarion-Timestamp
        self.resolver = resolver or resolve
        self._clients: OrderedDict[str, httpx.AsyncClient] = OrderedDict()
        self._closed = False

    @classmethod
    def from_settings(cls, settings) -> WebhookChannel:
        return cls(WebhookSettings.from_settings(settings))

    async def send(self, message: OutboundWebhook) -> DeliveryResult:
        if self._closed:
            raise RuntimeError("WebhookChannel.send after aclose")
        try:
            target = check_url(message.url, self.settings.allow_private)
            addresses = await self._vetted_addresses(target)
        except Refused as refused:
            return refused.result
        headers = signed_headers(self.settings.secret, message, int(self.clock()))
        headers["Host"] = target.host_header
        try:
            async with asyncio.timeout(self.settings.timeout):
                return await self._post(target, addresses, message.body, headers)
        except TimeoutError:
            return DeliveryResult(Outcome.RETRY, code="timeout",
                                  detail=f"no answer within {self.settings.timeout:g} s")

    async def aclose(self) -> None:
        self._closed = True
        clients, self._clients = list(self._clients.values()), OrderedDict()
        for client in clients:
            await client.aclose()

    async def _vetted_addresses(self, target: Target) -> list[str]:
        try:
            addresses = await asyncio.to_thread(self.resolver, target.hostname, target.port)
        except OSError as exc:  # socket.gaierror: no such name, or DNS trouble: may well pass
            raise Refused(DeliveryResult(Outcome.RETRY, code="dns", detail=_line(
                f"cannot resolve {target.hostname!r}: {exc}"))) from None
        if not addresses:
            raise Refused(DeliveryResult(Outcome.RETRY, code="dns", detail=f"{target.hostname!r} has no address"))
        if not self.settings.allow_private:
            inside = [a for a in addresses if not is_public(a)]
            if inside:
                raise Refused(DeliveryResult(Outcome.FAILED, code="ssrf_blocked", detail=_line(
                    f"{target.hostname!r} resolves to {', '.join(inside)}, which is not a public address")))
        return addresses

    async def _post(self, target: Target, addresses: list[str], body: bytes,
                    headers: dict[str, str]) -> DeliveryResult:
        """Tries the vetted addresses in order until one accepts the connection."""
        client = self._client(target.hostname)
        failure = DeliveryResult(Outcome.RETRY, code="connect", detail="no address accepted the connection")
        for address in addresses:
            url = target.url_for(address)
            extensions = {"sni_hostname": target.hostname} if target.scheme == "https" else {}
            try:
                request = client.build_request("POST", url, content=body, headers=headers, extensions=extensions)
                response = await client.send(request, stream=True)
            except httpx.ConnectError as exc:
                if _caused_by_tls(exc):  # the receiver's certificate: another address would show the same
                    return DeliveryResult(Outcome.RETRY, code="tls", detail=_line(f"TLS: {exc}"))
                failure = DeliveryResult(Outcome.RETRY, code="connect", detail=_line(f"{address}: {exc}"))
                continue
            except httpx.TimeoutException as exc:
                return DeliveryResult(Outcome.RETRY, code="timeout", detail=_line(f"{type(exc).__name__}: {exc}"))
            except httpx.TransportError as exc:  # reset, TLS failure, protocol error: nothing classified was said
                return DeliveryResult(Outcome.RETRY, code="transport", detail=_line(f"{type(exc).__name__}: {exc}"))
            try:
                said = await _head_of_body(response)
            except httpx.TransportError:
                said = ""
            finally:
                await response.aclose()
            return classify(response.status_code, said, response.headers.get("Retry-After"),
                            response.headers.get("Location"))
        return failure

    def _client(self, hostname: str) -> httpx.AsyncClient:
        client = self._clients.get(hostname)
        if client is not None:
            self._clients.move_to_end(hostname)
            return client
        if len(self._clients) >= MAX_CLIENTS:
            _, oldest = self._clients.popitem(last=False)
            asyncio.get_running_loop().create_task(oldest.aclose())
        settings = self.settings
        verify: ssl.SSLContext | bool = True
        if settings.ca_file:
            verify = ssl.create_default_context(cafile=settings.ca_file)
        limits = httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency)
        # trust_env=False: an HTTP(S)_PROXY from the environment would connect by name, around the vetting.
        client = httpx.AsyncClient(follow_redirects=False, trust_env=False, verify=verify, limits=limits,
                                   timeout=httpx.Timeout(settings.timeout))
        self._clients[hostname] = client
        return client


@dataclass(frozen=True)
class Target:
    scheme: str
    hostname: str  # lower-case, IDNA-encoded, without brackets
    port: int
    path: str  # path and query, as given
    host_header: str

    def url_for(self, address: str) -> str:
        host = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def check_url(url: str, allow_private: bool = False) -> Target:
    """The parts of a webhook URL that may be called; raises :class:`Refused` with CONFIG_ERROR otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(DeliveryResult(Outcome.CONFIG_ERROR, code="bad_url", detail=_line(f"{url!r}: {exc}"))) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused(DeliveryResult(Outcome.CONFIG_ERROR, code="bad_url",
                                     detail=_line(f"{url!r} is not an http(s) URL with a host")))
    if parts.username is not None or parts.password is not None:
        raise Refused(DeliveryResult(Outcome.CONFIG_ERROR, code="bad_url",
                                     detail="the webhook URL may not carry credentials: sign with the secret"))
    if parts.scheme != "https" and not allow_private:
        raise Refused(DeliveryResult(Outcome.CONFIG_ERROR, code="https_required",
                                     detail=_line(f"{url!r}: webhooks are sent over https only")))
    default_port = 443 if parts.scheme == "https" else 80
    hostname = parts.hostname.rstrip(".")
    try:  # an address in any spelling (127.1, 0x7f.1) becomes its usual form, checked like any other
        address = host_address(hostname)
        hostname = str(address) if address is not None else hostname.encode("idna").decode("ascii")
    except (UnicodeError, ValueError):
        raise Refused(DeliveryResult(Outcome.CONFIG_ERROR, code="bad_url",
                                     detail=_line(f"{parts.hostname!r} is not a valid host name"))) from None
    path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    shown = f"[{hostname}]" if ":" in hostname else hostname
    host_header = shown if port in (None, default_port) else f"{shown}:{port}"
    return Target(parts.scheme, hostname, port or default_port, path, host_header)


def resolve(hostname: str, port: int) -> list[str]:
    """Every address the name resolves to (IPv4 first, each once); blocking: run it in a thread."""
    try:
        address = host_address(hostname)
    except ValueError as exc:  # check_url refuses these first; a resolver would have failed too
        raise socket.gaierror(f"{hostname!r} is not a valid address: {exc}") from None
    if address is not None:
        return [str(address)]
    found = socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
    addresses = [str(info[4][0]).split("%")[0] for info in found]  # drop an IPv6 zone ("fe80::1%eth0")
    unique = list(dict.fromkeys(addresses))
    return sorted(unique, key=lambda a: ":" in a)


def classify(status: int, said: str = "", retry_after: str | None = None, location: str | None = None
             ) -> DeliveryResult:
    """The outcome of the receiver's answer: its status, the start of its body, two headers."""
    detail = _line(said) or f"HTTP {status}"
    if 200 <= status < 300:
        return DeliveryResult(Outcome.SENT, code=str(status), detail=detail)
    if 300 <= status < 400:
        return DeliveryResult(Outcome.FAILED, code="redirect", detail=_line(
            f"redirect refused: HTTP {status} to {location or '(no Location)'}"))
    if status in RETRY_STATUSES or status >= 500:
        wait = parse_retry_after(retry_after)
        return DeliveryResult(Outcome.RETRY, code=str(status), detail=detail,
                              retry_after=min(wait, MAX_RETRY_AFTER) if wait is not None else None)
    return DeliveryResult(Outcome.FAILED, code=str(status), detail=detail)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=`` + hex HMAC-SHA256(secret, ``"<timestamp>."`` + body)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={mac}"


def signed_headers(secret: str, message: OutboundWebhook, timestamp: int) -> dict[str, str]:
    return {"Content-Type": "application/json", "User-Agent": USER_AGENT,
            "X-Clarion-Message-Id": message.message_id, "Idempotency-Key": message.idempotency_key,
            "X-Clarion-Timestamp": str(timestamp), "X-Clarion-Signature": sign(secret, timestamp, message.body)}


def verify_signature(secret: str, timestamp: str | int | None, body: bytes, header: str | None,
                     tolerance_seconds: float = DEFAULT_TOLERANCE, now: float | None = None) -> bool:
    """For the receiver: the request is Clarion's and recent. ``header`` is ``X-Clarion-Signature``, which
    may list several ``v1=`` values separated by commas (while a secret is being rotated); ``timestamp``
    is ``X-Clarion-Timestamp``. A timestamp more than ``tolerance_seconds`` from ``now`` is refused, so a
    captured request cannot be replayed later."""
    try:
        stamp = int(str(timestamp).strip())
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - stamp) > tolerance_seconds:
        return False
    expected = sign(secret, stamp, body).encode()
    given = [part.strip().encode() for part in (header or "").split(",")]
    return any(hmac.compare_digest(expected, candidate) for candidate in given)


async def _head_of_body(response: httpx.Response) -> str:
    """At most DETAIL_BYTES of the answer, decoded leniently."""
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= DETAIL_BYTES:
            break
    return b"".join(chunks)[:DETAIL_BYTES].decode("utf-8", "replace")


def _caused_by_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False

"""Amazon SNS message signatures: what makes an HTTPS notification Amazon's.

SNS signs every message it posts to an HTTPS subscriber
(https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html). The string to sign is
``name\\nvalue\\n`` for a fixed list of fields in byte order (``Subject`` only when the message has one);
``SignatureVersion`` 1 signs it with SHA1withRSA, 2 with SHA256withRSA, and the public key is in the X.509
certificate at ``SigningCertURL``.

That URL comes from the message, so it is checked before anything is fetched (:class:`UrlPolicy`): https,
a host ``sns.<region>.amazonaws.com`` (``.amazonaws.com.cn`` in China), no user name, the default port, a
path ending ``.pem``. "Any amazonaws.com host" would not be enough: ``<bucket>.s3.amazonaws.com`` serves
whatever the bucket's owner uploads, so anyone could host a certificate there and sign their own
"notifications". ``SubscribeURL`` (confirming a subscription) passes the same host rule. Certificates
are cached by URL (SNS names each certificate by a hash; the URL's content does not change).

The one exception to the port rule is the route a test configures (``ses_certificate_resolve``, curl's
``--resolve`` form ``host:port:address``): a URL naming exactly that host and port is fetched from the
given address, with TLS still verified for the host the URL names.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import ssl
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# The fields each message type signs, in the order they are signed (SNS developer guide, "Verifying the
# signatures of Amazon SNS messages").
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
OPTIONAL_FIELDS = frozenset({"Subject"})
DIGESTS = {"1": hashes.SHA1, "2": hashes.SHA256}  # SignatureVersion -> the digest of the RSA signature
SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?", re.IGNORECASE)
MAX_DOCUMENT = 64 * 1024  # bytes: a signing certificate is ~2 KB, a ConfirmSubscription answer < 1 KB
FETCH_TIMEOUT = 5.0  # seconds for one certificate or confirmation fetch (SNS waits 15 s for our answer)
CACHED_CERTIFICATES = 32  # SNS rotates its signing certificate rarely: a few URLs are ever live at once


class SnsRejected(Exception):
    """The message is not provably Amazon's (answered 403; nothing changes)."""


class FetchFailed(Exception):
    """A certificate or a subscription confirmation could not be fetched (answered 502: SNS retries)."""


@dataclass(frozen=True)
class Route:
    """``host:port:address``: connections for ``https://host:port/...`` go to ``address`` (curl --resolve)."""

    host: str
    port: int
    address: str

    @classmethod
    def parse(cls, text: str) -> Route | None:
        """None for an empty setting; raises ValueError for one that is not ``host:port:ip-address``."""
        if not text.strip():
            return None
        host, _, rest = text.strip().partition(":")
        port, _, address = rest.partition(":")
        if not host or not port.isdecimal() or not 0 < int(port) < 65536:
            raise ValueError(f"{text!r} is not host:port:address")
        ipaddress.ip_address(address.strip("[]"))  # a literal address: routing must not depend on DNS
        return cls(host.lower(), int(port), address.strip("[]"))

    @property
    def netloc(self) -> str:
        bracketed = f"[{self.address}]" if ":" in self.address else self.address
        return f"{bracketed}:{self.port}"


class UrlPolicy:
    """Which URLs may be fetched for SNS: see the module's notes."""

    def __init__(self, route: Route | None = None) -> None:
        self.route = route

    def check(self, url: object, *, certificate: bool = False) -> SplitResult:
        """The URL's parts; raises :class:`SnsRejected` for a URL that is not an SNS endpoint's."""
        if not isinstance(url, str) or not url:
            raise SnsRejected("the URL is missing")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise SnsRejected(f"{url[:200]!r} is not a URL") from None
        if parts.scheme != "https":
            raise SnsRejected(f"{url[:200]!r} is not https")
        host = parts.hostname or ""
        if parts.username is not None or parts.password is not None or not SNS_HOST.fullmatch(host):
            raise SnsRejected(f"{url[:200]!r}: the host is not an Amazon SNS host (sns.<region>.amazonaws.com)")
        if port not in (None, 443) and not self.routed(parts):
            raise SnsRejected(f"{url[:200]!r}: SNS is served on the default https port")
        if certificate and not parts.path.endswith(".pem"):
            raise SnsRejected(f"{url[:200]!r} does not name a .pem certificate")
        return parts

    def routed(self, parts: SplitResult) -> bool:
        route = self.route
        return route is not None and (parts.hostname, parts.port or 443) == (route.host, route.port)


class CertificateFetcher(Protocol):
    """GETs an https URL that :class:`UrlPolicy` allowed; raises :class:`FetchFailed`."""

    def get(self, url: str) -> bytes: ...


class HttpsFetcher:
    """The production fetcher: httpx, no redirects, a size cap, the policy checked again before connecting."""

    def __init__(self, policy: UrlPolicy, ca_file: str = "", timeout: float = FETCH_TIMEOUT) -> None:
        self.policy = policy
        self.timeout = timeout
        # ca_file: tests trust a local peer's authority; production uses the system's (httpx: certifi).
        self._tls: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True

    def get(self, url: str) -> bytes:
        parts = self.policy.check(url)
        target, headers, extensions = url, {}, {}
        route = self.policy.route if self.policy.routed(parts) else None
        if route is not None:
            target = urlunsplit(("https", route.netloc, parts.path, parts.query, ""))
            # TLS is verified for the host the URL names, and the request names it too.
            headers, extensions = {"Host": parts.netloc}, {"sni_hostname": parts.hostname}
        try:
            # A routed fetch ignores proxy variables: the route names where the connection goes.
            with httpx.Client(verify=self._tls, timeout=self.timeout, follow_redirects=False,
                              trust_env=route is None) as client:
                with client.stream("GET", target, headers=headers, extensions=extensions) as response:
                    if response.status_code != 200:
                        raise FetchFailed(f"{url[:200]} answered {response.status_code}")
                    return _read_capped(response)
        except httpx.HTTPError as exc:
            raise FetchFailed(f"{url[:200]}: {type(exc).__name__}: {exc}") from None


def _read_capped(response: httpx.Response) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_DOCUMENT:
            raise FetchFailed(f"the answer is larger than {MAX_DOCUMENT} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def string_to_sign(message: dict) -> bytes:
    """What SNS signed: ``name\\nvalue\\n`` for each signed field the message has, in order."""
    lines = []
    for name in SIGNED_FIELDS[message["Type"]]:
        value = message.get(name)
        if value is None and name in OPTIONAL_FIELDS:
            continue
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode("utf-8")


class SnsVerifier:
    """Checks an SNS message (a parsed JSON object) and confirms subscriptions.

    ``topics``: the topic ARNs accepted; empty accepts any topic whose signature verifies."""

    def __init__(self, fetcher: CertificateFetcher, policy: UrlPolicy, topics: Iterable[str] = ()) -> None:
        self.fetcher = fetcher
        self.policy = policy
        self.topics = frozenset(topics)
        self._keys: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, message: dict) -> str:
        """The message's ``Type`` once its signature verifies; raises :class:`SnsRejected` or
        :class:`FetchFailed`. The topic and the certificate URL are checked before anything is fetched."""
        kind = message.get("Type")
        if kind not in SIGNED_FIELDS:
            raise SnsRejected(f"Type {str(kind)[:40]!r} is not an SNS message type")
        for name in SIGNED_FIELDS[kind]:
            value = message.get(name)
            if not isinstance(value, str) and not (value is None and name in OPTIONAL_FIELDS):
                raise SnsRejected(f"the signed field {name} is missing")
        if self.topics and message["TopicArn"] not in self.topics:
            raise SnsRejected(f"topic {message['TopicArn'][:200]!r} is not one Clarion accepts")
        digest = DIGESTS.get(str(message.get("SignatureVersion")))
        if digest is None:
            raise SnsRejected("SignatureVersion must be 1 or 2")
        signature = _signature(message.get("Signature"))
        url = message.get("SigningCertURL")
        self.policy.check(url, certificate=True)
        try:
            self._public_key(str(url)).verify(signature, string_to_sign(message), padding.PKCS1v15(), digest())
        except InvalidSignature:
            raise SnsRejected("the signature does not verify") from None
        return kind

    def confirm(self, message: dict) -> None:
        """Confirms a verified SubscriptionConfirmation by fetching its ``SubscribeURL``."""
        self.policy.check(message.get("SubscribeURL"))
        self.fetcher.get(message["SubscribeURL"])

    def _public_key(self, url: str) -> rsa.RSAPublicKey:
        with self._lock:
            key = self._keys.get(url)
            if key is not None:
                self._keys.move_to_end(url)
                return key
        try:
            key = x509.load_pem_x509_certificate(self.fetcher.get(url)).public_key()
        except ValueError:
            raise FetchFailed(f"{url[:200]} is not a PEM certificate") from None
        if not isinstance(key, rsa.RSAPublicKey):
            raise FetchFailed(f"{url[:200]}: the certificate's key is not RSA")
        with self._lock:
            self._keys[url] = key
            while len(self._keys) > CACHED_CERTIFICATES:
                self._keys.popitem(last=False)
        return key


def _signature(raw: object) -> bytes:
    if not isinstance(raw, str) or not raw:
        raise SnsRejected("the message is not signed")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise SnsRejected("the signature is not base64") from None

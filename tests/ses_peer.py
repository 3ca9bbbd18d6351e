"""A local Amazon SNS, as an HTTPS subscriber meets it: signed notifications, its certificate over real HTTPS.

    with SesPeer() as peer:              # its own RSA signing key and certificate, its own TLS authority
        settings: ses_certificate_resolve=peer.resolve, ses_certificate_ca_file=peer.ca_file
        message = peer.notification(bounce(raw_email))      # an SNS envelope around SES feedback, signed
        body, headers = peer.http_request(message)          # what SNS POSTs
        peer.post(url, message)                             # the same over a real socket
        peer.requests, peer.confirmed

It follows the documented formats:

- the SNS envelope and its signature (https://docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html,
  https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html): ``Type``, ``MessageId``,
  ``TopicArn``, ``Message``, ``Timestamp``, ``SignatureVersion`` (1: SHA1withRSA, 2: SHA256withRSA),
  ``Signature``, ``SigningCertURL``; the headers ``x-amz-sns-message-type``, ``x-amz-sns-message-id``,
  ``x-amz-sns-topic-arn``; the body pretty-printed JSON sent as ``text/plain; charset=UTF-8``.
- its HTTPS side, on 127.0.0.1 with a certificate for ``sns.<region>.amazonaws.com`` (so a client must be
  routed to it, curl --resolve style: :attr:`SesPeer.resolve`): ``GET /SimpleNotificationService-<hash>.pem``
  answers the signing certificate; ``GET /?Action=ConfirmSubscription&TopicArn=...&Token=...`` confirms a
  subscription whose token the peer issued (``ConfirmSubscriptionResponse``), else 400 ``InvalidParameter``.
  Every request is recorded.
- SES feedback (https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html), built from the raw
  message SES was given: :func:`bounce`, :func:`complaint`, :func:`delivery`, with ``mail.headers`` when
  "include original headers" is on, and ``eventType`` instead of ``notificationType`` for event publishing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from threaded_server import PeerHandler, ThreadedPeer

DIGESTS = {"1": hashes.SHA1, "2": hashes.SHA256}
SIGNED = {  # the fields SNS signs, per message type, in this order
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
SNS_XMLNS = "http://sns.amazonaws.com/doc/2010-03-31/"


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # with the query
    host: str  # the Host header


def new_signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class SesPeer(ThreadedPeer):
    region: str = "us-east-1"
    account: str = "123456789012"
    topic: str = "ses-feedback"
    requests: list[Request] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)  # the topic ARNs whose subscription was confirmed
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    thread_name = "sns-peer"

    def __post_init__(self) -> None:
        self.key = new_signing_key()
        self.certificate_pem = self_signed_certificate(self.key, "sns.amazonaws.com")
        self.cert_path = f"/SimpleNotificationService-{hashlib.sha256(self.certificate_pem).hexdigest()[:32]}.pem"
        self._tokens: dict[str, str] = {}  # subscription token -> topic ARN
        self._dir = tempfile.TemporaryDirectory(prefix="sns-peer-")
        self._ca = trustme.CA()
        self.ca_file = str(Path(self._dir.name) / "ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_file)

    @property
    def host(self) -> str:
        return f"sns.{self.region}.amazonaws.com"

    @property
    def topic_arn(self) -> str:
        return f"arn:aws:sns:{self.region}:{self.account}:{self.topic}"

    @property
    def resolve(self) -> str:
        """Where a client must send connections for :attr:`host` on this port (curl --resolve form)."""
        return f"{self.host}:{self.port}:127.0.0.1"

    @property
    def cert_url(self) -> str:
        return f"https://{self.host}:{self.port}{self.cert_path}"

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert(self.host).configure_cert(context)
        return context

    def handler(self) -> type[_Handler]:
        return type("Handler", (_Handler,), {"sns": self})

    # -- the HTTPS side ------------------------------------------------------------------------------------

    def answer(self, path: str, host: str) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append(Request("GET", path, host))
        parts = urlsplit(path)
        if parts.path == self.cert_path:
            return 200, {"Content-Type": "application/x-x509-ca-cert"}, self.certificate_pem
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        if parts.path == "/" and query.get("Action") == "ConfirmSubscription":
            return self._confirm(query)
        return 404, {"Content-Type": "text/xml"}, _error("NotFound", "Not Found")

    def _confirm(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        topic = self._tokens.get(query.get("Token", ""))
        if topic is None or topic != query.get("TopicArn"):
            return 400, {"Content-Type": "text/xml"}, _error("InvalidParameter", "Invalid token")
        with self._lock:
            self.confirmed.append(topic)
        subscription = f"{topic}:{uuid.uuid4()}"
        body = (f'<ConfirmSubscriptionResponse xmlns="{SNS_XMLNS}"><ConfirmSubscriptionResult>'
                f"<SubscriptionArn>{subscription}</SubscriptionArn></ConfirmSubscriptionResult>"
                f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
                "</ConfirmSubscriptionResponse>")
        return 200, {"Content-Type": "text/xml"}, body.encode()

    # -- messages, as SNS posts them ---------------------------------------------------------------------

    def notification(self, ses: dict | str, *, version: str = "1", cert_url: str | None = None,
                     topic_arn: str | None = None, subject: str | None = None,
                     key: rsa.RSAPrivateKey | None = None) -> dict[str, Any]:
        """An SNS Notification carrying ``ses`` (SES feedback, JSON-encoded as SNS carries it), signed."""
        message: dict[str, Any] = {"Type": "Notification", "MessageId": str(uuid.uuid4()),
                                   "TopicArn": topic_arn or self.topic_arn}
        if subject is not None:
            message["Subject"] = subject
        message["Message"] = ses if isinstance(ses, str) else json.dumps(ses, separators=(",", ":"))
        message["Timestamp"] = _iso(datetime.now(UTC))
        signed = self.sign(message, version=version, cert_url=cert_url, key=key)
        subscription = f"{message['TopicArn']}:{uuid.uuid4()}"
        signed["UnsubscribeURL"] = (f"https://{self.host}/?Action=Unsubscribe&SubscriptionArn="
                                    f"{quote(subscription, safe='')}")
        return signed

    def subscription_confirmation(self, *, topic_arn: str | None = None, version: str = "1") -> dict[str, Any]:
        topic = topic_arn or self.topic_arn
        token = secrets.token_hex(64)
        with self._lock:
            self._tokens[token] = topic
        message = {"Type": "SubscriptionConfirmation", "MessageId": str(uuid.uuid4()), "Token": token,
                   "TopicArn": topic,
                   "Message": f"You have chosen to subscribe to the topic {topic}.\nTo confirm the subscription, "
                              "visit the SubscribeURL included in this message.",
                   "SubscribeURL": f"https://{self.host}:{self.port}/?Action=ConfirmSubscription&TopicArn="
                                   f"{quote(topic, safe='')}&Token={token}",
                   "Timestamp": _iso(datetime.now(UTC))}
        return self.sign(message, version=version)

    def sign(self, message: dict[str, Any], *, version: str = "1", cert_url: str | None = None,
             key: rsa.RSAPrivateKey | None = None) -> dict[str, Any]:
        """``message`` with SignatureVersion, Signature and SigningCertURL, signed as SNS signs."""
        text = "".join(f"{name}\n{message[name]}\n" for name in SIGNED[message["Type"]] if name in message)
        signature = (key or self.key).sign(text.encode(), padding.PKCS1v15(), DIGESTS[version]())
        return {**message, "SignatureVersion": version, "Signature": base64.b64encode(signature).decode(),
                "SigningCertURL": cert_url or self.cert_url}

    @staticmethod
    def http_request(message: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """The body and headers SNS POSTs for ``message``."""
        headers = {"Content-Type": "text/plain; charset=UTF-8",
                   "User-Agent": "Amazon Simple Notification Service Agent",
                   "x-amz-sns-message-type": message["Type"], "x-amz-sns-message-id": message["MessageId"],
                   "x-amz-sns-topic-arn": message["TopicArn"]}
        return json.dumps(message, indent=2, separators=(",", " : ")).encode(), headers

    def post(self, url: str, message: dict[str, Any]) -> int:
        """POSTs ``message`` to ``url`` over a real socket; returns the HTTP status."""
        body, headers = self.http_request(message)
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code


class _Handler(PeerHandler):
    sns: SesPeer

    def do_GET(self) -> None:  # noqa: N802 (named by http.server)
        self.reply(*self.sns.answer(self.path, self.headers.get("Host", "")))


def self_signed_certificate(key: rsa.RSAPrivateKey, common_name: str) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                   .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM)


def _error(code: str, message: str) -> bytes:
    return (f'<ErrorResponse xmlns="{SNS_XMLNS}"><Error><Type>Sender</Type><Code>{code}</Code>'
            f"<Message>{message}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>").encode()


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


# -- SES feedback, from the raw message SES was given ---------------------------------------------------------

def mail_object(raw: bytes, *, include_headers: bool = True, region: str = "us-east-1",
                account: str = "123456789012") -> dict[str, Any]:
    """SES's ``mail`` object for the message ``raw`` (headers only when "include original headers" is on)."""
    parsed = BytesHeaderParser(policy=compat32).parsebytes(raw)
    headers = [{"name": name, "value": " ".join(str(value).split())} for name, value in parsed.items()]
    first = {h["name"].lower(): h["value"] for h in reversed(headers)}
    sender = first.get("from", "")
    address = sender[sender.find("<") + 1:sender.rfind(">")] if "<" in sender else sender
    recipient = first.get("to", "")
    recipient = recipient[recipient.find("<") + 1:recipient.rfind(">")] if "<" in recipient else recipient
    mail: dict[str, Any] = {
        "timestamp": _iso(datetime.now(UTC)), "source": address,
        "sourceArn": f"arn:aws:ses:{region}:{account}:identity/{address.rpartition('@')[2]}",
        "sourceIp": "127.0.0.1", "sendingAccountId": account,
        # SES's own id of the message; the sender's Message-ID is in commonHeaders
        "messageId": f"{secrets.token_hex(8)}-{uuid.uuid4()}-000000", "destination": [recipient]}
    if include_headers:
        mail["headersTruncated"] = False
        mail["headers"] = headers
    mail["commonHeaders"] = {"from": [sender], "to": [first.get("to", "")], "date": first.get("date", ""),
                             "messageId": first.get("message-id", ""), "subject": first.get("subject", "")}
    return mail


def bounce(raw: bytes, *, bounce_type: str = "Permanent", sub_type: str = "General",
           event_publishing: bool = False, include_headers: bool = True) -> dict[str, Any]:
    mail = mail_object(raw, include_headers=include_headers)
    permanent = bounce_type == "Permanent"
    recipient = {"emailAddress": mail["destination"][0], "action": "failed",
                 "status": "5.1.1" if permanent else "4.4.7",
                 "diagnosticCode": "smtp; 550 5.1.1 user unknown" if permanent
                 else "smtp; 452 4.2.2 mailbox full"}
    return {_kind(event_publishing): "Bounce", "mail": mail, "bounce": {
        "bounceType": bounce_type, "bounceSubType": sub_type, "bouncedRecipients": [recipient],
        "timestamp": _iso(datetime.now(UTC)), "feedbackId": _feedback_id(),
        "remoteMtaIp": "127.0.2.1", "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com"}}


def complaint(raw: bytes, *, feedback_type: str = "abuse", event_publishing: bool = False,
              include_headers: bool = True) -> dict[str, Any]:
    mail = mail_object(raw, include_headers=include_headers)
    now = datetime.now(UTC)
    return {_kind(event_publishing): "Complaint", "mail": mail, "complaint": {
        "userAgent": "ExampleCorp Feedback Loop (V0.01)",
        "complainedRecipients": [{"emailAddress": mail["destination"][0]}],
        "complaintFeedbackType": feedback_type, "arrivalDate": _iso(now), "timestamp": _iso(now),
        "feedbackId": _feedback_id()}}


def delivery(raw: bytes, *, event_publishing: bool = False, include_headers: bool = True) -> dict[str, Any]:
    mail = mail_object(raw, include_headers=include_headers)
    return {_kind(event_publishing): "Delivery", "mail": mail, "delivery": {
        "timestamp": _iso(datetime.now(UTC)), "processingTimeMillis": 546, "recipients": mail["destination"],
        "smtpResponse": "250 ok:  Message 64111812 accepted", "remoteMtaIp": "127.0.2.1",
        "reportingMTA": "a8-70.smtp-out.amazonses.com"}}


def _kind(event_publishing: bool) -> str:
    return "eventType" if event_publishing else "notificationType"


def _feedback_id() -> str:
    return f"{secrets.token_hex(8)}-{uuid.uuid4()}-000000"

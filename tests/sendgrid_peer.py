"""A local SendGrid Event Webhook sender: events about the messages it relayed, signed as SendGrid signs them.

    peer = SendGridPeer()                                  # its own ECDSA P-256 signing key
    settings: sendgrid_webhook_public_key=peer.public_key  # base64 DER, as SendGrid shows the key
    events = [peer.event(raw_email, "delivered"), peer.event(raw_email, "bounce", type="blocked")]
    body, headers = peer.signed(events)                    # what SendGrid POSTs
    peer.post(url, events)                                 # the same over a real socket

It follows the documented formats:

- events (https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event): a JSON array of
  objects with ``email``, ``timestamp`` (Unix seconds), ``smtp-id`` (the message's Message-ID, with its
  angle brackets), ``event``, ``category``, ``sg_event_id``, ``sg_message_id``, and per event ``response``
  (delivered), ``reason``/``status``/``type``/``bounce_classification`` (bounce, with ``type`` ``bounce`` or
  ``blocked``), ``reason`` (dropped: "Bounced Address", "Spam Reporting Address", "Invalid" ...),
  ``response``/``attempt`` (deferred), ``useragent``/``ip`` (open), ``url`` (click). Custom arguments of
  the message appear as top-level fields.
- the signature (https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-
  webhook-security-features): ECDSA P-256 with SHA-256 over the timestamp header's value followed by the
  raw body, sent base64 DER in ``X-Twilio-Email-Event-Webhook-Signature`` beside
  ``X-Twilio-Email-Event-Webhook-Timestamp``. The body ends with CRLF, as SendGrid's does: the signature
  covers those bytes too, so a receiver must verify the body exactly as it arrived.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# What each event adds to the common fields, as in SendGrid's examples; a caller's fields override them.
EVENT_FIELDS: dict[str, dict[str, Any]] = {
    "processed": {},
    "delivered": {"response": "250 OK", "ip": "168.1.1.1", "tls": 1},
    "deferred": {"response": "400 try again later", "attempt": "5"},
    "bounce": {"reason": "550 5.1.1 The email account that you tried to reach does not exist.",
               "status": "5.1.1", "type": "bounce", "bounce_classification": "Invalid Address"},
    "dropped": {"reason": "Bounced Address", "status": "5.0.0"},
    "spamreport": {},
    "open": {"useragent": "Mozilla/4.0 (compatible; MSIE 6.1; Windows XP; .NET CLR 1.1.4322; .NET CLR 2.0.50727)",
             "ip": "255.255.255.255", "sg_machine_open": False},
    "click": {"useragent": "Mozilla/5.0", "ip": "255.255.255.255", "url": "http://www.sendgrid.com/"},
    "unsubscribe": {},
}


def new_signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_key_text(key: ec.EllipticCurvePrivateKey) -> str:
    """The verification key as SendGrid's settings page shows it: base64 DER SubjectPublicKeyInfo."""
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


@dataclass
class SendGridPeer:
    key: ec.EllipticCurvePrivateKey = field(default_factory=new_signing_key)
    posted: list[tuple[str, int]] = field(default_factory=list)  # (url, status) of each post()

    @property
    def public_key(self) -> str:
        return public_key_text(self.key)

    def event(self, raw: bytes, name: str, *, at: float | None = None, **fields: Any) -> dict[str, Any]:
        """One event about the message ``raw`` (the bytes SendGrid's SMTP relay took)."""
        parsed = BytesHeaderParser(policy=compat32).parsebytes(raw)
        recipient = str(parsed.get("To", ""))
        if "<" in recipient:
            recipient = recipient[recipient.find("<") + 1:recipient.rfind(">")]
        event: dict[str, Any] = {
            "email": recipient, "timestamp": int(at if at is not None else time.time()),
            "smtp-id": " ".join(str(parsed.get("Message-ID", "")).split()), "event": name, "category": [],
            "sg_event_id": base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("="),
            "sg_message_id": f"{secrets.token_urlsafe(16)}.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0"}
        return event | EVENT_FIELDS.get(name, {}) | fields

    def signed(self, events: list[dict[str, Any]], *, timestamp: int | None = None,
               key: ec.EllipticCurvePrivateKey | None = None) -> tuple[bytes, dict[str, str]]:
        """The body and headers of one post of ``events``, signed at ``timestamp`` (now by default)."""
        return self.sign_body(json.dumps(events).encode() + b"\r\n", timestamp=timestamp, key=key)

    def sign_body(self, body: bytes, *, timestamp: int | None = None,
                  key: ec.EllipticCurvePrivateKey | None = None) -> tuple[bytes, dict[str, str]]:
        """``body`` as it is, with the headers that sign it."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = (key or self.key).sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return body, {"Content-Type": "application/json", "User-Agent": "SendGrid Event API",
                      SIGNATURE_HEADER: base64.b64encode(signature).decode(), TIMESTAMP_HEADER: stamp}

    def post(self, url: str, events: list[dict[str, Any]]) -> int:
        """POSTs ``events`` to ``url`` over a real socket; returns the HTTP status."""
        body, headers = self.signed(events)
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        self.posted.append((url, status))
        return status

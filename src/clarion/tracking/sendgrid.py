"""SendGrid's signed Event Webhook: an ECDSA P-256 signature over the timestamp and the raw body.

With "Signed Event Webhook Requests" on, SendGrid sends ``X-Twilio-Email-Event-Webhook-Signature`` (the
base64 DER ECDSA signature, SHA-256) and ``X-Twilio-Email-Event-Webhook-Timestamp`` (Unix seconds); the
signed bytes are the timestamp followed by the body exactly as received
(https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features).
The verification key is the one SendGrid shows beside the setting: base64 DER SubjectPublicKeyInfo (a PEM
block is accepted too).

A signature alone does not stop a replay, so the timestamp must be within :data:`REPLAY_WINDOW` of our
clock: a captured request sent again later is refused even though its signature verifies.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# Seconds either side of our clock. SendGrid signs as it posts and retries with a fresh signature, so a
# genuine request is seconds old; ten minutes leaves room for skewed clocks and slow queues.
REPLAY_WINDOW = 600
MAX_TIMESTAMP_DIGITS = 12  # Unix seconds: 10 digits until the year 2286


class SignatureRejected(Exception):
    """The request is not provably SendGrid's, or it is a replay (answered 403; nothing changes)."""


def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key from base64 DER (as SendGrid shows it) or PEM; raises ValueError otherwise."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, UnsupportedAlgorithm, UnicodeEncodeError):
        raise ValueError("the SendGrid verification key is not a base64 DER or PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the SendGrid verification key is not an ECDSA P-256 key")
    return key


def verify(key: ec.EllipticCurvePublicKey, body: bytes, signature: str | None, timestamp: str | None,
           now: float) -> None:
    """Raises :class:`SignatureRejected` unless ``signature`` signs ``timestamp + body`` and the timestamp
    is within :data:`REPLAY_WINDOW` seconds of ``now`` (Unix seconds)."""
    stamp = (timestamp or "").strip()
    if not stamp.isdecimal() or len(stamp) > MAX_TIMESTAMP_DIGITS:
        raise SignatureRejected(f"{TIMESTAMP_HEADER} is missing or not Unix seconds")
    if abs(now - int(stamp)) > REPLAY_WINDOW:
        raise SignatureRejected(f"the timestamp is more than {REPLAY_WINDOW // 60} minutes from Clarion's clock")
    try:
        der = base64.b64decode((signature or "").strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureRejected(f"{SIGNATURE_HEADER} is not base64") from None
    if not der:
        raise SignatureRejected(f"{SIGNATURE_HEADER} is missing")
    try:
        key.verify(der, stamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureRejected("the signature does not verify") from None

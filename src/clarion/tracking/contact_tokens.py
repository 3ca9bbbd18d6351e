"""Contact tokens: what a customer's own app or web page holds to act as one contact, without an API key.

The business's backend asks Clarion for a token (``POST /api/contacts/{id}/client-token``, admin key) or
computes it with the shared secret, and hands it to its signed-in user's app or page. With it the app
may read and mark that contact's in-app inbox and register the browser's web push subscription, and
nothing else: the token names its contact, its scope and its expiry, under an HMAC.

    token = "ct1." base64url(JSON [contact_id, scope, expires_unix]) "." base64url(HMAC-SHA256[:16])

The MAC is keyed with ``link_secret`` under its own label, so an unsubscribe token is never a contact
token, and an edited or expired token is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from .links import InvalidLink, _b64, _unb64

PREFIX = "ct1"
SCOPES = ("inbox", "webpush")
MAC_BYTES = 16  # 128-bit tag
MAX_TTL_SECONDS = 400 * 86_400  # a token for an app install may live long; not forever


@dataclass(frozen=True)
class ContactToken:
    contact_id: int
    scope: str
    expires_at: int  # Unix seconds


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), b"contact-token:" + payload, hashlib.sha256).digest()[:MAC_BYTES]


def sign_contact_token(secret: str, contact_id: int, scope: str, ttl_seconds: int, now: float | None = None) -> str:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise ValueError(f"ttl_seconds must be between 1 and {MAX_TTL_SECONDS}")
    expires = int((time.time() if now is None else now) + ttl_seconds)
    payload = json.dumps([contact_id, scope, expires], separators=(",", ":")).encode()
    return f"{PREFIX}.{_b64(payload)}.{_b64(_mac(secret, payload))}"


def verify_contact_token(secret: str, token: str, scope: str, now: float | None = None) -> ContactToken:
    """The token's contact, if the token is genuine, unexpired and of ``scope``; else :class:`InvalidLink`."""
    try:
        prefix, encoded, tag = token.split(".")
        payload, mac = _unb64(encoded), _unb64(tag)
    except ValueError:
        raise InvalidLink("malformed contact token") from None
    if prefix != PREFIX or not hmac.compare_digest(mac, _mac(secret, payload)):
        raise InvalidLink("the contact token's signature does not match")
    try:
        contact_id, token_scope, expires = json.loads(payload)
    except (ValueError, TypeError):
        raise InvalidLink("malformed contact token") from None
    if token_scope != scope:
        raise InvalidLink(f"this token is for {token_scope!r}, not {scope!r}")
    if expires <= (time.time() if now is None else now):
        raise InvalidLink("the contact token has expired")
    return ContactToken(int(contact_id), str(token_scope), int(expires))

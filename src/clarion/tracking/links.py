"""Signed unsubscribe links: a token names (contact, campaign, channel, topic) and carries an HMAC.

    token = base64url(JSON payload) "." base64url(HMAC-SHA256(secret, payload)[:16])

A token cannot be forged or edited without the secret, so a link can never unsubscribe someone else
or be turned into a redirect. 128 bits of MAC are plenty for a value an attacker must guess online.
Tokens do not expire: RFC 8058 one-click unsubscribe must keep working for as long as the mail exists.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from ..domain.errors import ClarionError

MAC_BYTES = 16  # 128-bit tag


class InvalidLink(ClarionError):
    """The token is malformed, or its signature does not match (forged or edited)."""


@dataclass(frozen=True)
class UnsubscribeTarget:
    contact_id: int
    campaign_id: int | None
    channel: str
    topic: str | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), b"unsubscribe:" + payload, hashlib.sha256).digest()[:MAC_BYTES]


def sign_unsubscribe(secret: str, target: UnsubscribeTarget) -> str:
    payload = json.dumps([target.contact_id, target.campaign_id, target.channel, target.topic],
                         separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def verify_unsubscribe(secret: str, token: str) -> UnsubscribeTarget:
    try:
        encoded, tag = token.split(".")
        payload, mac = _unb64(encoded), _unb64(tag)
    except ValueError:
        raise InvalidLink("malformed unsubscribe link") from None
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        raise InvalidLink("the unsubscribe link's signature does not match")
    try:
        contact_id, campaign_id, channel, topic = json.loads(payload)
    except (ValueError, TypeError):
        raise InvalidLink("malformed unsubscribe link") from None
    return UnsubscribeTarget(int(contact_id), campaign_id, str(channel), topic)


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/u/{token}"

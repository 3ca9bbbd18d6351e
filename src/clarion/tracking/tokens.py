"""Short signed tokens for tracked links (``/c/{token}``) and open pixels (``/o/{token}``).

    click token = base64url(varint(delivery_id) varint(position) HMAC-SHA256("click:" ...)[:9])
    open token  = base64url(varint(delivery_id) HMAC-SHA256("open:" ...)[:9])

A click token names a stored link row, (delivery, position); the redirect goes to the URL stored for that
row and nowhere else, so nothing in a request can choose the target. The tokens are short because an SMS
pays for every character: a delivery id below 2^35 and a position below 128 give a 20-character token,
a 23-character path (``/c/`` + token). 72 bits of MAC cannot be guessed online (each guess is an HTTP
request), and a forged token changes nothing but a 404 anyway. Each kind has its own MAC label, so an
open token is never a click token, nor an unsubscribe token.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .links import InvalidLink, _b64, _unb64

MAC_BYTES = 9  # 72-bit tag
MAX_TOKEN_CHARS = 40  # longer than any token this module makes: refused before decoding
MAX_VARINT_BYTES = 9  # 63-bit ids


@dataclass(frozen=True)
class ClickTarget:
    delivery_id: int
    position: int


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("ids are not negative")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varints(data: bytes) -> list[int]:
    values, value, shift, length = [], 0, 0, 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift, length = shift + 7, length + 1
        if length > MAX_VARINT_BYTES:
            raise InvalidLink("malformed tracking link")
        if not byte & 0x80:
            values.append(value)
            value, shift, length = 0, 0, 0
    if length:
        raise InvalidLink("malformed tracking link")
    return values


@lru_cache(maxsize=16)
def _keyed(secret: str, label: bytes) -> Any:
    """HMAC state after the key and the label: copied per token (a third cheaper than hmac.new each time)."""
    return hmac.new(secret.encode(), label, hashlib.sha256)


def _mac(secret: str, label: bytes, payload: bytes) -> bytes:
    mac = _keyed(secret, label).copy()
    mac.update(payload)
    return mac.digest()[:MAC_BYTES]


def _sign(secret: str, label: bytes, *values: int) -> str:
    payload = b"".join(_varint(v) for v in values)
    return _b64(payload + _mac(secret, label, payload))


def _verify(secret: str, label: bytes, token: str, count: int) -> list[int]:
    if not token or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise InvalidLink("malformed tracking link")
    try:
        raw = _unb64(token)
    except ValueError:
        raise InvalidLink("malformed tracking link") from None
    if _b64(raw) != token:  # one spelling per token: no padding games, no ignored trailing bits
        raise InvalidLink("malformed tracking link")
    payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if len(raw) <= MAC_BYTES or not hmac.compare_digest(mac, _mac(secret, label, payload)):
        raise InvalidLink("the tracking link's signature does not match")
    values = _read_varints(payload)
    if len(values) != count:
        raise InvalidLink("malformed tracking link")
    return values


def sign_click(secret: str, delivery_id: int, position: int) -> str:
    return _sign(secret, b"click:", delivery_id, position)


def verify_click(secret: str, token: str) -> ClickTarget:
    delivery_id, position = _verify(secret, b"click:", token, 2)
    return ClickTarget(delivery_id, position)


def sign_open(secret: str, delivery_id: int) -> str:
    return _sign(secret, b"open:", delivery_id)


def verify_open(secret: str, token: str) -> int:
    return _verify(secret, b"open:", token, 1)[0]


def click_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/c/{token}"


def open_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/o/{token}"

"""Device registration: FCM and APNs tokens and web push subscriptions, checked before they are stored.

A token belongs to one device, and a device to whoever registered it last: registering a token that
another contact had moves it (a shared tablet, a reinstall after a sign-out). Registering again also
revives a token a provider had declared gone, and refreshes ``last_seen_at``.

A web push endpoint is a URL Clarion will POST to, so it must be https, and outside tests it may not
name a loopback, private, link-local or otherwise internal address: otherwise a subscription could
make Clarion call into its own network (SSRF). The send-time adapter checks the resolved address again.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, delete, select, update

from ..domain.errors import FieldError, NotFound
from ..domain.network import Address, host_address, is_public
from ..store.schema import contacts, devices
from ..store.sql import insert_for
from .clock import utcnow

KINDS = ("fcm", "apns", "webpush")
MAX_TOKEN = 4_096  # characters: FCM registration tokens are ~160 today; room for growth, not for abuse
_FCM_TOKEN = re.compile(r"[A-Za-z0-9_:\-.]{20,4096}")
_APNS_TOKEN = re.compile(r"[0-9a-fA-F]{64,200}")  # 32-byte device tokens in hex (Apple may lengthen them)
P256_POINT_BYTES = 65  # RFC 8291 §3.1: an uncompressed P-256 point, 0x04 || X || Y
AUTH_SECRET_BYTES = 16  # RFC 8291 §3.2


def register(conn: Connection, contact_id: int, kind: str, token: str, *, p256dh: str | None = None,
             auth: str | None = None, app_id: str | None = None, platform: str | None = None,
             allow_private_endpoints: bool = False) -> dict[str, Any]:
    if conn.execute(select(contacts.c.id).where(contacts.c.id == contact_id)).first() is None:
        raise NotFound("contact", contact_id)
    token = check_token(kind, token, allow_private_endpoints)
    if kind == "webpush":
        p256dh, auth = _key(p256dh, "p256dh", P256_POINT_BYTES), _key(auth, "auth", AUTH_SECRET_BYTES)
    elif p256dh or auth:
        raise FieldError("keys", "only web push subscriptions carry p256dh and auth keys")
    now = utcnow()
    values = {"contact_id": contact_id, "p256dh": p256dh, "auth": auth, "app_id": _short(app_id, "app_id", 200),
              "platform": _short(platform, "platform", 32), "last_seen_at": now, "invalidated_at": None}
    statement = insert_for(conn, devices).values(kind=kind, token=token, created_at=now, **values)
    conn.execute(statement.on_conflict_do_update(index_elements=["kind", "token"],
                                                 set_={key: statement.excluded[key] for key in values}))
    row = conn.execute(select(devices).where(devices.c.kind == kind, devices.c.token == token)).one()
    return dict(row._mapping)


def check_token(kind: str, token: str, allow_private_endpoints: bool = False) -> str:
    if kind not in KINDS:
        raise FieldError("kind", f"one of {', '.join(KINDS)}")
    token = (token or "").strip()
    if kind == "fcm" and not _FCM_TOKEN.fullmatch(token):
        raise FieldError("token", "an FCM registration token is 20 to 4,096 characters of [A-Za-z0-9_:-.]")
    if kind == "apns" and not _APNS_TOKEN.fullmatch(token):
        raise FieldError("token", "an APNs device token is hexadecimal, 64 characters or more")
    if kind == "webpush":
        check_endpoint(token, allow_private_endpoints)
    return token.lower() if kind == "apns" else token


def check_endpoint(url: str, allow_private: bool = False) -> None:
    """A web push endpoint: an https URL whose host is a public name or address."""
    if len(url) > MAX_TOKEN:
        raise FieldError("token", f"a push endpoint is at most {MAX_TOKEN} characters")
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".").lower()
        address = host_address(host) if host else None
    except ValueError:  # "[::1" or a host ending in a number that is no address ("1.2.3.999"), as browsers say
        raise FieldError("token", "the endpoint's host is not a valid name or address") from None
    if parts.scheme != "https" or not host:
        raise FieldError("token", "a web push endpoint must be an https URL")
    if parts.username or parts.password:
        raise FieldError("token", "a web push endpoint may not carry credentials")
    if not allow_private and _internal(host, address):
        raise FieldError("token", f"the endpoint's host {parts.hostname!r} is internal (loopback, private, "
                                  "link-local or reserved); only public push services are allowed")


def _internal(name: str, address: Address | None) -> bool:
    """``address`` is what ``name`` spells when it is an address: 127.1, 0177.0.0.1 and 0x7f.1 are 127.0.0.1,
    as the resolver reads them at send time."""
    if name == "localhost" or name.endswith((".localhost", ".local", ".internal")):
        return True
    if address is None:
        return "." not in name  # a bare name resolves inside the network
    return not is_public(address)  # the send-time rule: multicast, mapped, 6to4 and special-purpose blocks too


def _key(value: str | None, field: str, size: int) -> str:
    if not value:
        raise FieldError(f"keys.{field}", "required for a web push subscription")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise FieldError(f"keys.{field}", "not base64url") from None
    if len(raw) != size or (field == "p256dh" and raw[0] != 0x04):
        raise FieldError(f"keys.{field}", f"must decode to {size} bytes"
                         + (" (an uncompressed P-256 point)" if field == "p256dh" else ""))
    return value


def _short(value: str | None, field: str, limit: int) -> str | None:
    if value is not None and len(value) > limit:
        raise FieldError(field, f"at most {limit} characters")
    return value


def list_for(conn: Connection, contact_id: int) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(select(devices).where(devices.c.contact_id == contact_id)
                                                   .order_by(devices.c.id))]


def remove(conn: Connection, contact_id: int, device_id: int) -> None:
    result = conn.execute(delete(devices).where(devices.c.id == device_id, devices.c.contact_id == contact_id))
    if result.rowcount == 0:
        raise NotFound("device", device_id)


def invalidate(conn: Connection, kind: str, token: str, since: datetime | None = None) -> bool:
    """A provider said the token is gone (FCM UNREGISTERED, APNs 410, web push 404/410).

    ``since``: when the provider says the token stopped being valid (APNs's 410 ``timestamp``). A token
    registered again after that moment belongs to a reinstalled app and is kept (Apple's guidance).
    """
    d = devices.c
    statement = update(devices).where(d.kind == kind, d.token == token, d.invalidated_at.is_(None))
    if since is not None:
        statement = statement.where(d.last_seen_at <= since)
    return conn.execute(statement.values(invalidated_at=utcnow())).rowcount > 0

"""API keys: random, shown once, stored as SHA-256, scoped to ingestion or administration."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, update

from ..domain.errors import FieldError, NotFound
from ..store.schema import api_keys
from .clock import utcnow

SCOPES = ("ingest", "admin")
KEY_PREFIX = "clk_"
SECRET_BYTES = 32  # 256 bits: brute force is hopeless, so a plain SHA-256 suffices


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    scope: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def allows(self, scope: str) -> bool:
        return self.scope == "admin" or self.scope == scope


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyService:
    def create(self, conn: Connection, name: str, scope: str) -> tuple[ApiKey, str]:
        """The new key's record and its secret, which is never stored and cannot be shown again."""
        if scope not in SCOPES:
            raise FieldError("scope", f"{scope!r} is not one of: {', '.join(SCOPES)}")
        if not name.strip():
            raise FieldError("name", "a key needs a name")
        secret = KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
        now = utcnow()
        key_id = conn.execute(api_keys.insert().values(
            name=name.strip(), prefix=secret[:12], key_hash=_hash(secret), scope=scope, created_at=now,
        ).returning(api_keys.c.id)).scalar_one()
        return self.get(conn, key_id), secret

    def get(self, conn: Connection, key_id: int) -> ApiKey:
        row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None:
            raise NotFound("API key", key_id)
        return _record(row)

    def list(self, conn: Connection) -> list[ApiKey]:
        return [_record(r) for r in conn.execute(select(api_keys).order_by(api_keys.c.id))]

    def revoke(self, conn: Connection, key_id: int) -> ApiKey:
        self.get(conn, key_id)
        conn.execute(update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                     .values(revoked_at=utcnow()))
        return self.get(conn, key_id)

    def authenticate(self, conn: Connection, secret: str) -> ApiKey | None:
        """The live key with this secret, or None. Compared by hash, so timing reveals nothing useful."""
        if not secret:
            return None
        row = conn.execute(select(api_keys).where(api_keys.c.key_hash == _hash(secret),
                                                  api_keys.c.revoked_at.is_(None))).first()
        return _record(row) if row else None

    def touch(self, conn: Connection, key_id: int) -> None:
        conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=utcnow()))


def _record(row) -> ApiKey:
    m = row._mapping
    return ApiKey(m["id"], m["name"], m["prefix"], m["scope"], m["created_at"], m["last_used_at"], m["revoked_at"])

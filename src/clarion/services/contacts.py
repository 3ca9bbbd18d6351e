"""Contacts: identify (create, update, merge), read, search, update and delete."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, delete, func, or_, select, update

from ..config import Settings
from ..domain.errors import Conflict, FieldError, NotFound
from ..domain.profiles import ProfilePatch, ZoneInputs, resolve_timezone
from ..domain.traits import check_attributes, check_custom_dates
from ..store.schema import contact_aggregates, contacts, identities
from ..store.sql import escape_like
from . import aggregates
from .clock import utcnow
from .identity import (
    Identifiers,
    attach,
    check_not_erased,
    choose_primary,
    merge_into,
    owners,
    release_shared_device,
)

MAX_PAGE = 1000  # contacts per search page
# Characters of a search: the longest value searched, an email address, is at most 320 (RFC 3696 §3). A
# longer one matches nothing, and SQLite refuses LIKE patterns over 50,000 bytes (SQLITE_MAX_LIKE_PATTERN_LENGTH).
MAX_QUERY = 320


class ContactService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def identify(self, conn: Connection, ids: Identifiers, patch: ProfilePatch | None = None) -> int:
        """The contact these identifiers name, created or updated with ``patch``.

        A profile without an external id that shares an identifier with the winner (an anonymous
        visitor who now logged in) is merged into it, events and consent included.
        """
        patch = patch or ProfilePatch()
        ids = _with_patch_identifiers(ids, patch)
        ids.require_any()
        found = release_shared_device(conn, ids, owners(conn, ids))
        now = utcnow()
        if not found:
            check_not_erased(conn, self.settings.hash_salt, ids)
            contact_id = self._create(conn, now)
        else:
            contact_id, others = choose_primary(conn, ids, found)
            for other in others:
                merge_into(conn, contact_id, other)
            if others:
                aggregates.rebuild(conn, [contact_id])
            check_not_erased(conn, self.settings.hash_salt,
                             Identifiers(**{k: v for k, v in ids.pairs() if k not in found}))
        attach(conn, contact_id, ids, now)
        for kind in ("external_id", "email", "phone"):
            setattr(patch, kind, getattr(ids, kind))
        self._apply(conn, contact_id, patch, now)
        return contact_id

    def resolve(self, conn: Connection, ids: Identifiers) -> int:
        """The contact for these identifiers, created or merged only when needed (no profile write)."""
        ids.require_any()
        found = owners(conn, ids)
        if len(found) == len(ids.pairs()) and len(set(found.values())) == 1:
            return next(iter(found.values()))
        return self.identify(conn, ids)

    def _create(self, conn: Connection, now) -> int:
        return conn.execute(contacts.insert().values(
            created_at=now, updated_at=now, attributes={}, custom_dates={},
            timezone=self.settings.default_timezone, timezone_source="default",
        ).returning(contacts.c.id)).scalar_one()

    def _apply(self, conn: Connection, contact_id: int, patch: ProfilePatch, now) -> None:
        current = conn.execute(select(contacts).where(contacts.c.id == contact_id)).one()._mapping
        values = self.changes(current, patch)
        conn.execute(update(contacts).where(contacts.c.id == contact_id).values(**values, updated_at=now))

    def changes(self, current: Mapping[str, Any], patch: ProfilePatch) -> dict[str, Any]:
        """The column values ``patch`` changes in the stored profile ``current``, time zone re-resolved."""
        values: dict[str, Any] = patch.columns()
        values.pop("timezone", None)
        merged = {**current, **values}
        explicit = patch.timezone or (current["timezone"] if current["timezone_source"] == "explicit" else None)
        zone, source = resolve_timezone(
            ZoneInputs(explicit, merged["latitude"], merged["longitude"], merged["phone"], merged["country"],
                       city=merged["city"], region=merged["region"]),
            self.settings.default_timezone)
        values.update(timezone=zone, timezone_source=source)
        if patch.attributes:  # the limits hold for the profile as it will be, not only for this change
            values["attributes"] = check_attributes({**current["attributes"], **patch.attributes})
        if patch.custom_dates:
            values["custom_dates"] = {**current["custom_dates"], **patch.custom_dates}
            check_custom_dates(values["custom_dates"])
        return {key: value for key, value in values.items() if current[key] != value}

    def update(self, conn: Connection, contact_id: int, patch: ProfilePatch) -> None:
        """Change a known contact. A new email, phone or external id must not belong to anyone else."""
        self.require(conn, contact_id)
        ids = Identifiers(patch.external_id, patch.email, patch.phone)
        taken = {kind: owner for kind, owner in owners(conn, ids).items() if owner != contact_id}
        if taken:
            kind = next(iter(taken))
            raise Conflict(f"{kind} {getattr(ids, kind)!r} belongs to another contact")
        check_not_erased(conn, self.settings.hash_salt, ids)
        now = utcnow()
        attach(conn, contact_id, ids, now)
        self._apply(conn, contact_id, patch, now)

    def require(self, conn: Connection, contact_id: int) -> None:
        if conn.execute(select(contacts.c.id).where(contacts.c.id == contact_id)).first() is None:
            raise NotFound("contact", contact_id)

    def get(self, conn: Connection, contact_id: int) -> dict[str, Any]:
        row = conn.execute(select(contacts).where(contacts.c.id == contact_id)).first()
        if row is None:
            raise NotFound("contact", contact_id)
        profile = dict(row._mapping)
        profile.pop("merged_into", None)
        profile["identities"] = [
            {"kind": r.kind, "value": r.value}
            for r in conn.execute(select(identities.c.kind, identities.c.value)
                                  .where(identities.c.contact_id == contact_id).order_by(identities.c.id))]
        agg = conn.execute(select(contact_aggregates).where(contact_aggregates.c.contact_id == contact_id)).first()
        profile["aggregates"] = {k: v for k, v in agg._mapping.items() if k != "contact_id"} if agg else None
        return profile

    def find(self, conn: Connection, kind: str, value: str) -> int:
        row = conn.execute(select(identities.c.contact_id).where(
            identities.c.kind == kind, identities.c.value == value)).first()
        if row is None:
            raise NotFound(f"contact with {kind}", value)
        return row.contact_id

    def search(self, conn: Connection, query: str = "", *, country: str | None = None,
               limit: int = 50, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
        """(total, page): contacts whose email, external id, phone or name contains ``query``."""
        if len(query) > MAX_QUERY:
            raise FieldError("q", f"a search is at most {MAX_QUERY} characters, not {len(query):,}")
        where = []
        if query:
            pattern = f"%{escape_like(query.strip().lower())}%"
            where.append(or_(*(func.lower(col).like(pattern, escape="\\") for col in (
                contacts.c.email, contacts.c.external_id, contacts.c.phone,
                contacts.c.first_name, contacts.c.last_name))))
        if country:
            where.append(contacts.c.country == country.upper())
        total = conn.execute(select(func.count()).select_from(contacts).where(*where)).scalar_one()
        rows = conn.execute(select(contacts).where(*where).order_by(contacts.c.id)
                            .limit(min(max(limit, 1), MAX_PAGE)).offset(max(offset, 0))).all()
        return total, [{k: v for k, v in r._mapping.items() if k != "merged_into"} for r in rows]

    def delete(self, conn: Connection, contact_id: int) -> None:
        """Remove a contact and everything attached to it (no tombstone: see GdprService.erase)."""
        self.require(conn, contact_id)
        conn.execute(delete(contacts).where(contacts.c.id == contact_id))


def _with_patch_identifiers(ids: Identifiers, patch: ProfilePatch) -> Identifiers:
    return Identifiers(external_id=ids.external_id or patch.external_id, email=ids.email or patch.email,
                       phone=ids.phone or patch.phone, anonymous_id=ids.anonymous_id)


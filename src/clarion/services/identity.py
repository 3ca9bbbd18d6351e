"""Finding, creating and merging contacts by their identifiers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select, update

from ..domain.errors import Conflict, Erased, FieldError
from ..store.schema import (
    consent_ledger,
    consents,
    contacts,
    devices,
    erasure_tombstones,
    events,
    identities,
)
from .hashing import identity_hash
from .identity_bulk import owners_by_value

# Which identifier decides who a person is, strongest first.
PRECEDENCE = ("external_id", "email", "phone", "anonymous_id")
# Characters, the widths of contacts.external_id and identities.value.
MAX_IDENTIFIER = {"external_id": 255, "email": 320, "phone": 32, "anonymous_id": 320}


@dataclass(frozen=True)
class Identifiers:
    external_id: str | None = None
    email: str | None = None
    phone: str | None = None
    anonymous_id: str | None = None

    def pairs(self) -> tuple[tuple[str, str], ...]:
        """(kind, value) for the identifiers given, strongest first (computed once: a hot path)."""
        try:
            return self._pairs  # type: ignore[attr-defined]
        except AttributeError:
            pairs = tuple((kind, getattr(self, kind)) for kind in PRECEDENCE if getattr(self, kind))
            object.__setattr__(self, "_pairs", pairs)
            return pairs

    def require_any(self) -> None:
        if not self.pairs():
            raise FieldError("userId", "one of userId, anonymousId, email or phone is required")
        for kind, value in self.pairs():
            if len(value) > MAX_IDENTIFIER[kind]:
                raise FieldError(kind, f"longer than {MAX_IDENTIFIER[kind]} characters")


def owners(conn: Connection, ids: Identifiers) -> dict[str, int]:
    """{kind: contact_id} for the identifiers already known."""
    found: dict[str, int] = {}
    for kind, value in ids.pairs():
        row = conn.execute(
            select(identities.c.contact_id).where(identities.c.kind == kind, identities.c.value == value)
        ).first()
        if row:
            found[kind] = row.contact_id
    return found


def check_not_erased(conn: Connection, salt: str, ids: Identifiers) -> None:
    hashes = [identity_hash(salt, kind, value) for kind, value in ids.pairs()]
    if not hashes:
        return
    hit = conn.execute(
        select(erasure_tombstones.c.identity_hash).where(erasure_tombstones.c.identity_hash.in_(hashes))
    ).first()
    if hit:
        raise Erased("this contact was erased on request and may not be re-created")


def release_shared_device(conn: Connection, ids: Identifiers, found: dict[str, int]) -> dict[str, int]:
    """``found`` without an anonymous id that belongs to another known person.

    An anonymous id names a device or browser, which people share: when someone else logs in on
    it, that proves nothing about identity. The id then moves to the new person (see ``attach``)
    and takes no part in choosing whose profile this is.
    """
    if not ids.external_id or "anonymous_id" not in found:
        return found
    holder = conn.execute(select(contacts.c.external_id).where(contacts.c.id == found["anonymous_id"])).scalar()
    if holder is None or holder == ids.external_id:
        return found
    return {kind: cid for kind, cid in found.items() if kind != "anonymous_id"}


def choose_primary(conn: Connection, ids: Identifiers, found: dict[str, int]) -> tuple[int, list[int]]:
    """The contact that wins, and the others to merge into it.

    Only profiles without an external id (anonymous or address-only) are merged; two profiles
    that both carry an external id are two people, and the request is refused.
    """
    primary = next(found[kind] for kind in PRECEDENCE if kind in found)
    if ids.external_id and "external_id" not in found:
        holder = conn.execute(select(contacts.c.external_id).where(contacts.c.id == primary)).scalar()
        if holder is not None:
            kind = next(k for k in PRECEDENCE if k in found)
            raise Conflict(f"{kind} {getattr(ids, kind)!r} belongs to another contact (external id {holder!r})")
    others = sorted({cid for cid in found.values() if cid != primary})
    for other in others:
        row = conn.execute(select(contacts.c.external_id).where(contacts.c.id == other)).one()
        if row.external_id is not None:
            kind = next(k for k, cid in found.items() if cid == other)
            raise Conflict(f"{kind} {getattr(ids, kind)!r} belongs to another contact "
                           f"(external id {row.external_id!r})")
    return primary, others


def attach(conn: Connection, contact_id: int, ids: Identifiers, now) -> None:
    """Record identifiers for a contact. Email and phone are single-valued: a new one replaces the old."""
    for kind, value in ids.pairs():
        exists = conn.execute(
            select(identities.c.id, identities.c.contact_id).where(identities.c.kind == kind,
                                                                   identities.c.value == value)
        ).first()
        if exists and exists.contact_id == contact_id:
            continue
        if exists:
            if kind != "anonymous_id":
                raise Conflict(f"{kind} {value!r} belongs to another contact")
            # A shared device: its anonymous id follows whoever identified on it last.
            conn.execute(update(identities).where(identities.c.id == exists.id).values(contact_id=contact_id))
            continue
        if kind in ("email", "phone", "external_id"):
            conn.execute(delete(identities).where(identities.c.contact_id == contact_id,
                                                  identities.c.kind == kind))
        conn.execute(identities.insert().values(contact_id=contact_id, kind=kind, value=value,
                                                created_at=now))


def merge_into(conn: Connection, primary: int, other: int) -> None:
    """Move everything of ``other`` to ``primary`` and delete ``other``. Aggregates are rebuilt by the caller."""
    for table in (events, devices, consent_ledger):
        conn.execute(update(table).where(table.c.contact_id == other).values(contact_id=primary))
    _move_identities(conn, primary, other)
    _move_consents(conn, primary, other)
    _fill_missing_profile_fields(conn, primary, other)
    conn.execute(delete(contacts).where(contacts.c.id == other))


def _move_identities(conn: Connection, primary: int, other: int) -> None:
    held = {r.kind for r in conn.execute(select(identities.c.kind).where(identities.c.contact_id == primary))}
    for row in conn.execute(select(identities).where(identities.c.contact_id == other)).all():
        if row.kind in ("email", "phone", "external_id") and row.kind in held:
            continue  # the primary's own address wins; the other's is dropped with it
        conn.execute(update(identities).where(identities.c.id == row.id).values(contact_id=primary))


def _move_consents(conn: Connection, primary: int, other: int) -> None:
    """Keep, per channel and topic, whichever state was set most recently."""
    mine = {(r.channel, r.topic): r for r in conn.execute(select(consents).where(consents.c.contact_id == primary))}
    for row in conn.execute(select(consents).where(consents.c.contact_id == other)).all():
        key = (row.channel, row.topic)
        current = mine.get(key)
        if current is not None and current.updated_at >= row.updated_at:
            continue
        if current is not None:
            conn.execute(delete(consents).where(consents.c.contact_id == primary,
                                                consents.c.channel == row.channel, consents.c.topic == row.topic))
        conn.execute(consents.insert().values({**row._mapping, "contact_id": primary}))
    conn.execute(delete(consents).where(consents.c.contact_id == other))


_MERGEABLE = ("email", "phone", "first_name", "last_name", "locale", "country", "region", "city",
              "latitude", "longitude", "birthday", "anniversary")


def _fill_missing_profile_fields(conn: Connection, primary: int, other: int) -> None:
    a = conn.execute(select(contacts).where(contacts.c.id == primary)).one()._mapping
    b = conn.execute(select(contacts).where(contacts.c.id == other)).one()._mapping
    values = {name: b[name] for name in _MERGEABLE if a[name] is None and b[name] is not None}
    attributes = {**b["attributes"], **a["attributes"]}
    custom_dates = {**b["custom_dates"], **a["custom_dates"]}
    if attributes != a["attributes"]:
        values["attributes"] = attributes
    if custom_dates != a["custom_dates"]:
        values["custom_dates"] = custom_dates
    if values:
        conn.execute(update(contacts).where(contacts.c.id == primary).values(**values))



def owners_of_many(conn: Connection, many: Iterable[Identifiers]) -> dict[tuple[str, str], int]:
    """{(kind, value): contact_id} for all identifiers in ``many``, one query per kind."""
    wanted: dict[str, set[str]] = {}
    for ids in many:
        for kind, value in ids.pairs():
            wanted.setdefault(kind, set()).add(value)
    return {(kind, value): contact_id for kind, values in wanted.items()
            for value, contact_id in owners_by_value(conn, kind, values).items()}

def settled_owner(ids: Identifiers, known: dict[tuple[str, str], int]) -> int | None:
    """The contact when every identifier is known and all name the same one, else None."""
    owners_found = {known.get(pair) for pair in ids.pairs()}
    if len(owners_found) == 1 and None not in owners_found:
        return owners_found.pop()
    return None

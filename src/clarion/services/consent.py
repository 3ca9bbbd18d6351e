"""Consent per contact, channel and topic, with an append-only ledger; topics; the suppression list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select

from ..domain.consent import (
    ALL_TOPICS,
    PROOF_FIELDS,
    Channel,
    ConsentChange,
    ConsentStatus,
    SuppressionReason,
    parse_enum,
)
from ..domain.errors import Conflict, FieldError, NotFound
from ..domain.profiles import normalize_email, normalize_phone
from ..store.schema import consent_ledger, consents, contacts, suppressions, topics
from ..store.sql import insert_for
from .clock import utcnow
from .hashing import identity_hash
from .identity_bulk import chunks


class ConsentService:
    def __init__(self, hash_salt: str) -> None:
        self.hash_salt = hash_salt

    def create_topic(self, conn: Connection, key: str, name: str, *, description: str | None = None,
                     double_opt_in: bool = False) -> dict[str, Any]:
        key = key.strip()
        if not key or key == ALL_TOPICS or len(key) > 100:
            raise FieldError("key", "a topic key is 1..100 characters and not '*'")
        if conn.execute(select(topics.c.id).where(topics.c.key == key)).first():
            raise Conflict(f"topic {key!r} already exists")
        conn.execute(topics.insert().values(key=key, name=name or key, description=description,
                                            double_opt_in=double_opt_in, created_at=utcnow()))
        return self.topic(conn, key)

    def require_topic(self, conn: Connection, key: str) -> str:
        """The topic key, stripped, when it is '*' or an existing topic; FieldError otherwise."""
        key = key.strip()
        if key != ALL_TOPICS and conn.execute(select(topics.c.id).where(topics.c.key == key)).first() is None:
            raise FieldError("topic", f"unknown topic {key!r}; create it first (POST /api/topics or "
                                      "`clarion topics create`)")
        return key

    def topic(self, conn: Connection, key: str) -> dict[str, Any]:
        row = conn.execute(select(topics).where(topics.c.key == key)).first()
        if row is None:
            raise NotFound("topic", key)
        return dict(row._mapping)

    def list_topics(self, conn: Connection) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in conn.execute(select(topics).order_by(topics.c.key))]

    def record(self, conn: Connection, contact_id: int, channel: Channel, status: ConsentStatus, *,
               topic: str = ALL_TOPICS, source: str, proof: dict[str, Any] | None = None,
               occurred_at: datetime | None = None) -> dict[str, Any]:
        """Append a consent change to the ledger and update the current state.

        Opting in to a double opt-in topic without a confirmation in the proof leaves the
        contact ``pending_confirmation`` until :meth:`confirm`. A change older than the current
        state is kept in the ledger but does not overwrite the newer state.
        """
        if conn.execute(select(contacts.c.id).where(contacts.c.id == contact_id)).first() is None:
            raise NotFound("contact", contact_id)
        change = ConsentChange(channel, status, topic, occurred_at, clean_proof(proof or {}))
        return self.record_many(conn, [(contact_id, change)], source=source)[0]

    def record_many(self, conn: Connection, changes: Sequence[tuple[int, ConsentChange]], *, source: str,
                    skip_unchanged: bool = False) -> list[dict[str, Any]]:
        """:meth:`record` for many (contact id, change) pairs in a few statements; the contacts must exist.

        With ``skip_unchanged`` (imports), a change that states the current status again without a
        different date is not recorded twice: importing the same file again adds nothing to the ledger.
        Returns one dict per change, with ``ledger_id`` None for a skipped one.
        """
        double_opt_in = self._double_opt_in(conn, {change.topic for _, change in changes})
        now = utcnow()
        effective = [(cid, _effective(change, double_opt_in.get(change.topic, False), now)) for cid, change in changes]
        if skip_unchanged:
            current = self.current_of(conn, [cid for cid, _ in effective])
            keep = [not _restates(current.get((cid, c.channel.value, c.topic)), c, stated.occurred_at)
                    for (cid, c), (_, stated) in zip(effective, changes, strict=True)]
        else:
            keep = [True] * len(effective)
        written = [(cid, change) for (cid, change), kept in zip(effective, keep, strict=True) if kept]
        ledger_ids = iter(self._append(conn, written, source[:64], now))
        results = []
        for (_, change), kept in zip(effective, keep, strict=True):
            results.append({"channel": change.channel.value, "topic": change.topic, "status": change.status.value,
                            "ledger_id": next(ledger_ids) if kept else None})
        self._set_current(conn, [(cid, c, r["ledger_id"]) for (cid, c), r in zip(effective, results, strict=True)
                                 if r["ledger_id"] is not None])
        return results

    def _double_opt_in(self, conn: Connection, keys: set[str]) -> dict[str, bool]:
        """{topic key: double opt-in?}; FieldError for a topic that does not exist."""
        keys = keys - {ALL_TOPICS}
        if not keys:
            return {}
        found = dict(conn.execute(select(topics.c.key, topics.c.double_opt_in).where(topics.c.key.in_(sorted(keys))))
                     .all())
        missing = sorted(keys - set(found))
        if missing:
            raise FieldError("topic", f"unknown topic {missing[0]!r}; create it first (clarion topics create)")
        return found

    @staticmethod
    def _append(conn: Connection, changes: list[tuple[int, ConsentChange]], source: str, now: datetime) -> list[int]:
        if not changes:
            return []
        rows = [{"contact_id": cid, "channel": c.channel.value, "topic": c.topic, "status": c.status.value,
                 "occurred_at": c.occurred_at, "recorded_at": now, "source": source, "proof": dict(c.proof)}
                for cid, c in changes]
        statement = consent_ledger.insert().returning(consent_ledger.c.id, sort_by_parameter_order=True)
        return list(conn.execute(statement, rows).scalars())

    @staticmethod
    def _set_current(conn: Connection, changes: list[tuple[int, ConsentChange, int]]) -> None:
        """Upsert the current state, unless the stored state is newer (a late, older change only joins the ledger)."""
        newest: dict[tuple[int, str, str], dict[str, Any]] = {}
        for cid, change, ledger_id in changes:  # one row per key: PostgreSQL refuses to upsert a row twice
            key = (cid, change.channel.value, change.topic)
            if key not in newest or newest[key]["updated_at"] <= change.occurred_at:
                newest[key] = {"contact_id": cid, "channel": key[1], "topic": key[2], "status": change.status.value,
                               "updated_at": change.occurred_at, "ledger_id": ledger_id}
        if not newest:
            return
        stmt = insert_for(conn, consents)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[consents.c.contact_id, consents.c.channel, consents.c.topic],
            set_={"status": stmt.excluded.status, "updated_at": stmt.excluded.updated_at,
                  "ledger_id": stmt.excluded.ledger_id},
            where=consents.c.updated_at <= stmt.excluded.updated_at), list(newest.values()))

    def current_of(self, conn: Connection, contact_ids: Sequence[int]) -> dict[tuple[int, str, str], Any]:
        """{(contact id, channel, topic): row with status and updated_at} for these contacts."""
        found: dict[tuple[int, str, str], Any] = {}
        for chunk in chunks(sorted(set(contact_ids))):
            for row in conn.execute(select(consents.c.contact_id, consents.c.channel, consents.c.topic,
                                           consents.c.status, consents.c.updated_at)
                                    .where(consents.c.contact_id.in_(chunk))):
                found[(row.contact_id, row.channel, row.topic)] = row
        return found

    def confirm(self, conn: Connection, contact_id: int, channel: Channel, topic: str, *,
                source: str, proof: dict[str, Any] | None = None) -> dict[str, Any]:
        state = self.state(conn, contact_id).get((channel.value, topic))
        if state != ConsentStatus.PENDING_CONFIRMATION:
            raise Conflict(f"nothing to confirm for {channel.value}/{topic} (state: {state})")
        proof = {**(proof or {}), "confirmed_at": utcnow().isoformat()}
        return self.record(conn, contact_id, channel, ConsentStatus.OPTED_IN, topic=topic,
                           source=source, proof=proof)

    def state(self, conn: Connection, contact_id: int) -> dict[tuple[str, str], str]:
        return {(r.channel, r.topic): r.status for r in conn.execute(
            select(consents).where(consents.c.contact_id == contact_id))}

    def ledger(self, conn: Connection, contact_id: int) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in conn.execute(
            select(consent_ledger).where(consent_ledger.c.contact_id == contact_id)
            .order_by(consent_ledger.c.occurred_at, consent_ledger.c.id))]

    # -- suppression list -------------------------------------------------------------------
    def suppress(self, conn: Connection, kind: str, address: str, reason: SuppressionReason,
                 note: str | None = None) -> None:
        """Add an address (normalised email or E.164 phone); an existing entry keeps its first reason."""
        if kind not in ("email", "phone"):
            raise FieldError("kind", "must be 'email' or 'phone'")
        stmt = insert_for(conn, suppressions).values(
            address_hash=identity_hash(self.hash_salt, kind, address),
            address=None if reason == SuppressionReason.ERASED else address,
            kind=kind, reason=reason.value, note=note, created_at=utcnow())
        conn.execute(stmt.on_conflict_do_nothing(index_elements=[suppressions.c.address_hash]))

    def suppression(self, conn: Connection, kind: str, address: str) -> dict[str, Any] | None:
        row = conn.execute(select(suppressions).where(
            suppressions.c.address_hash == identity_hash(self.hash_salt, kind, address))).first()
        return dict(row._mapping) if row else None

    def list_suppressions(self, conn: Connection, *, kind: str | None = None, limit: int = 100,
                          offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
        where = [suppressions.c.kind == kind] if kind else []
        total = conn.execute(select(func.count()).select_from(suppressions).where(*where)).scalar_one()
        rows = conn.execute(select(suppressions).where(*where).order_by(suppressions.c.id)
                            .limit(min(max(limit, 1), 1000)).offset(max(offset, 0)))
        return total, [dict(r._mapping) for r in rows]

    def unsuppress(self, conn: Connection, kind: str, address: str) -> bool:
        """Lift a suppression; erasure tombstones cannot be lifted this way."""
        result = conn.execute(delete(suppressions).where(
            suppressions.c.address_hash == identity_hash(self.hash_salt, kind, address),
            suppressions.c.reason != SuppressionReason.ERASED.value))
        return result.rowcount > 0


def requested_status(raw: str) -> ConsentStatus:
    """A status a person or a system states directly: opted in or out (double opt-in topics make it pending)."""
    status = parse_enum(ConsentStatus, raw, "status")
    if status == ConsentStatus.PENDING_CONFIRMATION:
        raise FieldError("status", "opted_in or opted_out; double opt-in topics set pending_confirmation")
    return status


def address_of(email: str | None, phone: str | None, default_region: str) -> tuple[str, str]:
    """(kind, normalised address) from exactly one of an email or a phone number."""
    if bool(email) == bool(phone):
        raise FieldError("email", "give exactly one of email or phone")
    if email:
        return "email", normalize_email(email)
    return "phone", normalize_phone(phone or "", default_region)


def _effective(change: ConsentChange, double_opt_in: bool, now: datetime) -> ConsentChange:
    """The change as stored: dated (now, when not stated), and pending on a double opt-in topic until confirmed."""
    status = change.status
    if double_opt_in and status == ConsentStatus.OPTED_IN and not change.proof.get("confirmed_at"):
        status = ConsentStatus.PENDING_CONFIRMATION
    return replace(change, status=status, occurred_at=change.occurred_at or now)


def _restates(current: Any, change: ConsentChange, stated_at: datetime | None) -> bool:
    """The stored state already says this: the same status, and the change names no other date."""
    if current is None or current.status != change.status.value:
        return False
    return stated_at is None or current.updated_at == stated_at


def clean_proof(proof: dict[str, Any]) -> dict[str, Any]:
    unknown = set(proof) - set(PROOF_FIELDS)
    if unknown:
        raise FieldError("proof", f"unknown proof fields {sorted(unknown)}; allowed: {', '.join(PROOF_FIELDS)}")
    return {k: str(v)[:2000] for k, v in proof.items() if v is not None}

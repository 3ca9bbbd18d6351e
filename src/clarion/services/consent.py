"""Consent per contact, channel and topic, with an append-only ledger; topics; the suppression list."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select

from ..domain.consent import ALL_TOPICS, Channel, ConsentStatus, SuppressionReason
from ..domain.errors import Conflict, FieldError, NotFound
from ..store.schema import consent_ledger, consents, contacts, suppressions, topics
from ..store.sql import insert_for
from .clock import utcnow
from .hashing import identity_hash

# What the proof of a consent may hold (GDPR Art. 7(1): the controller must be able to show it).
PROOF_FIELDS = ("form", "ip", "user_agent", "text_version", "text", "url", "confirmed_at", "keyword", "campaign_id")


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
        proof = _clean_proof(proof or {})
        if conn.execute(select(contacts.c.id).where(contacts.c.id == contact_id)).first() is None:
            raise NotFound("contact", contact_id)
        if topic != ALL_TOPICS:
            row = conn.execute(select(topics.c.double_opt_in).where(topics.c.key == topic)).first()
            if row is None:
                raise FieldError("topic", f"unknown topic {topic!r}; create it first")
            if row.double_opt_in and status == ConsentStatus.OPTED_IN and not proof.get("confirmed_at"):
                status = ConsentStatus.PENDING_CONFIRMATION
        now = utcnow()
        occurred_at = occurred_at or now
        ledger_id = conn.execute(consent_ledger.insert().values(
            contact_id=contact_id, channel=channel.value, topic=topic, status=status.value,
            occurred_at=occurred_at, recorded_at=now, source=source[:64], proof=proof,
        ).returning(consent_ledger.c.id)).scalar_one()
        current = conn.execute(select(consents.c.updated_at).where(
            consents.c.contact_id == contact_id, consents.c.channel == channel.value,
            consents.c.topic == topic)).first()
        if current is None or current.updated_at <= occurred_at:
            stmt = insert_for(conn, consents).values(
                contact_id=contact_id, channel=channel.value, topic=topic, status=status.value,
                updated_at=occurred_at, ledger_id=ledger_id)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=[consents.c.contact_id, consents.c.channel, consents.c.topic],
                set_={"status": stmt.excluded.status, "updated_at": stmt.excluded.updated_at,
                      "ledger_id": stmt.excluded.ledger_id}))
        return {"channel": channel.value, "topic": topic, "status": status.value, "ledger_id": ledger_id}

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


def _clean_proof(proof: dict[str, Any]) -> dict[str, Any]:
    unknown = set(proof) - set(PROOF_FIELDS)
    if unknown:
        raise FieldError("proof", f"unknown proof fields {sorted(unknown)}; allowed: {', '.join(PROOF_FIELDS)}")
    return {k: str(v)[:2000] for k, v in proof.items() if v is not None}

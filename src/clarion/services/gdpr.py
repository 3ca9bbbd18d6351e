"""GDPR: export everything held about a contact (Art. 15/20) and erase it (Art. 17).

Erasure deletes the profile, identifiers, devices, events and aggregates. What stays:
- a salted hash of each identifier (``erasure_tombstones``), so a re-import cannot re-create them;
- the email and phone on the suppression list as hashes only, so they are never messaged again;
- the consent ledger rows, stripped to what proving the consent requires (when, what, which
  text version, through which form), with the address replaced by its salted hash.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, select, update

from ..domain.consent import SuppressionReason
from ..store.schema import consent_ledger, contacts, devices, erasure_tombstones, events, identities, suppressions
from ..store.schema_delivery import deliveries, delivery_log, tracked_links
from ..store.schema_scores import engagements
from ..store.sql import insert_for
from . import currents
from .clock import utcnow
from .consent import ConsentService
from .contacts import ContactService
from .hashing import identity_hash

# Proof fields that identify a person and go on erasure; the rest documents the consent itself.
PERSONAL_PROOF_FIELDS = ("ip", "user_agent", "keyword")


class GdprService:
    def __init__(self, contacts_service: ContactService, consent_service: ConsentService, salt: str) -> None:
        self.contacts = contacts_service
        self.consent = consent_service
        self.salt = salt

    def export(self, conn: Connection, contact_id: int) -> dict[str, Any]:
        profile = self.contacts.get(conn, contact_id)
        return {
            "profile": profile,
            "devices": _rows(conn, select(devices).where(devices.c.contact_id == contact_id)),
            "consent": [{"channel": c, "topic": t, "status": s}
                        for (c, t), s in sorted(self.consent.state(conn, contact_id).items())],
            "consent_ledger": self.consent.ledger(conn, contact_id),
            "events": _rows(conn, select(events).where(events.c.contact_id == contact_id)
                            .order_by(events.c.occurred_at, events.c.id)),
            "engagements": _rows(conn, select(engagements).where(engagements.c.contact_id == contact_id)
                                 .order_by(engagements.c.occurred_at, engagements.c.id)),
            "tracked_links": _rows(conn, select(tracked_links).join(
                deliveries, deliveries.c.id == tracked_links.c.delivery_id).where(deliveries.c.contact_id == contact_id)
                .order_by(tracked_links.c.delivery_id, tracked_links.c.position)),
        }

    def erase(self, conn: Connection, contact_id: int) -> dict[str, int]:
        self.contacts.require(conn, contact_id)
        now = utcnow()
        ids = conn.execute(select(identities.c.kind, identities.c.value)
                           .where(identities.c.contact_id == contact_id)).all()
        row = conn.execute(select(contacts.c.email, contacts.c.phone).where(contacts.c.id == contact_id)).one()
        for kind, address in (("email", row.email), ("phone", row.phone)):
            if address:
                self.consent.suppress(conn, kind, address, SuppressionReason.ERASED)
                # An entry made earlier (a hard bounce) keeps its reason, but not the address or the
                # provider's words, which may quote it: the hash alone keeps blocking it.
                conn.execute(update(suppressions).where(
                    suppressions.c.address_hash == identity_hash(self.salt, kind, address)).values(
                    address=None, note=None))
        _strip_deliveries(conn, contact_id)
        currents.forget_contact(conn, [contact_id])  # the event webhook's dead letters quote their engagements
        hashes = sorted({identity_hash(self.salt, kind, value) for kind, value in ids})
        if hashes:
            stmt = insert_for(conn, erasure_tombstones)
            conn.execute(stmt.on_conflict_do_nothing(index_elements=[erasure_tombstones.c.identity_hash]),
                         [{"identity_hash": h, "erased_at": now} for h in hashes])
        ledger_rows = self._strip_ledger(conn, contact_id, row.email or row.phone)
        event_count = conn.execute(select(events.c.id).where(events.c.contact_id == contact_id)).all()
        self.contacts.delete(conn, contact_id)
        return {"identities": len(ids), "events": len(event_count), "consent_records_kept": ledger_rows}

    def _strip_ledger(self, conn: Connection, contact_id: int, address: str | None) -> int:
        subject = identity_hash(self.salt, "subject", address) if address else None
        rows = conn.execute(select(consent_ledger.c.id, consent_ledger.c.proof)
                            .where(consent_ledger.c.contact_id == contact_id)).all()
        for row in rows:
            proof = {k: v for k, v in (row.proof or {}).items() if k not in PERSONAL_PROOF_FIELDS}
            conn.execute(update(consent_ledger).where(consent_ledger.c.id == row.id)
                         .values(proof=proof, subject_hash=subject, contact_id=None))
        return len(rows)


def _strip_deliveries(conn: Connection, contact_id: int) -> None:
    """Provider replies quote addresses ("550 5.1.1 <ana@example.com>: unknown"): the erased contact's
    delivery details go; states, reasons and codes stay, so campaign counts keep adding up."""
    mine = select(deliveries.c.id).where(deliveries.c.contact_id == contact_id)
    conn.execute(update(delivery_log).where(delivery_log.c.delivery_id.in_(mine)).values(detail=None))
    conn.execute(update(deliveries).where(deliveries.c.contact_id == contact_id).values(detail=None))
    # Tracked URLs may carry the person (a personalised link): they go, and the links answer 404 from now on.
    # The engagements go with the contact (ON DELETE CASCADE).
    conn.execute(delete(tracked_links).where(tracked_links.c.delivery_id.in_(mine)))


def _rows(conn: Connection, stmt) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(stmt)]

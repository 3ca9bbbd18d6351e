"""GDPR export and erasure: nothing personal stays, and an erased person cannot come back."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from clarion.domain.consent import Channel, ConsentStatus
from clarion.domain.errors import Erased
from clarion.domain.events import EventInput
from clarion.domain.traits import parse_traits
from clarion.services.identity import Identifiers
from clarion.store.schema import consent_ledger, contacts, events, identities, suppressions


@pytest.fixture
def ana(app):
    now = datetime.now(UTC)
    with app.store.write() as conn:
        cid = app.contacts.identify(conn, Identifiers(external_id="u1", anonymous_id="a1"),
                                    parse_traits({"email": "ana@example.com", "phone": "+351912345678",
                                                  "firstName": "Ana"}, default_region="PT"))
        app.events.ingest(conn, [EventInput("Order Completed", "m1", now, now, {"revenue": 9}, cid)])
        app.consent.record(conn, cid, Channel.EMAIL, ConsentStatus.OPTED_IN, source="form",
                           proof={"form": "checkout", "ip": "198.51.100.4", "text_version": "v2"})
    return cid


def test_export_holds_profile_consent_and_events(app, ana):
    with app.store.read() as conn:
        data = app.gdpr.export(conn, ana)
    assert data["profile"]["email"] == "ana@example.com"
    assert [e["message_id"] for e in data["events"]] == ["m1"]
    assert data["consent"] == [{"channel": "email", "topic": "*", "status": "opted_in"}]
    assert data["consent_ledger"][0]["proof"]["ip"] == "198.51.100.4"


def test_erasure_deletes_pii_and_keeps_minimal_proof(app, ana):
    with app.store.write() as conn:
        app.gdpr.erase(conn, ana)
    with app.store.read() as conn:
        assert conn.execute(select(contacts)).first() is None
        assert conn.execute(select(identities)).first() is None
        assert conn.execute(select(events)).first() is None
        ledger = conn.execute(select(consent_ledger)).one()._mapping
        suppressed = conn.execute(select(suppressions.c.address, suppressions.c.reason)).all()
    assert ledger["contact_id"] is None and ledger["subject_hash"]
    assert ledger["proof"] == {"form": "checkout", "text_version": "v2"}
    assert sorted(suppressed) == [(None, "erased"), (None, "erased")]
    with app.store.read() as conn:
        assert app.consent.suppression(conn, "email", "ana@example.com")["reason"] == "erased"


@pytest.mark.parametrize("ids", [Identifiers(external_id="u1"), Identifiers(email="ana@example.com"),
                                 Identifiers(phone="+351912345678"), Identifiers(anonymous_id="a1")])
def test_an_erased_person_is_not_recreated(app, ana, ids):
    with app.store.write() as conn:
        app.gdpr.erase(conn, ana)
    with pytest.raises(Erased):
        with app.store.write() as conn:
            app.contacts.identify(conn, ids)

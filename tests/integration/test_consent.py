"""Consent per channel and topic, the append-only ledger, double opt-in and suppressions."""

from datetime import UTC, datetime, timedelta

import pytest

from clarion.domain.consent import Channel, ConsentStatus, SuppressionReason
from clarion.domain.errors import Conflict, FieldError, NotFound
from clarion.services.identity import Identifiers


@pytest.fixture
def ana(app):
    with app.store.write() as conn:
        return app.contacts.identify(conn, Identifiers(email="ana@example.com"))


def test_every_change_is_appended_to_the_ledger(app, ana):
    with app.store.write() as conn:
        app.consent.record(conn, ana, Channel.EMAIL, ConsentStatus.OPTED_IN, source="form",
                           proof={"form": "footer", "ip": "203.0.113.7", "text_version": "v3"})
        app.consent.record(conn, ana, Channel.EMAIL, ConsentStatus.OPTED_OUT, source="unsubscribe_link")
        ledger = app.consent.ledger(conn, ana)
        state = app.consent.state(conn, ana)
    assert [r["status"] for r in ledger] == ["opted_in", "opted_out"]
    assert ledger[0]["proof"] == {"form": "footer", "ip": "203.0.113.7", "text_version": "v3"}
    assert state == {("email", "*"): "opted_out"}


def test_an_older_change_does_not_overwrite_a_newer_state(app, ana):
    now = datetime.now(UTC)
    with app.store.write() as conn:
        app.consent.record(conn, ana, Channel.SMS, ConsentStatus.OPTED_OUT, source="sms_keyword", occurred_at=now)
        app.consent.record(conn, ana, Channel.SMS, ConsentStatus.OPTED_IN, source="import",
                           occurred_at=now - timedelta(days=30))
        assert app.consent.state(conn, ana) == {("sms", "*"): "opted_out"}
        assert len(app.consent.ledger(conn, ana)) == 2


def test_double_opt_in_topic_waits_for_confirmation(app, ana):
    with app.store.write() as conn:
        app.consent.create_topic(conn, "newsletter", "Weekly newsletter", double_opt_in=True)
        result = app.consent.record(conn, ana, Channel.EMAIL, ConsentStatus.OPTED_IN, topic="newsletter",
                                    source="form")
        assert result["status"] == "pending_confirmation"
        app.consent.confirm(conn, ana, Channel.EMAIL, "newsletter", source="confirmation_link")
        assert app.consent.state(conn, ana)[("email", "newsletter")] == "opted_in"
        with pytest.raises(Conflict, match="nothing to confirm"):
            app.consent.confirm(conn, ana, Channel.EMAIL, "newsletter", source="confirmation_link")


def test_unknown_topic_and_proof_fields_are_refused(app, ana):
    with app.store.write() as conn:
        with pytest.raises(FieldError, match="unknown topic"):
            app.consent.record(conn, ana, Channel.EMAIL, ConsentStatus.OPTED_IN, topic="nope", source="api")
        with pytest.raises(NotFound):
            app.consent.record(conn, ana + 1, Channel.EMAIL, ConsentStatus.OPTED_IN, source="api")
        with pytest.raises(FieldError, match="proof"):
            app.consent.record(conn, ana, Channel.EMAIL, ConsentStatus.OPTED_IN, source="api",
                               proof={"favourite_colour": "blue"})


def test_suppression_is_by_address_and_keeps_the_first_reason(app):
    with app.store.write() as conn:
        app.consent.suppress(conn, "email", "ana@example.com", SuppressionReason.HARD_BOUNCE)
        app.consent.suppress(conn, "email", "ana@example.com", SuppressionReason.MANUAL)
        entry = app.consent.suppression(conn, "email", "ana@example.com")
        assert (entry["reason"], entry["address"]) == ("hard_bounce", "ana@example.com")
        assert app.consent.unsuppress(conn, "email", "ana@example.com")
        assert app.consent.suppression(conn, "email", "ana@example.com") is None

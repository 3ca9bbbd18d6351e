"""Identify, merge, update, search and delete contacts."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from clarion.domain.consent import Channel, ConsentStatus
from clarion.domain.errors import Conflict, NotFound
from clarion.domain.events import EventInput
from clarion.domain.traits import parse_traits
from clarion.services.identity import Identifiers
from clarion.store.schema import contacts


def traits(**values):
    return parse_traits(values, default_region="US")


def test_identify_creates_then_updates_the_same_contact(app):
    with app.store.write() as conn:
        first = app.contacts.identify(conn, Identifiers(external_id="u1"), traits(email="Ana@Example.com"))
        again = app.contacts.identify(conn, Identifiers(external_id="u1"), traits(firstName="Ana"))
        profile = app.contacts.get(conn, first)
    assert first == again
    assert (profile["email"], profile["first_name"], profile["external_id"]) == ("ana@example.com", "Ana", "u1")


@pytest.mark.parametrize("kind, value", [("email", "ana@example.com"), ("phone", "+12125550123"),
                                         ("external_id", "u1")])
def test_a_contact_is_found_by_any_identifier(app, kind, value):
    with app.store.write() as conn:
        cid = app.contacts.identify(conn, Identifiers(external_id="u1"),
                                    traits(email="ana@example.com", phone="212 555 0123"))
        assert app.contacts.find(conn, kind, value) == cid
        assert app.contacts.identify(conn, Identifiers(**{kind: value})) == cid


def test_time_zone_source_is_recorded(app):
    with app.store.write() as conn:
        cid = app.contacts.identify(conn, Identifiers(external_id="u1"), traits(country="DE"))
        assert app.contacts.get(conn, cid)["timezone"] == "Europe/Berlin"
        app.contacts.update(conn, cid, traits(latitude=35.68, longitude=139.69))
        profile = app.contacts.get(conn, cid)
        assert (profile["timezone"], profile["timezone_source"]) == ("Asia/Tokyo", "coordinates")
        app.contacts.update(conn, cid, traits(timezone="America/Chicago"))
        app.contacts.update(conn, cid, traits(country="FR"))
        profile = app.contacts.get(conn, cid)
        assert (profile["timezone"], profile["timezone_source"]) == ("America/Chicago", "explicit")


def test_merging_an_anonymous_profile_keeps_its_events_and_consent(app):
    now = datetime.now(UTC)
    with app.store.write() as conn:
        # Given an anonymous visitor who viewed a product and opted in to email
        anon = app.contacts.identify(conn, Identifiers(anonymous_id="anon-1"), traits(plan="trial"))
        app.events.ingest(conn, [EventInput("Product Viewed", "m1", now - timedelta(hours=1), now, {}, anon)])
        app.consent.record(conn, anon, Channel.EMAIL, ConsentStatus.OPTED_IN, source="form")
        # and a known customer with a purchase
        known = app.contacts.identify(conn, Identifiers(external_id="u1"), traits(email="ana@example.com"))
        app.events.ingest(conn, [EventInput("Order Completed", "m2", now, now, {"revenue": 10}, known)])
        # When the visitor logs in as that customer
        merged = app.contacts.identify(conn, Identifiers(external_id="u1", anonymous_id="anon-1"))
        profile = app.contacts.get(conn, merged)
        state = app.consent.state(conn, merged)
        remaining = conn.execute(select(func.count()).select_from(contacts)).scalar_one()
    # Then one contact holds both events, the consent, and the anonymous attributes
    assert merged == known and remaining == 1
    assert profile["aggregates"]["event_count"] == 2 and profile["aggregates"]["order_count"] == 1
    assert state == {("email", "*"): "opted_in"}
    assert profile["attributes"] == {"plan": "trial"}
    assert {"kind": "anonymous_id", "value": "anon-1"} in profile["identities"]
    with pytest.raises(NotFound):
        with app.store.read() as conn:
            app.contacts.get(conn, anon)


def test_two_known_people_are_never_merged(app):
    with app.store.write() as conn:
        app.contacts.identify(conn, Identifiers(external_id="u1"), traits(email="ana@example.com"))
        app.contacts.identify(conn, Identifiers(external_id="u2"), traits(email="bob@example.com"))
    with pytest.raises(Conflict, match="belongs to another contact"):
        with app.store.write() as conn:
            app.contacts.identify(conn, Identifiers(external_id="u1"), traits(email="bob@example.com"))


def test_changing_an_email_replaces_the_identity(app):
    with app.store.write() as conn:
        cid = app.contacts.identify(conn, Identifiers(external_id="u1"), traits(email="old@example.com"))
        app.contacts.update(conn, cid, traits(email="new@example.com"))
        assert app.contacts.find(conn, "email", "new@example.com") == cid
        with pytest.raises(NotFound):
            app.contacts.find(conn, "email", "old@example.com")


def test_search_matches_literally_and_pages(app):
    with app.store.write() as conn:
        for i in range(5):
            app.contacts.identify(conn, Identifiers(external_id=f"u{i}"),
                                  traits(email=f"user{i}@example.com", country="PT" if i % 2 else "FR"))
        app.contacts.identify(conn, Identifiers(external_id="pct"), traits(email="100%off@example.com"))
        total, page = app.contacts.search(conn, "example.com", limit=2, offset=2)
        assert total == 6 and len(page) == 2
        assert app.contacts.search(conn, "%")[0] == 1  # the wildcard is matched literally
        assert app.contacts.search(conn, "", country="pt")[0] == 2


def test_delete_removes_the_contact_and_its_events(app):
    now = datetime.now(UTC)
    with app.store.write() as conn:
        cid = app.contacts.identify(conn, Identifiers(external_id="u1"))
        app.events.ingest(conn, [EventInput("Signed Up", "m1", now, now, {}, cid)])
        app.contacts.delete(conn, cid)
        assert app.events.list(conn)[0] == 0
        with pytest.raises(NotFound):
            app.contacts.delete(conn, cid)


def test_a_shared_device_does_not_hand_one_person_s_profile_to_another(app):
    with app.store.write() as conn:
        # Given Alice identified on a shared tablet
        alice = app.contacts.identify(conn, Identifiers(external_id="alice", anonymous_id="tablet"),
                                      traits(email="alice@example.com"))
        # When Bob logs in on the same tablet
        bob = app.contacts.identify(conn, Identifiers(external_id="bob", anonymous_id="tablet"))
        alice_profile, bob_profile = app.contacts.get(conn, alice), app.contacts.get(conn, bob)
    # Then Bob is a new contact, Alice keeps her profile, and the tablet now points to Bob
    assert bob != alice
    assert (alice_profile["external_id"], alice_profile["email"]) == ("alice", "alice@example.com")
    assert (bob_profile["external_id"], bob_profile["email"]) == ("bob", None)
    with app.store.read() as conn:
        assert app.contacts.find(conn, "anonymous_id", "tablet") == bob


def test_an_address_of_a_known_person_cannot_be_claimed_by_a_new_user_id(app):
    with app.store.write() as conn:
        app.contacts.identify(conn, Identifiers(external_id="alice"), traits(email="alice@example.com"))
    with pytest.raises(Conflict, match="belongs to another contact"):
        with app.store.write() as conn:
            app.contacts.identify(conn, Identifiers(external_id="mallory"), traits(email="alice@example.com"))
    with app.store.read() as conn:
        assert app.contacts.get(conn, app.contacts.find(conn, "email", "alice@example.com"))["external_id"] == "alice"


def test_over_long_identifiers_are_refused_with_the_field(app):
    from clarion.domain.errors import FieldError
    with pytest.raises(FieldError) as err:
        with app.store.write() as conn:
            app.contacts.identify(conn, Identifiers(external_id="x" * 256))
    assert err.value.field == "external_id"

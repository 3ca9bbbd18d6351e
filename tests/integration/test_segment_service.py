"""The segment service: definitions, preview, materialised membership, entered/left changes; both stores."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from segment_world import NOW

from clarion.domain.consent import Channel, ConsentStatus, SuppressionReason
from clarion.domain.errors import Conflict, NotFound
from clarion.domain.events import EventInput
from clarion.domain.profiles import ProfilePatch
from clarion.domain.rules import RuleError, RuleSyntaxError
from clarion.services.identity import Identifiers
from clarion.services.segments import SegmentService


@pytest.fixture
def service(app) -> SegmentService:
    return SegmentService(app.settings)


def _people(app, conn, **countries: str) -> dict[str, int]:
    return {name: app.contacts.identify(conn, Identifiers(external_id=name), ProfilePatch(country=country))
            for name, country in countries.items()}


def _buy(app, conn, cid: int, message_id: str) -> None:
    app.events.ingest(conn, [EventInput("Order Completed", message_id, NOW - timedelta(days=1), NOW,
                                        {"revenue": 20.0}, cid)])


def test_create_stores_the_canonical_rule_and_refuses_bad_ones(app, service):
    with app.store.write() as conn:
        # given a rule written loosely, when it is saved
        created = service.create(conn, "usa", 'country IN ("US",) AND orders.count>=1', refresh_minutes=60)
        # then it is stored as canonical JSON and printed canonically
        assert created["text"] == 'country in ("US") and orders.count >= 1'
        assert created["rule"]["all"][0] == {"field": "country", "op": "in", "value": ["US"]}
        # and a duplicate name, an unknown field, a syntax error and an unknown segment are refused
        with pytest.raises(Conflict):
            service.create(conn, "usa", 'country = "US"')
        with pytest.raises(RuleError, match="unknown field 'orders.cnt'"):
            service.create(conn, "typo", "orders.cnt >= 1")
        with pytest.raises(RuleSyntaxError, match="line 1, column"):
            service.create(conn, "broken", 'country = "US" and (')
        with pytest.raises(RuleError, match="unknown segment 'nope'"):
            service.create(conn, "ref", 'in_segment("nope")')
        assert [s["name"] for s in service.list(conn)] == ["usa"]


def test_cycles_through_an_update_are_refused_and_used_segments_cannot_be_deleted(app, service):
    with app.store.write() as conn:
        service.create(conn, "a", 'country = "US"')
        service.create(conn, "b", 'in_segment("a") and orders.count >= 1')
        # when a's rule is changed to use b, then the cycle is named
        with pytest.raises(RuleError, match="a -> b -> a"):
            service.update(conn, "a", rule='in_segment("b")')
        # and a, used by b, cannot be deleted until b is gone
        with pytest.raises(Conflict, match="used by: b"):
            service.delete(conn, "a")
        service.delete(conn, "b")
        service.delete(conn, "a")
        with pytest.raises(NotFound):
            service.get(conn, "a")


def test_full_refresh_records_who_entered_and_who_left(app, service):
    with app.store.write() as conn:
        ids = _people(app, conn, ana="US", bo="US", cy="FR")
        service.create(conn, "usa", 'country = "US"')
        # when refreshed, then both Americans entered
        first = service.refresh(conn, "usa")
        assert (first.members, first.entered, first.left) == (2, 2, 0)
        # given Bo moves to France and Cy to the US, when refreshed again
        app.contacts.update(conn, ids["bo"], ProfilePatch(country="FR"))
        app.contacts.update(conn, ids["cy"], ProfilePatch(country="US"))
        second = service.refresh(conn, "usa")
        # then Bo left, Cy entered, and the membership and changes say so
        assert (second.members, second.entered, second.left) == (2, 1, 1)
        assert set(service.members(conn, "usa")) == {ids["ana"], ids["cy"]}
        changes = [(c["contact_id"], c["change"]) for c in service.changes(conn, "usa")]
        assert changes[2:] == [(ids["bo"], "left"), (ids["cy"], "entered")]
        assert service.get(conn, "usa")["member_count"] == 2
        # and a refresh with nothing changed records nothing
        assert (service.refresh(conn, "usa").entered, service.refresh(conn, "usa").left) == (0, 0)


def test_incremental_refresh_examines_only_contacts_whose_data_changed(app, service):
    with app.store.write() as conn:
        ids = _people(app, conn, **{f"p{i}": "US" for i in range(6)})
        service.create(conn, "buyers", 'country = "US" and orders.count >= 1')
        _buy(app, conn, ids["p0"], "m0")
        assert service.refresh(conn, "buyers").members == 1
        # given two new purchases and one profile change
        _buy(app, conn, ids["p1"], "m1")
        _buy(app, conn, ids["p2"], "m2")
        app.contacts.update(conn, ids["p0"], ProfilePatch(country="PT"))
        # when refreshed incrementally
        result = service.refresh(conn, "buyers", incremental=True)
    # then only those three were examined; two entered and one left
    assert (result.examined, result.entered, result.left, result.members) == (3, 2, 1, 2)


def test_preview_counts_and_samples_without_storing(app, service):
    with app.store.write() as conn:
        _people(app, conn, ana="US", bo="US", cy="FR")
        preview = service.preview(conn, 'country = "US"', sample=1)
        assert preview["count"] == 2 and len(preview["sample"]) == 1
        assert service.list(conn) == []


def test_due_lists_segments_whose_schedule_has_come(app, service):
    with app.store.write() as conn:
        service.create(conn, "hourly", 'country = "US"', refresh_minutes=60)
        service.create(conn, "manual", 'country = "US"')
        assert service.due(conn) == ["hourly"]
        service.refresh(conn, "hourly")
        assert service.due(conn) == []
        with time_machine.travel(service.get(conn, "hourly")["refreshed_at"] + timedelta(minutes=61)):
            assert service.due(conn) == ["hourly"]


def test_explain_names_the_deciding_values(app, service):
    with app.store.write() as conn:
        ids = _people(app, conn, ana="US")
        service.create(conn, "usa_buyers", 'country = "US" and orders.count >= 1')
        explained = service.explain(conn, "usa_buyers", ids["ana"])
        with pytest.raises(NotFound):
            service.explain(conn, "usa_buyers", 999_999)
    assert explained["holds"] is False
    assert [(c["rule"], c["holds"], c["values"]) for c in explained["children"]] == [
        ('country = "US"', True, {"value": "US"}), ("orders.count >= 1", False, {"value": 0})]


def test_incremental_refresh_agrees_with_a_full_one_for_behaviour_rules(app, service):
    # given a rule on behaviour in a window, a metric and an event time, refreshed once
    rule = ('performed("Viewed") >= 2 times within 30 days or sum("Order Completed", revenue) > 50 '
            'or last_performed("Signed Up") within 10 days')
    with app.store.write() as conn:
        ids = _people(app, conn, **{f"p{i}": "US" for i in range(8)})
        service.create(conn, "active", rule)
        service.create(conn, "control", rule)
        service.refresh(conn, "active")
        # when events arrive for some contacts (some cross a threshold, some do not)
        plan = [("p0", "Viewed", 1), ("p0", "Viewed", 2), ("p1", "Viewed", 1), ("p2", "Viewed", 40),
                ("p2", "Viewed", 45), ("p3", "Signed Up", 3), ("p4", "Signed Up", 20)]
        app.events.ingest(conn, [EventInput(name, f"b-{i}", NOW - timedelta(days=days), NOW, {}, ids[who])
                                 for i, (who, name, days) in enumerate(plan)])
        app.events.ingest(conn, [EventInput("Order Completed", "b-order", NOW, NOW, {"revenue": 60.0}, ids["p5"])])
        with time_machine.travel(NOW, tick=False):
            incremental = service.refresh(conn, "active", incremental=True)
            full = service.refresh(conn, "control")
        # then the incremental refresh finds exactly the members a full one finds
        assert incremental.examined == 6
        assert set(service.members(conn, "active")) == set(service.members(conn, "control")) == {
            ids["p0"], ids["p3"], ids["p5"]}
        assert (incremental.entered, full.entered) == (3, 3)


def test_a_changed_rule_refreshes_fully_and_schedules_count_from_full_refreshes(app, service):
    with app.store.write() as conn:
        ids = _people(app, conn, fr="FR", pt="PT")
        service.create(conn, "here", 'country = "FR"', refresh_minutes=60)
        service.refresh(conn, "here")
        # when the rule changes, even an incremental refresh re-evaluates everyone
        service.update(conn, "here", rule='country = "PT"')
        result = service.refresh(conn, "here", incremental=True)
        assert (result.mode, set(service.members(conn, "here"))) == ("full", {ids["pt"]})
        # and incremental refreshes do not push back the scheduled full one
        full_at = service.get(conn, "here")["full_refreshed_at"]
        with time_machine.travel(full_at + timedelta(minutes=61)):
            service.refresh(conn, "here", incremental=True)
            assert service.due(conn) == ["here"]


def test_a_new_suppression_makes_its_contact_a_candidate(app, service):
    with app.store.write() as conn:
        # given a segment of reachable contacts, refreshed
        ids = _people(app, conn, ana="US")
        app.contacts.update(conn, ids["ana"], ProfilePatch(email="ana@x.io"))
        app.consent.record(conn, ids["ana"], Channel.EMAIL, ConsentStatus.OPTED_IN, source="test")
        service.create(conn, "mailable", 'reachable("email")')
        assert service.refresh(conn, "mailable").members == 1
        # when her address is suppressed, then an incremental refresh takes her out
        app.consent.suppress(conn, "email", "ana@x.io", SuppressionReason.HARD_BOUNCE)
        result = service.refresh(conn, "mailable", incremental=True)
    assert (result.examined, result.left, result.members) == (1, 1, 0)

"""The attribution pass on a real store: goal events credited once to the last touch (click > open > delivery),
late events when they arrive, revenue in the workspace currency.

The world is built directly: campaigns through the campaign service (started, with nobody in their
audience), ledger rows inserted as ``sent``, engagements written by tracking.engagements, and events
ingested through the event service, all at fixed times around T0.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from delivery_world import add_contact, make_campaign
from sqlalchemy import select
from typer.testing import CliRunner

from clarion.cli import main as cli_main
from clarion.domain.events import EventInput
from clarion.services import currency
from clarion.services.attribution import AttributionService
from clarion.store.schema import events
from clarion.store.schema_delivery import deliveries
from clarion.store.schema_scores import engagements
from clarion.tracking import engagements as recorded

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
NOBODY = 'email = "nobody@example.invalid"'  # the ledger rows are written by the tests, not by the audience
_message_ids = count(1)


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def campaign(app, name: str, **goal: Any) -> int:
    """A started campaign whose conversion goal is ``goal`` (defaults: Order Completed, 5/1/1 days)."""
    return make_campaign(app, name, rule=NOBODY, settings={"goal": goal} if goal else {})["id"]


def sent(app, campaign_id: int, contact_id: int, at: datetime, *, channel: str = "email",
         status: str = "sent") -> int:
    """A ledger row sent at ``at``, with the ``received`` engagement the worker writes with it."""
    with app.store.write() as conn:
        delivery_id = conn.execute(deliveries.insert().values(
            campaign_id=campaign_id, step="main", contact_id=contact_id, channel=channel, status=status,
            due_at=at, marketing=True, created_at=at, sent_at=at if status == "sent" else None)).inserted_primary_key[0]
        if status == "sent":
            recorded.record(conn, recorded.touch_of(conn, delivery_id), "received", at)
    return delivery_id


def engaged(app, delivery_id: int, action: str, at: datetime, *, machine: bool = False) -> None:
    with app.store.write() as conn:
        recorded.record(conn, recorded.touch_of(conn, delivery_id), action, at, machine=machine,
                        reason="scanner_agent" if machine else None)


def event(app, contact_id: int, at: datetime, name: str = "Order Completed", **properties: Any) -> int:
    """An event ingested now (its id is the newest) that happened at ``at``; returns its id."""
    message_id = f"m-{next(_message_ids)}"
    with app.store.write() as conn:
        app.events.ingest(conn, [EventInput(name, message_id, at, at, properties, contact_id)])
        return conn.execute(select(events.c.id).where(events.c.message_id == message_id)).scalar_one()


def attribute(app, limit: int | None = None) -> dict[str, Any]:
    with app.store.write() as conn:
        return AttributionService(app.settings).run(conn, limit=limit)


def conversions(app) -> list[dict[str, Any]]:
    e = engagements.c
    with app.store.read() as conn:
        rows = conn.execute(select(e.event_id, e.contact_id, e.campaign_id, e.delivery_id, e.channel, e.occurred_at,
                                   e.revenue, e.reason).where(e.action == "converted").order_by(e.event_id))
        return [dict(row._mapping) for row in rows]


def test_a_click_in_its_window_beats_a_later_open(app):
    # given an email clicked three days before an order, and another campaign's email opened an hour before it
    ana = add_contact(app, "ana@example.com")
    clicked = sent(app, campaign(app, "spring"), ana, hours(-80))
    engaged(app, clicked, "clicked", hours(-72))
    opened = sent(app, campaign(app, "summer"), ana, hours(-2))
    engaged(app, opened, "opened", hours(-1))
    order = event(app, ana, T0, revenue=42.5)
    # when the attribution pass runs
    result = attribute(app)
    # then the order is the clicked email's conversion, at the order's time, with its revenue
    assert result["credited"] == 1 and result["revenue"] == 42.5
    [conversion] = conversions(app)
    assert conversion["event_id"] == order and conversion["delivery_id"] == clicked
    assert conversion["occurred_at"] == T0 and conversion["revenue"] == 42.5 and conversion["reason"] is None


def test_an_order_outside_every_window_is_not_credited(app):
    # given a click six days before the order (window: 5 days) and a delivery two days before it (1 day)
    ana = add_contact(app, "ana@example.com")
    delivery = sent(app, campaign(app, "spring"), ana, hours(-6 * 24 - 1))
    engaged(app, delivery, "clicked", hours(-6 * 24))
    sent(app, campaign(app, "summer"), ana, hours(-48))
    event(app, ana, T0, revenue=10)
    # when attributed; then the order was examined and credited to nobody
    assert attribute(app)["examined"] == 1
    assert conversions(app) == []


def test_a_machine_click_is_not_a_touch(app):
    # given an email a scanner clicked an hour before the order, and a person's open of another the day before
    ana = add_contact(app, "ana@example.com")
    scanned = sent(app, campaign(app, "spring", delivery_days=0.01), ana, hours(-2))
    engaged(app, scanned, "clicked", hours(-1), machine=True)
    opened = sent(app, campaign(app, "summer"), ana, hours(-30))
    engaged(app, opened, "opened", hours(-20))
    event(app, ana, T0)
    # when attributed; then the person's open is credited, not the scanner's click
    attribute(app)
    assert [c["delivery_id"] for c in conversions(app)] == [opened]


def test_a_goal_with_a_where_filter_credits_only_matching_events(app):
    # given a campaign whose goal is a pro-plan order of 5 seats, clicked by Ana and Bo
    ana, bo = add_contact(app, "ana@example.com"), add_contact(app, "bo@example.com")
    pro = campaign(app, "pro", where={"plan": "pro", "seats": 5})
    engaged(app, sent(app, pro, ana, hours(-5)), "clicked", hours(-4))
    engaged(app, sent(app, pro, bo, hours(-5)), "clicked", hours(-4))
    # when Ana orders the basic plan and Bo the pro plan (seats as 5.0: numbers compare as numbers)
    event(app, ana, T0, plan="basic", seats=5)
    bo_order = event(app, bo, T0, plan="pro", seats=5.0)
    attribute(app)
    # then only Bo's order is a conversion
    assert [(c["event_id"], c["contact_id"]) for c in conversions(app)] == [(bo_order, bo)]


def test_a_goal_that_is_not_an_order_counts_its_own_event(app):
    # given a campaign whose goal is "Trial Started", opened the hour before
    ana = add_contact(app, "ana@example.com")
    trials = campaign(app, "trials", event="Trial Started")
    engaged(app, sent(app, trials, ana, hours(-2)), "opened", hours(-1))
    # when Ana orders and starts a trial (with its revenue property)
    event(app, ana, T0)
    trial = event(app, ana, hours(0.5), "Trial Started", revenue=9.0)
    attribute(app)
    # then the trial is the conversion, with its revenue; the order belongs to no campaign
    assert [(c["event_id"], c["revenue"]) for c in conversions(app)] == [(trial, 9.0)]


def test_of_two_campaigns_the_last_touch_wins(app):
    ana = add_contact(app, "ana@example.com")
    spring, summer = campaign(app, "spring"), campaign(app, "summer")
    engaged(app, sent(app, spring, ana, hours(-50)), "clicked", hours(-48))
    later = sent(app, summer, ana, hours(-6))
    engaged(app, later, "clicked", hours(-5))
    event(app, ana, T0)
    attribute(app)
    assert [(c["campaign_id"], c["delivery_id"]) for c in conversions(app)] == [(summer, later)]


def test_a_delivery_alone_is_a_touch_and_a_holdout_skip_is_not(app):
    # given an SMS sent to Ana twelve hours before her order, and Bo held out of the same campaign
    ana, bo = add_contact(app, "ana@example.com"), add_contact(app, "bo@example.com")
    flash = campaign(app, "flash")
    sms = sent(app, flash, ana, hours(-12), channel="sms")
    sent(app, flash, bo, hours(-12), channel="sms", status="skipped")
    event(app, ana, T0)
    event(app, bo, T0)
    attribute(app)
    # then Ana's order is the SMS's conversion; Bo's is nobody's
    assert [(c["contact_id"], c["delivery_id"], c["channel"]) for c in conversions(app)] == [(ana, sms, "sms")]


def test_a_late_event_is_credited_on_the_next_run(app):
    # given a clicked email and an attribution run that found nothing
    ana = add_contact(app, "ana@example.com")
    delivery = sent(app, campaign(app, "spring"), ana, hours(-30))
    engaged(app, delivery, "clicked", hours(-24))
    assert attribute(app)["credited"] == 0
    # when an order of yesterday is imported a day late (an older time, a newer id)
    late = event(app, ana, hours(-2), revenue=20)
    result = attribute(app)
    # then the next run credits it to the click
    assert result["credited"] == 1
    assert [(c["event_id"], c["delivery_id"], c["occurred_at"]) for c in conversions(app)] == [
        (late, delivery, hours(-2))]


def test_running_twice_credits_once(app):
    # given an order credited by a run
    ana = add_contact(app, "ana@example.com")
    engaged(app, sent(app, campaign(app, "spring"), ana, hours(-3)), "clicked", hours(-2))
    event(app, ana, T0, revenue=30)
    assert attribute(app)["credited"] == 1
    # when the pass runs again, and again after being rewound to examine every event
    again = attribute(app)
    with app.store.write() as conn:
        AttributionService.rewind(conn)
    rewound = attribute(app)
    # then nothing more is credited: one conversion of the order
    assert again == {"examined": 0, "credited": 0, "revenue": 0, "no_rate": 0, "event_mark": again["event_mark"],
                     "more": False}
    assert rewound["credited"] == 0
    assert len(conversions(app)) == 1


def test_an_event_committed_after_a_higher_id_is_not_missed(app):
    # PostgreSQL hands out ids when rows are inserted, not when they commit (SQLite has one writer at a time)
    if app.store.dialect != "postgresql":
        pytest.skip("only PostgreSQL commits ids out of order")
    # given Ana and Bo who clicked, and Ana's order inserted by a transaction that stays open
    ana, bo = add_contact(app, "ana@example.com"), add_contact(app, "bo@example.com")
    spring = campaign(app, "spring")
    for contact in (ana, bo):
        engaged(app, sent(app, spring, contact, hours(-3)), "clicked", hours(-2))
    with app.store.engine.connect() as slow:
        transaction = slow.begin()
        app.events.ingest(slow, [EventInput("Order Completed", "slow-1", T0, T0, {}, ana)])
        # when Bo's later order commits and a pass runs, and only then Ana's transaction commits
        bo_order = event(app, bo, T0)
        first = attribute(app)
        transaction.commit()
    # and any later event arrives (a pass looks again below its mark only when there is something new)
    event(app, bo, hours(1), "Product Viewed")
    attribute(app)
    # then the first pass credited Bo's order (its mark is past Ana's id), and the next one Ana's as well
    assert first["credited"] == 1 and first["event_mark"] == bo_order
    assert sorted(c["contact_id"] for c in conversions(app)) == sorted([ana, bo])


def test_a_limit_leaves_the_rest_for_the_next_run(app):
    ana = add_contact(app, "ana@example.com")
    engaged(app, sent(app, campaign(app, "spring"), ana, hours(-3)), "clicked", hours(-2))
    first, second = event(app, ana, T0), event(app, ana, hours(1))
    partial = attribute(app, limit=1)
    assert (partial["examined"], partial["more"], partial["event_mark"]) == (1, True, first)
    rest = attribute(app, limit=1)
    assert (rest["examined"], rest["more"]) == (1, False)
    assert [c["event_id"] for c in conversions(app)] == [first, second]


def test_revenue_in_other_currencies_is_converted_or_counted_without_revenue(app):
    # given a workspace in USD with a rate for EUR only, and an email clicked by Ana
    with app.store.write() as conn:
        currency.set_currency(conn, {"currency": "USD", "rates": {"EUR": 1.08}})
    ana = add_contact(app, "ana@example.com")
    engaged(app, sent(app, campaign(app, "spring"), ana, hours(-3)), "clicked", hours(-2))
    # when she orders in EUR, in GBP, and without a currency
    euros = event(app, ana, T0, revenue=100, currency="eur")
    pounds = event(app, ana, hours(1), revenue=100, currency="GBP")
    dollars = event(app, ana, hours(2), revenue=100)
    result = attribute(app)
    # then all three are conversions: EUR converted, GBP without revenue and its reason, USD as it is
    rows = {c["event_id"]: (c["revenue"], c["reason"]) for c in conversions(app)}
    assert rows[euros][0] == 108.0 and rows[euros][1] is None
    assert rows[pounds] == (None, "no_rate:GBP")
    assert rows[dollars] == (100.0, None)
    assert (result["credited"], result["no_rate"], result["revenue"]) == (3, 1, 208.0)


def test_a_contact_without_touches_converts_nothing(app):
    # given a campaign that touched Bo, and Ana who was never sent anything
    ana, bo = add_contact(app, "ana@example.com"), add_contact(app, "bo@example.com")
    engaged(app, sent(app, campaign(app, "spring"), bo, hours(-3)), "clicked", hours(-2))
    event(app, ana, T0, revenue=50)
    # when attributed; then Ana's order is examined and credited to nothing
    assert attribute(app)["examined"] == 1
    assert conversions(app) == []


def test_a_run_with_nothing_new_writes_nothing(app):
    # given no events at all, then an event that is no campaign's goal
    ana = add_contact(app, "ana@example.com")
    campaign(app, "spring")
    assert attribute(app)["event_mark"] == 0
    viewed = event(app, ana, T0, "Product Viewed")
    # when the pass runs twice; then the mark moves past the event once, and nothing is credited
    assert attribute(app) == {"examined": 0, "credited": 0, "revenue": 0, "no_rate": 0, "event_mark": viewed,
                              "more": False}
    with app.store.read() as conn:
        assert AttributionService.mark(conn) == viewed
    assert attribute(app)["event_mark"] == viewed and conversions(app) == []


def test_an_erased_contacts_events_and_touches_are_gone(app):
    # given Ana's clicked email and her order, and Ana erased before the pass runs
    ana = add_contact(app, "ana@example.com")
    engaged(app, sent(app, campaign(app, "spring"), ana, hours(-3)), "clicked", hours(-2))
    event(app, ana, T0)
    with app.store.write() as conn:
        app.gdpr.erase(conn, ana)
    # when attributed; then there is nothing to credit
    assert attribute(app)["credited"] == 0 and conversions(app) == []


def test_the_cli_runs_the_pass_and_rewinds(app):
    # given a clicked email and an order
    cli = cli_main.app
    ana = add_contact(app, "ana@example.com")
    engaged(app, sent(app, campaign(app, "spring"), ana, hours(-3)), "clicked", hours(-2))
    order = event(app, ana, T0, revenue=12)
    # when it runs, then runs again from the start
    url = app.settings.database_url
    first = CliRunner().invoke(cli, ["--database-url", url, "attribution", "run", "--json"])
    rewound = CliRunner().invoke(cli, ["--database-url", url, "attribution", "run", "--rewind", "--json"])
    text = CliRunner().invoke(cli, ["--database-url", url, "attribution", "run"])
    # then the order is credited once, and the rewound run examines it again without crediting it
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {"examined": 1, "credited": 1, "revenue": 12.0, "no_rate": 0,
                                        "event_mark": order, "more": False}
    assert (json.loads(rewound.stdout)["examined"], json.loads(rewound.stdout)["credited"]) == (0, 0)
    assert text.exit_code == 0 and "credited" in text.stdout
    assert len(conversions(app)) == 1

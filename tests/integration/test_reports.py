"""Response reports on both stores: a campaign's figures, its lift against the holdout, breakdowns, the ranking.

The ledger rows, engagements and orders are written directly (a small world with known answers), the
engagements through tracking.engagements.record as every writer does.
"""

# ruff: noqa: F811 - pytest fixtures imported from test_api_support are parameters here

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import typer
from delivery_world import add_contact, make_campaign
from sqlalchemy import insert, select, update
from test_api_support import admin, admin_key, client  # noqa: F401 - fixtures
from typer.testing import CliRunner

from clarion.domain.events import EventInput
from clarion.services.currency import set_currency
from clarion.services.reports import campaign_report, messages_ranking
from clarion.services.reports.intervals import difference
from clarion.store.schema import contacts, events
from clarion.store.schema_delivery import campaigns, deliveries
from clarion.store.schema_scores import contact_scores
from clarion.tracking.engagements import Touch, record, touch_of

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # a Monday, 14:00 UTC


# -- writing the world ---------------------------------------------------------------------------------
def delivery(conn, campaign_id: int, contact_id: int | None, status: str = "sent", reason: str | None = None,
             at: datetime = T0, channel: str = "email") -> int:
    """A ledger row as a worker leaves it: sent at ``at``, or skipped/failed then."""
    return conn.execute(insert(deliveries).values(
        campaign_id=campaign_id, step="main", contact_id=contact_id, channel=channel, status=status, reason=reason,
        due_at=at, attempts=1, marketing=True, created_at=at - timedelta(minutes=5),
        sent_at=at if status == "sent" else None, finished_at=at)).inserted_primary_key[0]


def engage(conn, delivery_id: int, action: str, minutes: float, **details) -> None:
    assert record(conn, touch_of(conn, delivery_id), action, T0 + timedelta(minutes=minutes), **details)


def order(app, conn, contact_id: int, days: float, revenue: float, key: str, **properties) -> int:
    """An ``Order Completed`` event ``days`` after T0; its id."""
    at = T0 + timedelta(days=days)
    app.events.ingest(conn, [EventInput("Order Completed", key, at, at, {"revenue": revenue, "currency": "USD",
                                                                          **properties}, contact_id)])
    return conn.execute(select(events.c.id).where(events.c.message_id == key)).scalar_one()


def converted(app, conn, delivery_id: int, contact_id: int, days: float, revenue: float, key: str) -> None:
    """An order, credited to the delivery as the attribution pass does: once, with its revenue."""
    event_id = order(app, conn, contact_id, days, revenue, key)
    engage(conn, delivery_id, "converted", days * 24 * 60, event_id=event_id, revenue=revenue)


def finished(app, name: str) -> int:
    """The campaign as it stands after its send: completed, started an hour before T0."""
    with app.store.write() as conn:
        campaign_id = conn.execute(select(campaigns.c.id).where(campaigns.c.name == name)).scalar_one()
        conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(
            status="completed", started_at=T0 - timedelta(hours=1), finished_at=T0 + timedelta(hours=1)))
    return campaign_id


ZONES = ["America/New_York"] * 4 + ["Asia/Kathmandu", "Pacific/Auckland"] + ["UTC"] * 5  # c1..c11


@pytest.fixture
def spring(app) -> dict[str, int]:
    """Ten messages sent at T0 (c1-c10), one failed for a bad address, four contacts held out (h1-h4).

    c1: two human pixel opens, a machine (proxy) open, the same link clicked twice, two orders credited (40, 20)
    c2: a human open, a click, an order (30);   c3: a scanner's open and click, an order (10)
    c4: a human open, then unsubscribed;        c5: bounced;   c6: complained
    h1 orders within the 5-day window (25); h2 only after it; c4 ordered the day before the send.
    """
    ids = {f"c{i}": add_contact(app, f"c{i}@example.com", timezone=ZONES[i - 1],
                                locale="en-US" if i <= 5 else "de-DE") for i in range(1, 12)}
    ids |= {f"h{i}": add_contact(app, f"h{i}@example.com") for i in range(1, 5)}
    make_campaign(app, "spring", start=False)
    campaign_id = finished(app, "spring")
    with app.store.write() as conn:
        d = {key: delivery(conn, campaign_id, ids[key]) for key in (f"c{i}" for i in range(1, 11))}
        delivery(conn, campaign_id, ids["c11"], "failed", "bad_address")
        for key in ("h1", "h2", "h3", "h4"):
            delivery(conn, campaign_id, ids[key], "skipped", "holdout")
        engage(conn, d["c1"], "opened", 1, machine=True, reason="apple_mpp")
        engage(conn, d["c1"], "opened", 30, reason="pixel")
        engage(conn, d["c1"], "opened", 90, reason="pixel")
        engage(conn, d["c1"], "clicked", 31, link=0)
        engage(conn, d["c1"], "clicked", 95, link=0)  # the same link again: a total, not a unique
        engage(conn, d["c2"], "opened", 10, reason="pixel")
        engage(conn, d["c2"], "clicked", 11, link=1)
        engage(conn, d["c3"], "opened", 0.05, machine=True, reason="scanner")
        engage(conn, d["c3"], "clicked", 0.05, machine=True, reason="scanner", link=0)
        engage(conn, d["c4"], "opened", 60, reason="pixel")
        engage(conn, d["c4"], "unsubscribed", 61)
        engage(conn, d["c5"], "bounced", 2)
        engage(conn, d["c6"], "complained", 300)
        converted(app, conn, d["c1"], ids["c1"], 1, 40.0, "o-c1-a")
        converted(app, conn, d["c1"], ids["c1"], 2, 20.0, "o-c1-b")
        converted(app, conn, d["c2"], ids["c2"], 0.5, 30.0, "o-c2")
        converted(app, conn, d["c3"], ids["c3"], 4, 10.0, "o-c3")
        order(app, conn, ids["h1"], 3, 25.0, "o-h1")
        order(app, conn, ids["h2"], 6, 99.0, "o-h2")  # after the window
        order(app, conn, ids["c4"], -1, 50.0, "o-c4")  # before the send
        conn.execute(insert(contact_scores), [{"contact_id": ids["c1"], "rfm_segment": "champions"},
                                              {"contact_id": ids["c2"], "rfm_segment": "champions"},
                                              {"contact_id": ids["c3"], "rfm_segment": "at_risk"}])
    return {**ids, "campaign": campaign_id, **{f"d_{key}": value for key, value in d.items()}}


def report(app, name: str = "spring", **options):
    with app.store.read() as conn:
        return campaign_report(conn, name, default_timezone=app.settings.default_timezone, **options)


# -- the campaign report ---------------------------------------------------------------------------------
def test_the_campaign_figures_count_humans_and_machines_apart(app, spring):
    # when the campaign's report is read
    figures = report(app)
    # then each figure is exactly what the world holds
    assert figures["sent"] == 10
    assert figures["human"] == {"opens": {"unique": 3, "total": 4}, "clicks": {"unique": 2, "total": 3}}
    assert figures["machine"] == {"opens": {"unique": 2, "total": 2}, "clicks": {"unique": 1, "total": 1}}
    assert figures["ctr"] == pytest.approx(0.2) and figures["ctor"] == pytest.approx(2 / 3)
    assert figures["conversions"] == 4 and figures["converting_messages"] == 3
    assert figures["conversion_rate"] == pytest.approx(0.3)
    assert figures["revenue"] == pytest.approx(100.0) and figures["revenue_per_message"] == pytest.approx(10.0)
    assert (figures["unsubscribes"], figures["complaints"], figures["bounces"]) == (1, 1, 2)
    assert figures["campaign"]["template"] == "tpl-spring" and figures["campaign"]["segment"] == "seg-spring"


def test_delivered_is_unknown_until_a_receipt_arrives(app, spring):
    # given no delivery receipt: then delivered is None with the reason, never 0
    before = report(app)
    assert before["delivered"] is None and "receipt" in before["delivered_note"]
    # when a provider's receipt is recorded
    with app.store.write() as conn:
        engage(conn, spring["d_c2"], "delivered", 1, reason="receipt")
    # then it is counted
    assert report(app)["delivered"] == 1


def test_lift_compares_the_goal_rates_of_the_sent_and_the_held_out(app, spring):
    # when the report is read
    lift = report(app)["lift"]
    # then the treated rate is 3 of 10, the holdout's 1 of 4 (h2's order came after the window)
    assert (lift["treated"]["converters"], lift["treated"]["contacts"]) == (3, 10)
    assert (lift["holdout"]["converters"], lift["holdout"]["contacts"]) == (1, 4)
    assert lift["absolute"] == pytest.approx(0.05) and lift["relative"] == pytest.approx(0.2)
    expected = difference(3, 10, 1, 4)
    assert lift["ci95"] == pytest.approx([expected.lower, expected.upper])
    assert lift["ci95"][0] < 0 < lift["ci95"][1]  # ten and four people prove nothing
    # and the incremental revenue is (100/10 - 25/4) per contact times 10 sent
    assert lift["incremental_revenue"] == pytest.approx(37.5)
    assert lift["goal"] == "Order Completed" and lift["window_days"] == 5


def test_the_goal_filter_reads_the_event_properties(app, spring):
    # given the campaign's goal is an order of the spring collection only
    with app.store.write() as conn:
        conn.execute(update(campaigns).where(campaigns.c.id == spring["campaign"]).values(
            settings={"goal": {"where": {"collection": "spring"}}}))
        order(app, conn, spring["c5"], 1, 15.0, "o-c5", collection="spring")
        order(app, conn, spring["h3"], 1, 12.0, "o-h3", collection="summer")
    # when the report is read: then only c5's order counts, none of the holdout's
    lift = report(app)["lift"]
    assert lift["treated"]["converters"] == 1 and lift["holdout"]["converters"] == 0
    assert lift["relative"] is None and "holdout conversions" in lift["reason"]


def test_lift_revenue_is_counted_in_the_workspace_currency(app, spring):
    # given a rate for EUR (1 EUR = 2 USD) and none for GBP, and an order in each within the window
    with app.store.write() as conn:
        set_currency(conn, {"currency": "USD", "rates": {"EUR": 2.0}})
        order(app, conn, spring["c5"], 1, 10.0, "o-c5-eur", currency="EUR")
        order(app, conn, spring["c6"], 1, 7.0, "o-c6-gbp", currency="GBP")
    # when the report is read
    lift = report(app)["lift"]
    # then the EUR order adds 20 USD, the GBP one counts as a conversion without revenue, and says so
    assert lift["treated"]["converters"] == 5 and lift["treated"]["revenue"] == pytest.approx(120.0)
    assert lift["missing_rates"] == ["GBP"] and lift["currency"] == "USD"
    assert lift["incremental_revenue"] == pytest.approx((12.0 - 6.25) * 10)


def test_without_a_holdout_lift_is_null_with_a_reason(app):
    # given a campaign sent to one contact, none held out
    ana = add_contact(app, "ana@example.com")
    make_campaign(app, "solo", start=False)
    campaign_id = finished(app, "solo")
    with app.store.write() as conn:
        delivery(conn, campaign_id, ana)
    # then its lift is None, and says why
    lift = report(app, "solo")["lift"]
    assert lift["absolute"] is None and lift["ci95"] is None and "no holdout" in lift["reason"]


def test_breakdowns_by_local_hour_weekday_locale_rfm_and_the_constant_ones(app, spring):
    # when the report is broken down
    parts = report(app, by=("hour", "weekday", "locale", "rfm", "channel", "template", "segment"))["breakdowns"]
    # then the local hour at send time is each recipient's: 09:00 New York, 19:45 Kathmandu, 03:00 Auckland
    hours = {row["key"]: (row["sent"], row["opens"], row["clicks"], row["conversions"]) for row in parts["hour"]}
    assert hours == {3: (1, 0, 0, 0), 9: (4, 3, 2, 4), 14: (4, 0, 0, 0), 19: (1, 0, 0, 0)}
    assert [row["key"] for row in parts["hour"]] == [3, 9, 14, 19]
    # and Auckland's Tuesday morning is a Tuesday
    assert {row["key"]: row["sent"] for row in parts["weekday"]} == {"monday": 9, "tuesday": 1}
    locales = {row["key"]: row for row in parts["locale"]}
    assert locales["en-US"]["sent"] == 5 and locales["en-US"]["revenue"] == pytest.approx(100.0)
    assert locales["de-DE"]["sent"] == 5 and locales["de-DE"]["opens"] == 0
    rfm = {row["key"]: (row["sent"], row["converting_messages"]) for row in parts["rfm"]}
    assert rfm == {"champions": (2, 2), "at_risk": (1, 1), None: (7, 0)}
    assert [(row["key"], row["sent"]) for row in parts["channel"]] == [("email", 10)]
    assert parts["template"][0]["key"] == "tpl-spring" and parts["template"][0]["ctr"] == pytest.approx(0.2)
    assert parts["segment"][0]["key"] == "seg-spring"


def test_machine_figures_join_the_breakdowns_when_asked(app, spring):
    human = report(app, by=("channel",))["breakdowns"]["channel"][0]
    both = report(app, by=("channel",), machine=True)["breakdowns"]["channel"][0]
    assert "machine_opens" not in human
    assert (both["machine_opens"], both["machine_clicks"], both["opens"]) == (2, 1, 3)


def test_an_unknown_breakdown_is_refused_by_name(app, spring):
    from clarion.domain.errors import FieldError

    with pytest.raises(FieldError, match="unknown breakdown 'colour'"):
        report(app, by=("colour",))


# -- which messages work ----------------------------------------------------------------------------------
def sent_many(app, name: str, count: int, clicks: int) -> None:
    """Campaign ``name`` (template ``tpl-<name>``) sent to ``count`` new contacts, ``clicks`` of whom clicked."""
    make_campaign(app, name, start=False)
    campaign_id = finished(app, name)
    with app.store.write() as conn:
        people = conn.execute(insert(contacts).returning(contacts.c.id), [
            {"email": f"{name}-{i}@example.com", "created_at": T0, "updated_at": T0} for i in range(count)]).scalars()
        conn.execute(insert(deliveries), [
            {"campaign_id": campaign_id, "step": "main", "contact_id": contact_id, "channel": "email",
             "status": "sent", "due_at": T0, "attempts": 1, "marketing": True, "created_at": T0, "sent_at": T0,
             "finished_at": T0} for contact_id in people.all()])
        d = deliveries.c
        clicked = conn.execute(select(d.id, d.contact_id, d.campaign_id, d.step, d.channel, d.sent_at)
                               .where(d.campaign_id == campaign_id).order_by(d.id).limit(clicks))
        for row in clicked.all():
            record(conn, Touch(*row), "clicked", T0 + timedelta(minutes=30), link=0)


def test_the_ranking_orders_by_the_wilson_lower_bound_not_the_raw_rate(app):
    # given a template sent to 12 people with 3 clicks (25%) and one sent to 40,000 with 3,200 (8%)
    sent_many(app, "small", 12, 3)
    sent_many(app, "big", 40_000, 3_200)
    # when the messages are ranked by clicks
    with app.store.read() as conn:
        rows = messages_ranking(conn, metric="click", by="template")
        bound_only = messages_ranking(conn, metric="click", by="template", min_sent=1)
    # then the big one leads, and each row says what it rests on
    assert [row["template"] for row in rows] == ["tpl-big", "tpl-small"]
    big, small = rows
    assert (big["n"], big["successes"], big["rate"], big["ranked"]) == (40_000, 3_200, 0.08, True)
    assert 0.077 < big["lower"] < 0.08 < big["upper"] < 0.083
    assert (small["n"], small["successes"], small["rate"], small["ranked"]) == (12, 3, 0.25, False)
    # (the 95% bound alone would not keep 3 of 12 below: its lower bound is 8.9%, above 7.7%; min_sent does)
    assert small["lower"] > big["lower"] and bound_only[0]["template"] == "tpl-small"


def test_the_ranking_by_campaign_counts_unique_human_opens(app, spring):
    with app.store.read() as conn:
        rows = messages_ranking(conn, metric="open", by="campaign", min_sent=1)
        with_machines = messages_ranking(conn, metric="open", by="campaign", min_sent=1, machine=True)
    assert [(row["campaign"], row["n"], row["successes"]) for row in rows] == [("spring", 10, 3)]
    assert with_machines[0]["successes"] == 4  # c3's scanner open too (c1 had a human one already)


# -- the command line and the API -----------------------------------------------------------------------
def cli() -> typer.Typer:
    from clarion.cli.main import app as main_app

    return main_app


def run_cli(app, *args: str):
    return CliRunner().invoke(cli(), ["--database-url", app.settings.database_url, *args])


def test_the_cli_prints_the_report_as_json_and_as_tables(app, spring):
    # when the report is asked for as JSON, with a breakdown
    result = run_cli(app, "reports", "campaign", "spring", "--json", "--by", "hour,rfm")
    # then it is the service's report
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["sent"] == 10 and data["human"]["clicks"] == {"unique": 2, "total": 3}
    assert data["lift"]["incremental_revenue"] == pytest.approx(37.5) and set(data["breakdowns"]) == {"hour", "rfm"}
    # and as tables for people
    shown = run_cli(app, "reports", "campaign", "spring", "--by", "locale", "--machine")
    assert shown.exit_code == 0, shown.output
    assert "CTOR" in shown.stdout and "66.67%" in shown.stdout and "By locale" in shown.stdout
    ranked = run_cli(app, "reports", "messages", "--metric", "open", "--by", "campaign", "--min-sent", "5", "--json")
    assert ranked.exit_code == 0, ranked.output
    assert json.loads(ranked.stdout)[0]["campaign"] == "spring"


def test_the_cli_names_a_missing_campaign_in_one_line(app):
    result = run_cli(app, "reports", "campaign", "nope")
    assert result.exit_code == 1 and result.stderr.strip() == "error: campaign 'nope' not found"


@pytest.fixture
def api(app, admin):
    return admin


def test_the_api_serves_the_report_and_the_ranking(app, spring, api):
    response = api.get("/api/reports/campaigns/spring", params=[("by", "weekday"), ("by", "channel")])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["conversions"] == 4 and body["lift"]["absolute"] == pytest.approx(0.05)
    assert [row["key"] for row in body["breakdowns"]["weekday"]] == ["monday", "tuesday"]
    ranking = api.get("/api/reports/messages", params={"metric": "conversion", "by": "campaign", "min_sent": 1})
    assert ranking.status_code == 200 and ranking.json()["items"][0]["successes"] == 3
    assert api.get("/api/reports/campaigns/nope").status_code == 404
    assert api.get("/api/reports/campaigns/spring", params={"by": "colour"}).status_code == 422


def test_the_api_wants_an_admin_key(app, client, spring):
    assert client.get("/api/reports/messages").status_code == 401

"""The demo loads (a slice of) CDNOW into a fresh SQLite database, summarises it, sends two campaigns, and
reports what its simulated recipients did with them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from clarion.demo import main, run
from clarion.demo_campaign import send_time
from clarion.demo_response import PEOPLE, SCANNERS, Customer, Received, plan
from clarion.store.schema import consents


def test_demo_loads_a_slice_with_profiles_consent_and_zones(cdnow_dir, tmp_path):
    # given the first 12,000 CDNOW purchase rows (some 230 messages sent: enough for every kind of response)
    db = tmp_path / "demo.db"
    # when the demo runs
    summary = run(cdnow_dir / "CDNOW_master.txt", db, limit=12000)
    # then every row is an order, every customer a contact with consent, spread over time zones
    totals = summary["totals"]
    assert totals["orders"] == 12000 and summary["events_import"].rejected == 0
    assert totals["contacts"] == summary["contacts_import"].imported == summary["consented"]
    assert len(summary["top"]) == 10 and summary["top"][0]["revenue_total"] >= summary["top"][-1]["revenue_total"]
    assert len(summary["zones"]) >= 8
    # and every customer is in one RFM segment, the models are fitted and the example segment is explained
    assert sum(row["contacts"] for row in summary["rfm"]) == totals["contacts"]
    assert summary["predictions"].customers == totals["contacts"] and len(summary["top_value"]) == 10
    example = summary["segment"]
    assert example["count"] > 0 and example["explained"]["holds"] is True
    assert example["text"].startswith('country in ("US", "CA") and orders.count >= 2')
    # and the "we miss you" campaign went through the demo's SMTP server, signed, with quiet hours holding some
    # back and the global holdout skipping some
    campaign = summary["campaign"]
    counts = campaign["progress"]["counts"]
    at_risk = sum(row["contacts"] for row in summary["rfm"] if row["segment"] in ("at_risk", "cant_lose"))
    assert campaign["progress"]["total"] == at_risk > 0
    assert campaign["received"] == sum(p["counts"]["sent"] for p in campaign["campaigns"].values()) > counts["sent"]
    assert counts["sent"] > 0 and campaign["dkim_verified"]
    assert counts["deferred"] > 0 and counts["skipped"] > 0
    assert counts["sent"] + counts["deferred"] + counts["skipped"] == at_risk
    assert {(r["status"], r["reason"]) for r in campaign["progress"]["reasons"]} >= {("skipped", "holdout")}
    assert campaign["sample_headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert_responses(campaign["response"])
    # and running it again starts from a fresh database
    run(cdnow_dir / "CDNOW_master.txt", db, limit=100)
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(consents)).scalar_one() < totals["contacts"]
    engine.dispose()


def test_demo_command_prints_a_summary(cdnow_dir, tmp_path, capsys):
    main(["--cdnow-dir", str(cdnow_dir), "--db", str(tmp_path / "d.db"), "--limit", "300"])
    out = capsys.readouterr().out
    assert "Top 10 customers by revenue" in out and "Contacts per time zone" in out
    assert "RFM segments" in out and "Example segment" in out and "is a member" in out
    assert "We miss you" in out and "Held back by quiet hours" in out
    assert "Campaign report" in out and "Which messages work" in out and "picked-for-you" in out


def assert_responses(response: dict) -> None:
    """What the simulated recipients did over HTTP is what the reports count, people and machines apart."""
    assert response["requests"] > 0 and set(response["statuses"]) <= {200, 302}  # no request was refused
    reports, expected = response["reports"], response["expected"]
    assert [r["campaign"]["template"] for r in reports] == ["we-miss-you", "picked-for-you"]

    def total(pick) -> int:
        return sum(pick(report) for report in reports)

    assert total(lambda r: r["human"]["opens"]["unique"]) == expected["human opens"] > 0
    assert total(lambda r: r["human"]["clicks"]["unique"]) == expected["human clicks"] > 0
    assert total(lambda r: r["machine"]["opens"]["unique"]) == expected["machine opens"] > 0
    # (each recipient draws from its own seeded generator, so these counts are the same on every run; only
    # quiet hours, which hold back Denver in winter and not in summer, can add recipients)
    assert total(lambda r: r["machine"]["clicks"]["unique"]) == expected["machine clicks"] > 0
    for report in reports:
        for who in ("human", "machine"):
            for action in ("opens", "clicks"):
                assert report[who][action]["unique"] <= report[who][action]["total"]
        assert report["human"]["clicks"]["unique"] <= report["human"]["opens"]["unique"]
        lift = report["lift"]
        assert lift["holdout"]["contacts"] > 0 and lift["window_days"] == 5
        assert report["conversions"] <= response["orders"]["after_click"] + response["orders"]["anyway"]
        assert (report["revenue"] > 0) == (report["conversions"] > 0)
    # every order (after a click, or anyway) fell within its window: the lift sees each buyer
    assert total(lambda r: r["lift"]["treated"]["converters"]) == expected["buyers"]
    assert total(lambda r: r["lift"]["holdout"]["converters"]) == expected["holdout buyers"]
    # each clicker's order is credited (to the click), on top of those credited to a delivery or an open
    assert response["attribution"]["credited"] >= response["orders"]["after_click"]
    # and the ranking compares the two templates, by the lower bound of the click rate
    ranking = response["ranking"]
    assert sorted(row["template"] for row in ranking) == ["picked-for-you", "we-miss-you"]
    assert all(row["lower"] <= row["rate"] <= row["upper"] for row in ranking)
    ranked = [row["lower"] for row in ranking if row["ranked"]]
    assert ranked == sorted(ranked, reverse=True)


def test_the_send_time_is_a_weekday_afternoon_at_least_an_hour_ago():
    # given a few moments of a week (2026-12-07 is a Monday)
    for now, expected in ((datetime(2026, 12, 7, 23, 30, tzinfo=UTC), datetime(2026, 12, 7, 14, tzinfo=UTC)),
                          (datetime(2026, 12, 7, 14, 59, tzinfo=UTC), datetime(2026, 12, 4, 14, tzinfo=UTC)),
                          (datetime(2026, 12, 7, 15, 0, tzinfo=UTC), datetime(2026, 12, 7, 14, tzinfo=UTC)),
                          (datetime(2026, 12, 6, 12, 0, tzinfo=UTC), datetime(2026, 12, 4, 14, tzinfo=UTC)),
                          (datetime(2026, 12, 9, 9, 0, tzinfo=UTC), datetime(2026, 12, 8, 14, tzinfo=UTC))):
        # when the demo picks its send time
        at = send_time(now)
        # then it is the latest weekday 14:00 UTC an hour or more before, within the 5-day windows
        assert at == expected and timedelta(hours=1) <= now - at <= timedelta(days=3, hours=1)


def test_each_recipient_responds_by_its_own_seeded_draw():
    # given 2,000 messages of two templates, each with the pixel, two links and the hidden one, and a holdout
    messages = [Received(f"{template}.{n}@example.com", template.upper(), template, f"/o/{template}{n}",
                         [f"/c/{template}{n}a", f"/c/{template}{n}b"], [f"/c/{template}{n}h"])
                for n in range(1000) for template in ("we-miss-you", "picked-for-you")]
    people = {m.email: Customer(m.email.split("@")[0], 30.0) for m in messages}
    holdout = [Customer(f"held.{n}", 20.0) for n in range(300)]
    since = datetime(2026, 12, 7, 14, tzinfo=UTC)
    span = (since, since + timedelta(hours=9))
    # when the plan is drawn, again in another order, and for half of the recipients
    first = plan(messages, people, holdout, span, seed=1997)
    again = plan(list(reversed(messages)), people, holdout, span, seed=1997)
    half = plan(messages[::2], people, holdout, span, seed=1997)
    # then it is the same every time, and each recipient does the same whoever else got mail
    assert first == again
    by_pixel = {visits[0][1]: visits for visits in first.visits}
    assert all(by_pixel[visits[0][1]] == visits for visits in half.visits)
    # and the better template gets more clicks, people's requests carry browser user agents
    clicks = {template: sum(1 for visits in first.visits for method, path, agent in visits
                            if agent in PEOPLE and path.startswith(f"/c/{template}"))
              for template in ("we-miss-you", "picked-for-you")}
    assert clicks["picked-for-you"] > clicks["we-miss-you"] > 0
    # and a few messages meet a scanner, which fetches every link (the hidden one too) and is alone with them
    scanned = [visits for visits in first.visits if visits[0][2] in SCANNERS]
    assert 0 < len(scanned) < 40
    assert all(visits[-1][1].endswith("h") and all(agent in SCANNERS for *_, agent in visits) for visits in scanned)
    assert {agent for visits in first.visits for _, path, agent in visits if path.startswith("/o/")} >= {
        "Mozilla/5.0", *PEOPLE[:2]}  # Apple's privacy proxy, and people
    # and the orders: a clicker's when it arrives, the others at a time within the span
    assert first.after_click and all(order.at is None for order in first.after_click)
    assert first.anyway and all(since <= order.at <= span[1] for order in first.anyway)
    assert any(order.customer.startswith("held.") for order in first.anyway)


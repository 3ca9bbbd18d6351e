"""The demo loads (a slice of) CDNOW into a fresh SQLite database and summarises it."""

from __future__ import annotations

from sqlalchemy import func, select

from clarion.demo import main, run
from clarion.store.schema import consents


def test_demo_loads_a_slice_with_profiles_consent_and_zones(cdnow_dir, tmp_path):
    # given the first 2,000 CDNOW purchase rows
    db = tmp_path / "demo.db"
    # when the demo runs
    summary = run(cdnow_dir / "CDNOW_master.txt", db, limit=2000)
    # then every row is an order, every customer a contact with consent, spread over time zones
    totals = summary["totals"]
    assert totals["orders"] == 2000 and summary["events_import"].rejected == 0
    assert totals["contacts"] == summary["contacts_import"].imported == summary["consented"]
    assert len(summary["top"]) == 10 and summary["top"][0]["revenue_total"] >= summary["top"][-1]["revenue_total"]
    assert len(summary["zones"]) >= 8
    # and every customer is in one RFM segment, the models are fitted and the example segment is explained
    assert sum(row["contacts"] for row in summary["rfm"]) == totals["contacts"]
    assert summary["predictions"].customers == totals["contacts"] and len(summary["top_value"]) == 10
    example = summary["segment"]
    assert example["count"] > 0 and example["explained"]["holds"] is True
    assert example["text"].startswith('country in ("US", "CA") and orders.count >= 2')
    # and the "we miss you" campaign went through the demo's SMTP server, signed, with quiet hours holding some back
    campaign = summary["campaign"]
    counts = campaign["progress"]["counts"]
    at_risk = sum(row["contacts"] for row in summary["rfm"] if row["segment"] in ("at_risk", "cant_lose"))
    assert campaign["progress"]["total"] == at_risk > 0
    assert campaign["received"] == counts["sent"] > 0 and campaign["dkim_verified"]
    assert counts["deferred"] > 0 and counts["sent"] + counts["deferred"] == at_risk
    assert campaign["sample_headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
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

"""``clarion rfm`` and ``clarion predictions`` on the real CDNOW purchases, through Typer's test runner."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from clarion.cli.main import app as cli

runner = CliRunner()


def _run(url: str, *args: str):
    return runner.invoke(cli, ["--database-url", url, *args])


def test_rfm_and_predictions_on_cdnow(app, cdnow_dir, tmp_path):
    # given the CDNOW purchases imported
    url = app.settings.database_url
    imported = _run(url, "import", "events", str(cdnow_dir / "CDNOW_master.txt"), "--mapping", "cdnow", "--json",
                    "--reject-file", str(tmp_path / "r.csv"))
    assert imported.exit_code == 0, imported.output
    # when RFM is computed at the end of the data and the models are fitted
    computed = _run(url, "rfm", "compute", "--as-of", "1998-06-30", "--json")
    summary = _run(url, "rfm", "summary", "--json")
    fitted = _run(url, "predictions", "fit", "--as-of", "1998-06-30", "--json")
    shown = _run(url, "predictions", "show", "--json")
    top = _run(url, "predictions", "top", "--limit", "3", "--json")
    # then every customer is scored and in one named segment, and the fits and top customers are shown
    assert computed.exit_code == 0, computed.output
    assert json.loads(computed.stdout)["scored"] == 23_570
    segments = json.loads(summary.stdout)
    assert sum(row["contacts"] for row in segments) == 23_570 and len(segments) == 11
    assert json.loads(fitted.stdout)["customers"] == 23_570
    assert set(json.loads(shown.stdout)) == {"bgnbd", "gamma_gamma"}
    assert set(json.loads(shown.stdout)["bgnbd"]["params"]) == {"r", "alpha", "a", "b"}
    values = [row["lifetime_value"] for row in json.loads(top.stdout)]
    assert len(values) == 3 and values == sorted(values, reverse=True)


def test_bad_dates_and_too_little_data_are_one_line_errors(app):
    url = app.settings.database_url
    bad = _run(url, "rfm", "compute", "--as-of", "1998-13-01")
    empty = _run(url, "predictions", "fit")
    assert bad.exit_code == 1 and "is not a date" in bad.output and "Traceback" not in bad.output
    assert empty.exit_code == 1 and "customers with orders" in empty.output


def test_lead_scoring_from_a_file(app, tmp_path):
    # given a contact with an order and a rules file
    url = app.settings.database_url
    path = tmp_path / "cdnow.txt"
    path.write_text("customer_id date number_of_cds dollar_value\n 00001 19970101 1 11.77\n")
    assert _run(url, "import", "events", str(path), "--mapping", "cdnow", "--json",
                "--reject-file", str(tmp_path / "r.csv")).exit_code == 0
    rules = tmp_path / "leads.json"
    rules.write_text(json.dumps({"rules": [{"name": "orders", "event": "Order Completed", "points": 3},
                                           {"name": "one order", "rule": "orders.count = 1", "points": 1}]}))
    # when the rules are stored and scores computed
    stored = _run(url, "leads", "config", str(rules), "--json")
    scored = _run(url, "leads", "score", "--json")
    top = _run(url, "leads", "top", "--json")
    # then the contact has 3 + 1 points; a bad file is a one-line error naming the rule
    assert stored.exit_code == 0, stored.output
    assert json.loads(scored.stdout)["scored"] == 1 and json.loads(top.stdout)[0]["lead_score"] == 4
    rules.write_text(json.dumps({"rules": [{"name": "bad", "rule": "orders.cnt = 1", "points": 1}]}))
    bad = _run(url, "leads", "config", str(rules))
    assert bad.exit_code == 1 and "rules.0.rule" in bad.output and "unknown field" in bad.output

"""The ``clarion`` command line, through Typer's test runner, on both stores."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from clarion.cli.main import app as cli

runner = CliRunner()


def _run(url: str, *args: str):
    return runner.invoke(cli, ["--database-url", url, *args])


def test_main_commands_with_json(app, tmp_path):
    # given a migrated database (db upgrade is idempotent) and a small CDNOW-format file
    url = app.settings.database_url
    assert _run(url, "db", "upgrade", "--json").exit_code == 0
    path = tmp_path / "cdnow.txt"
    path.write_text("customer_id date number_of_cds dollar_value\n 00001 19970101 1 11.77\n"
                    " 00002 19970112 1 12.00\n 00002 19970112 5 77.00\n")
    # when the main commands run with --json
    imported = _run(url, "import", "events", str(path), "--mapping", "cdnow", "--json",
                    "--reject-file", str(tmp_path / "r.csv"))
    stats = _run(url, "stats", "--json")
    shown = _run(url, "contacts", "show", "--external-id", "2", "--json")
    listed = _run(url, "events", "list", "--name", "Order Completed", "--limit", "2", "--json")
    key = _run(url, "keys", "create", "ci", "--scope", "ingest", "--json")
    # then each prints one JSON document with the expected figures
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout)["imported"] == 3
    assert json.loads(stats.stdout) == {"contacts": 2, "events": 3, "orders": 3, "revenue": 100.77}
    assert json.loads(shown.stdout)["aggregates"]["order_count"] == 2
    assert json.loads(listed.stdout)["total"] == 3 and len(json.loads(listed.stdout)["events"]) == 2
    secret = json.loads(key.stdout)["secret"]
    keys = json.loads(_run(url, "keys", "list", "--json").stdout)
    assert secret.startswith("clk_") and "secret" not in keys[0]
    assert _run(url, "keys", "revoke", str(keys[0]["id"]), "--json").exit_code == 0
    contact_id = json.loads(shown.stdout)["id"]
    exported = json.loads(_run(url, "contacts", "export", str(contact_id)).stdout)
    assert len(exported["events"]) == 2
    assert json.loads(_run(url, "contacts", "search", "2", "--json").stdout)["total"] >= 1
    assert _run(url, "aggregates", "rebuild", "--json").exit_code == 0
    assert _run(url, "contacts", "erase", str(contact_id), "--yes", "--json").exit_code == 0
    # and the human-readable output works too
    assert "revenue" in _run(url, "stats").stdout


def test_user_errors_print_one_line_without_traceback(app, tmp_path):
    # given a database and a command naming a contact that does not exist
    url = app.settings.database_url
    # when it runs
    result = _run(url, "contacts", "show", "424242")
    # then it exits non-zero with one line on stderr
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: contact 424242 not found"
    assert "Traceback" not in result.output
    # and a missing file is one line too
    missing = _run(url, "import", "contacts", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 1 and len(missing.stderr.strip().splitlines()) == 1


def test_missing_tables_hint_at_db_upgrade(tmp_path):
    # given an empty SQLite database; when a command needs the tables
    result = _run(f"sqlite:///{tmp_path / 'empty.db'}", "stats")
    # then the one-line error says to run `clarion db upgrade`
    assert result.exit_code == 1
    assert "clarion db upgrade" in result.stderr and len(result.stderr.strip().splitlines()) == 1

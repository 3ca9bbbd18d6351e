"""``clarion events export``: engagements as JSON Lines (the events webhook's items), filtered by time and by
human or machine, read in chunks, to standard output or a file, on both stores."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import typer
from delivery_world import Clock, ScriptedChannel, add_contact, make_campaign, run, worker
from sqlalchemy import select
from typer.testing import CliRunner

from clarion.cli import main as cli_main
from clarion.services.timeline import ITEM_KEYS, export_items
from clarion.store.schema_delivery import deliveries
from clarion.tracking.engagements import record, touch_of

SENT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # noon: outside the default quiet hours
EMAIL = {"default": {"email": {"subject": "Hi", "html": (
    '<p><a href="https://shop.example/sale">Sale</a> <a href="{{ links.unsubscribe }}">Unsubscribe</a></p>')}}}


def december(app) -> list[int]:
    """Two emails sent on 30 November; opens and clicks on 1 and 2 December, one of them a scanner's.
    The engagement ids, in the order written."""
    for n in range(2):
        add_contact(app, f"c{n}@example.com")
    make_campaign(app, "spring", template_document=EMAIL, clock=Clock(SENT))
    run(worker(app, ScriptedChannel(), clock=Clock(SENT)))
    with app.store.write() as conn:
        first, second = conn.execute(select(deliveries.c.id).order_by(deliveries.c.id)).scalars()
        for delivery, action, hours, details in (
                (first, "clicked", 13, {"link": 1, "machine": True, "reason": "too_fast"}),  # 1 Dec, 01:00
                (first, "opened", 22, {"reason": "pixel"}),  # 1 Dec, 10:00
                (second, "clicked", 40, {"link": 1}),  # 2 Dec, 04:00
                (second, "converted", 60, {"revenue": 12.5})):  # 3 Dec, 00:00
            assert record(conn, touch_of(conn, delivery), action, SENT + timedelta(hours=hours), **details)
    return [1, 2, 3, 4, 5, 6]


def cli_app() -> typer.Typer:
    return cli_main.app  # the real `clarion` command tree


def export(app, *args: str):
    return CliRunner().invoke(cli_app(), ["--database-url", app.settings.database_url, "events", "export", *args])


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_the_export_prints_json_lines_from_a_date_on(app):
    # given engagement from 30 November to 3 December
    december(app)
    # when exported from 1 December
    result = export(app, "--since", "2026-12-01")
    # then every engagement from then on is a line, in id order, with the stream's keys; the count on stderr
    assert result.exit_code == 0, result.output
    items = lines(result.stdout)
    assert [(i["id"], i["type"], i["machine"]) for i in items] == [
        (3, "Link Clicked", True), (4, "Email Opened", False), (5, "Link Clicked", False), (6, "Converted", False)]
    assert all(list(item) == list(ITEM_KEYS) for item in items)
    assert items[0]["url"].startswith("https://shop.example/sale?") and items[3]["revenue"] == 12.5
    assert "Exported 4 engagements." in result.stderr


def test_until_and_human_only_narrow_the_export_and_out_writes_a_file(app, tmp_path):
    december(app)
    out = tmp_path / "engagements.jsonl"
    # when exported for 1 December, people only, to a file
    result = export(app, "--since", "2026-12-01T00:00:00Z", "--until", "2026-12-02", "--human-only",
                    "--out", str(out), "--json")
    # then the file holds the human open of that day, and the command says so
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"exported": 1, "out": str(out)}
    assert [(i["id"], i["type"]) for i in lines(out.read_text())] == [(4, "Email Opened")]
    # and --machine (the default) keeps the scanner's click
    assert [i["id"] for i in lines(export(app, "--since", "2026-12-01", "--until", "2026-12-02").stdout)] == [3, 4]


def test_the_export_reads_in_chunks_and_misses_nothing(app):
    # given six engagements, when read two at a time, then all six come, in order, each once
    ids = december(app)
    since = SENT - timedelta(days=1)
    assert [item["id"] for item in export_items(app.store, since=since, chunk=2)] == ids
    assert [item["id"] for item in export_items(app.store, since=since, chunk=3)] == ids
    assert [item["id"] for item in export_items(app.store, since=since, human_only=True, chunk=1)] == [1, 2, 4, 5, 6]


def test_bad_options_are_refused_in_one_line(app):
    for args, said in ((("--since", "yesterday"), "--since"), (("--since", "2026-12-02", "--until", "2026-12-01"),
                                                                 "--until: must be after --since"),
                       (("--since", "2026-12-01", "--format", "csv"), "jsonl is the only export format")):
        result = export(app, *args)
        assert result.exit_code == 1 and said in result.stderr and "Traceback" not in result.output

"""A large contacts file is parsed in a worker process; the outcome is the same as in-process.

Every test runs on SQLite and PostgreSQL (the ``app`` fixture).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
from sqlalchemy import select

from clarion.services.imports.contacts import MIN_BATCHES_FOR_PROCESS, ContactParser, SeenKeys, parse_pool
from clarion.services.imports.importer import Importer, ImportOptions
from clarion.services.imports.mappings import ColumnPlan
from clarion.services.imports.source import SourceRow
from clarion.store.schema import contacts


def _contacts_file(path: Path, rows: int) -> Path:
    lines = ["external_id,email,phone,country,shoe_size"]
    for i in range(rows):
        lines.append(f"x{i},Person.{i}@Example.COM,+3519123{i:05d},PT,{40 + i % 5}")
    lines.append("x3,someone.else@example.com,,PT,41")  # external id repeated in a later batch
    lines.append("x999,bad@,,PT,42")  # invalid email
    path.write_text("\n".join(lines) + "\n")
    return path


def test_worker_process_parses_like_the_importer_itself(app, tmp_path):
    # given a file large enough (in batches of 5 rows) to be parsed in a worker process
    rows = MIN_BATCHES_FOR_PROCESS * 5 + 7
    path = _contacts_file(tmp_path / "people.csv", rows)
    rejects = tmp_path / "rejects.csv"
    # when it is imported
    result = Importer(app.settings, app.store, app.contacts).import_contacts(
        path, ImportOptions(batch_size=5, reject_file=rejects))
    # then the good rows are stored, normalised, and the bad ones rejected with their line and reason
    assert (result.rows_read, result.imported, result.rejected) == (rows + 2, rows, 2)
    assert result.unknown_columns == ["shoe_size"]
    with rejects.open(newline="") as handle:
        reasons = {int(row["line"]): row["reason"] for row in csv.DictReader(handle)}
    assert reasons[rows + 2].startswith("duplicate external_id 'x3'")
    assert reasons[rows + 3].startswith("email:")
    with app.store.read() as conn:
        stored = conn.execute(select(contacts.c.email, contacts.c.phone)
                              .where(contacts.c.external_id == "x7")).one()
    assert stored == ("person.7@example.com", "+351912300007")


def test_process_and_thread_parsing_give_identical_results(tmp_path):
    # given the same rows parsed here and in a worker process
    header = ["external_id", "email", "phone", "country", "birthday"]
    rows = [SourceRow(i + 2, "raw", [f"c{i}", f"a{i}@x.io", "+12125551234", "US", "1990-02-28"]) for i in range(40)]
    rows.append(SourceRow(50, "raw", ["c99", "not-an-email", "", "US", ""]))
    rows.append(SourceRow(51, "raw", error="expected 5 columns, found 2"))

    def parser() -> ContactParser:
        return ContactParser(header, "csv", None, ColumnPlan("contacts"), "US", False)

    with parse_pool(parser(), use_process=False) as here, parse_pool(parser(), use_process=True) as there:
        local, remote = here.parse(rows).result(), there.parse(rows).result()
    # then items and rejects are equal
    assert [(i.row.line, i.ids, i.patch) for i in local.items] == [(i.row.line, i.ids, i.patch) for i in remote.items]
    assert local.rejects == remote.rejects and len(local.rejects) == 2


def test_seen_keys_report_the_first_repeated_key_of_each_row():
    # given keys already read in an earlier batch
    seen = SeenKeys()
    assert seen.first_repeat([[1, 2], [3]]) == [None, None]
    # when a batch repeats an earlier key, a key of its own earlier row, or nothing
    repeats = seen.first_repeat([[9, 3], [4, 5], [6, 5], [-2**63, 2**63 - 1]])
    # then each row names its first repeated key; rows with a repeat add none of their keys
    assert repeats == [1, None, 1, None]
    assert len(seen) == 7 and seen.first_repeat([[9], [2**63 - 1]]) == [None, 0]


def test_worker_process_exits_when_the_import_is_killed(tmp_path):
    # given an import of a large file running in its own process, with its parsing worker started
    path = _contacts_file(tmp_path / "many.csv", 30_000)
    env = {**os.environ, "CLARION_DATABASE_URL": f"sqlite:///{tmp_path / 'kill.db'}"}
    subprocess.run([sys.executable, "-m", "clarion", "db", "upgrade"], env=env, check=True, capture_output=True)
    importer = psutil.Popen([sys.executable, "-m", "clarion", "import", "contacts", str(path), "--json",
                             "--batch-size", "100", "--reject-file", str(tmp_path / "r.csv")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = _wait_for(lambda: [p for p in importer.children(recursive=True) if "spawn_main" in " ".join(p.cmdline())],
                        "the importer's parsing worker to start")
    # when the importer is killed outright
    importer.kill()
    importer.wait(10)
    # then its worker does not linger as an orphan
    assert _wait_for(lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers),
                     f"the parsing workers {[w.pid for w in workers]} to exit")


def _wait_for(condition, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except psutil.Error:
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"waited {timeout:.0f} s for {what}")

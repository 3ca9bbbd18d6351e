"""``clarion serve`` on a database without the latest schema: refused in one line, or migrated when asked.

The refusals run in-process (CliRunner): they return before anything starts. The server that does start
runs in a subprocess on a free port, and is stopped once it has answered /health.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from clarion.cli.main import app as cli
from clarion.store.engine import make_engine
from clarion.store.migrate import schema_status, upgrade
from conftest import PG_ADMIN_URL, STORES

runner = CliRunner()
START_TIMEOUT = 60.0  # seconds for the subprocess to import, migrate and listen on a loaded 2-core machine
UPGRADE_HINT = "run `clarion db upgrade` first, or start with `clarion serve --upgrade`"


@pytest.fixture(params=STORES)
def empty_database_url(request, tmp_path) -> Iterator[str]:
    """A database with no tables at all (the shared test databases are migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"clarion_empty_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def status_of(url: str) -> tuple[tuple[str, str | None, str], list[str]]:
    engine = make_engine(url)
    try:
        return schema_status(engine), inspect(engine).get_table_names()
    finally:
        engine.dispose()


def serve(url: str, *options: str):
    return runner.invoke(cli, ["--database-url", url, "serve", "--port", str(free_port()), *options],
                         env={"CLARION_PUBLIC_URL": None})


def test_serve_refuses_a_database_without_the_tables_and_creates_nothing(empty_database_url):
    # when serve is started on an empty database
    result = serve(empty_database_url)
    # then it exits 1 with one line, without starting, and the database is still empty
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert result.stderr == f"error: the database has no Clarion tables; {UPGRADE_HINT}\n"
    (status, _current, _head), tables = status_of(empty_database_url)
    assert status == "missing" and tables == []


def test_serve_refuses_a_schema_behind_the_latest_revision(empty_database_url):
    # given a database migrated to the first revision only
    engine = make_engine(empty_database_url)
    upgrade(engine, "0001")
    engine.dispose()
    # when serve is started on it
    result = serve(empty_database_url)
    # then it exits 1 naming both revisions, and the schema was left as it was
    (status, current, head), _tables = status_of(empty_database_url)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert result.stderr == (f"error: the database schema is at revision 0001, behind the latest ({head}); "
                             f"{UPGRADE_HINT}\n")
    assert (status, current) == ("behind", "0001")


def test_serve_upgrade_migrates_then_answers_health(empty_database_url, tmp_path):
    # given an empty database and a free port
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLARION_")}
    command = [sys.executable, "-m", "clarion.cli.main", "--database-url", empty_database_url,
               "serve", "--upgrade", "--port", str(port)]
    # when serve --upgrade is started (in tmp_path, so no .env file is read)
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    output = Output(server)
    try:
        output.wait_for("Uvicorn running on")
        # then it answers
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
    finally:
        server.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown; serve then stops its worker
        server.wait(timeout=60)
    said = output.rest()
    # and it had migrated, and warned which URL links carry and that it is not where it listens
    assert server.returncode == 0, said
    assert any(line.startswith("Migrated the database to the latest schema") for line in said), said
    assert any(line.startswith("warning: CLARION_PUBLIC_URL is not set, so unsubscribe links carry "
                               f"http://127.0.0.1:8000, while this server listens on 127.0.0.1:{port}")
               for line in said), said
    (status, _current, _head), _tables = status_of(empty_database_url)
    assert status == "current"


class Output:
    """A subprocess's output lines, read in a thread so a server that dies or hangs fails the test after
    START_TIMEOUT instead of blocking it."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.said: list[str] = []
        self.reader = threading.Thread(target=self._pump, args=(process.stdout,), daemon=True)
        self.reader.start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, marker: str) -> None:
        while True:
            try:
                line = self.lines.get(timeout=START_TIMEOUT)
            except queue.Empty:
                pytest.fail(f"serve did not print {marker!r} within {START_TIMEOUT:.0f} s: {self.said}")
            if line is None:
                pytest.fail(f"serve exited before printing {marker!r}: {self.said}")
            self.said.append(line)
            if marker in line:
                return

    def rest(self) -> list[str]:
        """Every line, once the process has exited (its output then ends)."""
        self.reader.join(timeout=START_TIMEOUT)
        while not self.lines.empty():
            line = self.lines.get()
            if line is not None:
                self.said.append(line)
        return self.said

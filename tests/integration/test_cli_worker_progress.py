"""``clarion worker`` says on stderr where it sends from and how each campaign goes; ``--quiet`` says nothing."""

from __future__ import annotations

import json
import re

from delivery_world import add_contact, make_campaign
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from clarion.cli.main import app as cli

runner = CliRunner()
PROGRESS = re.compile(r"^(?P<name>\S+): (?P<sent>\d+) sent, (?P<skipped>\d+) skipped, (?P<deferred>\d+) deferred, "
                      r"(?P<failed>\d+) failed \(\d[\d,]*\.\d/s\)$")


def _file_transport(tmp_path) -> dict[str, str]:
    return {"CLARION_EMAIL_TRANSPORT": "file", "CLARION_EMAIL_FILE_DIR": str(tmp_path / "outbox")}


def _progress(stderr: str) -> list[dict[str, str]]:
    return [match.groupdict() for line in stderr.splitlines() if (match := PROGRESS.match(line))]


def test_the_worker_prints_a_start_line_and_each_campaigns_counts(app, tmp_path):
    # given a running campaign for a contact with consent and one without, and the file email transport
    url = app.settings.database_url
    add_contact(app, "ana@example.com")
    add_contact(app, "bob@example.com", consent=False)
    make_campaign(app, "spring", settings={"quiet_hours": {}})
    # when a worker runs until nothing is due
    result = runner.invoke(cli, ["--database-url", url, "worker", "--until-idle", "--id", "w-1", "--json"],
                           env=_file_transport(tmp_path))
    # then stderr starts with where it sends from: the store (no password), its channels and its id
    assert result.exit_code == 0, result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"Worker w-1 started: store {make_url(url).render_as_string(hide_password=True)}; ")
    assert "channels: " in first and "email (file)" in first
    # and the campaign's last progress line has its counts: one sent, one skipped (no consent)
    lines = _progress(result.stderr)
    assert lines and lines[-1] == {"name": "spring", "sent": "1", "skipped": "1", "deferred": "0", "failed": "0"}
    # and stdout holds only the JSON result, with the same counts
    data = json.loads(result.stdout)
    assert data["sent"] == 1
    assert [(c["campaign"], c["sent"], c["skipped"]) for c in data["campaigns"]] == [("spring", 1, 1)]
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1


def test_quiet_prints_neither_the_start_line_nor_progress(app, tmp_path):
    # given a running campaign and the file email transport
    url = app.settings.database_url
    add_contact(app, "ana@example.com")
    make_campaign(app, "quiet", settings={"quiet_hours": {}})
    # when a worker runs with --quiet
    result = runner.invoke(cli, ["--database-url", url, "worker", "--until-idle", "--quiet"],
                           env=_file_transport(tmp_path))
    # then it sent, and printed no start or progress line: only its closing line, on stdout
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    assert result.stderr == ""
    assert "started" not in result.stdout and _progress(result.stdout) == []
    assert "after sending 1 messages" in result.stdout

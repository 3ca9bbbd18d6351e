"""Tables keep the values that matter whole: on an 80-column terminal, and when the output is piped."""

from __future__ import annotations

import json
import re

from delivery_world import add_contact, make_campaign
from typer.testing import CliRunner

from clarion.cli.main import app as cli

runner = CliRunner()
LONG_EMAIL = "maria.fernanda.gonzalez-villanueva@correo.example.com.ar"
ZONE = "America/Argentina/Buenos_Aires"
AT = "2026-12-01T12:00:00+00:00"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _dry_run(url: str, *args: str, env: dict[str, str | None]) -> str:
    result = runner.invoke(cli, ["--database-url", url, "campaigns", "dry-run", "spring", "--at", AT, *args], env=env)
    assert result.exit_code == 0, result.output
    return ANSI.sub("", result.stdout)


def test_the_dry_run_shows_a_long_address_its_zone_and_send_time_whole(app):
    # given a draft campaign for a contact with a long address in a long zone, and its send time
    url = app.settings.database_url
    add_contact(app, LONG_EMAIL, timezone=ZONE)
    make_campaign(app, "spring", start=False, settings={"quiet_hours": {}})
    (recipient,) = json.loads(_dry_run(url, "--json", env={}))["recipients"]
    send_at = recipient["send_at"]
    assert "T" in send_at and recipient["timezone"] == ZONE
    # when the dry run is shown on an 80-column terminal, and piped (where COLUMNS does not cut it)
    terminal = _dry_run(url, env={"COLUMNS": "80", "TTY_COMPATIBLE": "1"})
    piped = _dry_run(url, env={"COLUMNS": "80", "TTY_COMPATIBLE": None})
    # then the terminal's lines fit its width, and the address, zone and send time each appear whole
    assert max(len(line) for line in terminal.splitlines()) <= 80
    for value in (LONG_EMAIL, ZONE, send_at):
        assert value in terminal
    # and piped, the recipient is one line holding all three, for grep
    assert any(all(value in line for value in (LONG_EMAIL, ZONE, send_at)) for line in piped.splitlines())

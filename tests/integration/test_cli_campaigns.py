"""``clarion templates|campaigns|deliveries|worker`` end to end, with the file channel (one .eml per message)."""

from __future__ import annotations

import json
from email import message_from_bytes

from delivery_world import TEMPLATE, add_contact
from typer.testing import CliRunner

from clarion.cli.main import app as cli

runner = CliRunner()


def test_create_dry_run_send_work_status_and_why(app, tmp_path):
    # given two contacts, one without consent, and a template file
    url = app.settings.database_url
    ana = add_contact(app, "ana@example.com")
    bob = add_contact(app, "bob@example.com", consent=False)
    (tmp_path / "t.json").write_text(json.dumps(TEMPLATE))
    (tmp_path / "s.json").write_text(json.dumps({"quiet_hours": {}}))
    outbox = tmp_path / "outbox"
    env = {"CLARION_EMAIL_TRANSPORT": "file", "CLARION_EMAIL_FILE_DIR": str(outbox),
           "CLARION_DEFAULT_TIMEZONE": "UTC"}

    def run(*args: str):
        result = runner.invoke(cli, ["--database-url", url, *args], env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout) if "--json" in args else result.stdout

    run("segments", "create", "everyone", "--rule", "email exists")
    run("templates", "save", "hello", "--file", str(tmp_path / "t.json"))
    created = run("campaigns", "create", "spring", "--template", "hello", "--segment", "everyone",
                  "--settings", str(tmp_path / "s.json"), "--json")
    assert created["status"] == "draft"
    # when it is dry-run, then nothing is stored and the outcome per contact is shown
    dry = run("campaigns", "dry-run", "spring", "--json")
    assert {r["contact_id"]: r["action"] for r in dry["recipients"]} == {ana: "send", bob: "skip"}
    # when it is sent and a worker runs until nothing is due
    run("campaigns", "send", "spring", "--json")
    worked = run("worker", "--until-idle", "--json")
    # then one .eml was written, and status and why say what happened
    assert worked["sent"] == 1
    (eml,) = outbox.glob("*.eml")
    assert message_from_bytes(eml.read_bytes())["To"] == "Ana <ana@example.com>"
    status = run("campaigns", "status", "spring", "--json")
    assert status["counts"]["sent"] == 1 and status["counts"]["skipped"] == 1
    assert status["reasons"] == [{"status": "skipped", "reason": "no_consent", "count": 1}]
    why = run("deliveries", "why", str(bob), "spring", "--json")
    assert why["deliveries"][0]["reason"] == "no_consent"
    assert "no_consent" not in run("deliveries", "why", str(ana), "spring")
    # and a test send goes to any address, marked, without a ledger row
    test = run("campaigns", "test-send", "spring", "--to", "qa@example.com", "--contact", str(ana), "--json")
    assert test["outcome"] == "sent"
    assert len(list(outbox.glob("*.eml"))) == 2
    assert run("campaigns", "status", "spring", "--json")["total"] == 2


def test_bad_input_is_one_line_errors(app, tmp_path):
    url = app.settings.database_url
    (tmp_path / "bad.json").write_text('{"default": {"email": {"subject": "{{ contact.__class__ }}", "html": "x"}}}')
    result = runner.invoke(cli, ["--database-url", url, "templates", "save", "evil", "--file",
                                 str(tmp_path / "bad.json")])
    assert result.exit_code == 1 and "private" in result.output
    missing = runner.invoke(cli, ["--database-url", url, "campaigns", "status", "nope"])
    assert missing.exit_code == 1 and "not found" in missing.output


def test_the_embedded_worker_of_serve_sends_in_its_own_thread(app, tmp_path):
    # given the file transport and a running campaign
    import threading
    import time

    from delivery_world import make_campaign, progress

    from clarion.bootstrap import Clarion
    from clarion.runners.worker import run_in_thread

    add_contact(app, "ana@example.com")
    make_campaign(app, settings={"quiet_hours": {}})
    settings = app.settings.model_copy(update={"email_transport": "file", "email_file_dir": str(tmp_path / "out"),
                                                "worker_poll_seconds": 0.05})
    served = Clarion.from_settings(settings)
    stop = threading.Event()
    # when the embedded worker runs until the campaign completes
    thread = run_in_thread(served, stop)
    deadline = time.monotonic() + 60  # seconds: it takes well under one, but CI's 2 cores are shared
    while progress(app, "spring")["status"] != "completed" and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=60)
    served.close()
    # then the message was written and the thread stopped when asked
    assert progress(app, "spring")["status"] == "completed"
    assert len(list((tmp_path / "out").glob("*.eml"))) == 1 and not thread.is_alive()

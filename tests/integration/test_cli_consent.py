"""``clarion consent|topics|suppressions``: consent without the REST API, on both stores."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clarion.cli.main import app as cli
from clarion.domain.profiles import ProfilePatch
from clarion.services.identity import Identifiers

runner = CliRunner()


def _run(app, *args: str):
    return runner.invoke(cli, ["--database-url", app.settings.database_url, *args])


def _json(app, *args: str):
    result = _run(app, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def ana(app) -> int:
    with app.store.write() as conn:
        return app.contacts.identify(conn, Identifiers(external_id="c-1", email="ana@example.com"),
                                     ProfilePatch(first_name="Ana"))


def test_consent_is_set_and_shown_by_id_email_or_external_id(app, ana):
    # given a contact and a double opt-in topic
    assert _run(app, "topics", "create", "weekly", "--name", "Weekly", "--double-opt-in").exit_code == 0
    # when consent is set by external id, with a proof and a date, and for the topic by email
    channel = _json(app, "consent", "set", "--external-id", "c-1", "--channel", "email", "--status", "opted_in",
                    "--source", "phone call", "--proof", "text_version=v3", "--at", "2026-01-02T03:04:05Z")
    weekly = _json(app, "consent", "set", "--email", "ANA@example.com", "--channel", "email", "--topic", "weekly",
                   "--status", "opted_in")
    confirmed = _json(app, "consent", "confirm", str(ana), "--channel", "email", "--topic", "weekly")
    shown = _json(app, "consent", "show", str(ana))
    # then the ledger holds both with their source and proof, and the topic became opted in once confirmed
    assert (channel["contact_id"], channel["status"]) == (ana, "opted_in")
    assert weekly["status"] == "pending_confirmation" and confirmed["status"] == "opted_in"
    assert {(s["topic"], s["status"]) for s in shown["state"]} == {("*", "opted_in"), ("weekly", "opted_in")}
    first = shown["ledger"][0]
    assert (first["source"], first["proof"]) == ("phone call", {"text_version": "v3"})
    assert first["occurred_at"] == "2026-01-02T03:04:05+00:00"
    assert [t["key"] for t in _json(app, "topics", "list")] == ["weekly"]
    # and the human-readable forms work too
    assert "opted_in" in _run(app, "consent", "show", "--email", "ana@example.com").stdout


@pytest.mark.parametrize(("args", "message"), [
    (("--channel", "emial", "--status", "opted_in"), "error: --channel: 'emial' is not one of: email"),
    (("--channel", "email", "--status", "maybe"), "error: status: 'maybe' is not one of"),
    (("--channel", "email", "--status", "opted_in", "--topic", "vip"), "error: topic: unknown topic 'vip'"),
    (("--channel", "email", "--status", "opted_in", "--proof", "colour=red"), "error: proof: unknown proof fields"),
    (("--channel", "email", "--status", "opted_in", "--proof", "form"), "error: --proof: 'form' is not key=value"),
    (("--channel", "email", "--status", "opted_in", "--at", "2999-01-01"), "error: --at: 2999-01-01T00:00:00+00:00 "
                                                                          "is in the future"),
    (("--channel", "email", "--status", "opted_in", "--at", "yesterday"), "error: --at: 'yesterday' is not"),
    (("--email", "ana@example.com", "--channel", "email", "--status", "opted_in"),
     "error: contact: give exactly one of"),
])
def test_bad_consent_input_is_one_line_and_changes_nothing(app, ana, args, message):
    # when consent is set with one bad argument
    result = _run(app, "consent", "set", str(ana), *args)
    # then one line says what is wrong, the exit status is 1 and nothing was recorded
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip().startswith(message) and len(result.stderr.strip().splitlines()) == 1
    assert _json(app, "consent", "show", str(ana))["ledger"] == []


def test_unknown_contacts_are_named(app):
    # when consent is asked for contacts that do not exist
    by_id = _run(app, "consent", "show", "4242")
    by_email = _run(app, "consent", "set", "--email", "nobody@example.com", "--channel", "email", "--status",
                    "opted_in")
    # then each is one line naming it
    assert (by_id.exit_code, by_id.stderr.strip()) == (1, "error: contact 4242 not found")
    assert by_email.exit_code == 1 and "'nobody@example.com' not found" in by_email.stderr


def test_suppressions_are_added_listed_and_lifted(app):
    # when an address is suppressed (written in any case), listed and looked up
    added = _json(app, "suppressions", "add", "--email", "Bob@Example.com", "--reason", "complaint", "--note", "FBL")
    listed = _json(app, "suppressions", "list")
    one = _json(app, "suppressions", "list", "--email", "bob@example.com")
    # then it is stored normalised, with its reason
    assert (added["address"], added["reason"], added["note"]) == ("bob@example.com", "complaint", "FBL")
    assert listed["total"] == 1 and one["items"][0]["address"] == "bob@example.com"
    # when it is lifted twice, then the first succeeds and the second says there is nothing to lift
    assert _run(app, "suppressions", "remove", "--email", "bob@example.com").exit_code == 0
    again = _run(app, "suppressions", "remove", "--email", "bob@example.com")
    assert again.exit_code == 1 and "liftable suppression of email 'bob@example.com' not found" in again.stderr
    assert _json(app, "suppressions", "list")["total"] == 0


@pytest.mark.parametrize(("args", "message"), [
    (("add", "--email", "not-an-email"), "error: email:"),
    (("add", "--phone", "12"), "error: phone:"),
    (("add", "--email", "a@example.com", "--phone", "+33612345678"), "give exactly one of --email or --phone"),
    (("add", "--email", "a@example.com", "--reason", "erased"), "'erased' is set by erasure only"),
    (("add", "--email", "a@example.com", "--reason", "angry"), "error: --reason: 'angry' is not one of"),
    (("list", "--kind", "fax"), "error: --kind: 'fax' is not email or phone"),
    (("remove",), "give exactly one of --email or --phone"),
])
def test_bad_suppression_input_is_one_line_and_changes_nothing(app, args, message):
    # when a suppression command gets a bad argument
    result = _run(app, "suppressions", *args)
    # then one line, exit 1, and the list is still empty
    assert result.exit_code == 1 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert _json(app, "suppressions", "list")["total"] == 0


def test_topics_refuse_duplicates_and_bad_keys(app):
    # given a topic
    assert _run(app, "topics", "create", "news").exit_code == 0
    # when it is created again, or with the reserved key '*'
    twice, star = _run(app, "topics", "create", "news"), _run(app, "topics", "create", "*")
    # then each is refused in one line and only the first topic exists
    assert twice.exit_code == 1 and "topic 'news' already exists" in twice.stderr
    assert star.exit_code == 1 and "not '*'" in star.stderr
    assert [t["key"] for t in _json(app, "topics", "list")] == ["news"]

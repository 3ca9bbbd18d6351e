"""What a newcomer is told when scheduling or sending goes wrong: one line, never a traceback, and the
campaign as it was. The clock is frozen with time-machine (it patches ``datetime.now``), so "the past"
is exact."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
import time_machine
from delivery_world import add_contact, make_campaign
from sqlalchemy import func, select
from test_api_support import admin, admin_key, client  # noqa: F401 - fixtures
from typer.testing import CliRunner

from clarion.cli.main import app as cli
from clarion.domain.consent import Channel, ConsentStatus
from clarion.domain.profiles import ProfilePatch
from clarion.runners.worker import Worker
from clarion.services.campaign_insight import CampaignInsight
from clarion.services.campaigns import CampaignService
from clarion.services.identity import Identifiers
from clarion.store.schema_delivery import deliveries

runner = CliRunner()
NOW = datetime(2026, 12, 9, 12, 0, tzinfo=UTC)  # a Wednesday, noon UTC
SMS_TEMPLATE = {"default": {"sms": {"text": "{{ contact.first_name }}, 20% off today only."}}}
# The settings each command reads, pinned: nothing from the machine's environment leaks in.
QUIET_ENV = {"CLARION_SMS_TRANSPORT": "none", "CLARION_PUBLIC_URL": None, "CLARION_DEFAULT_TIMEZONE": "UTC"}
SEND_NOW = "to start it now, send it: `clarion campaigns send spring`"


def invoke(app, *args: str, **env: str | None):
    return runner.invoke(cli, ["--database-url", app.settings.database_url, *args], env={**QUIET_ENV, **env})


def one_error_line(result) -> str:
    """The command failed with exactly one line on stderr, and no traceback anywhere."""
    assert result.exit_code == 1, result.output
    # CliRunner catches an uncaught exception and reports exit 1 too: only typer's Exit(1) is one line.
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def stored(app, name: str = "spring") -> dict:
    with app.store.read() as conn:
        campaign = CampaignService(app.settings).get(conn, name)
        queued = conn.execute(select(func.count()).select_from(deliveries)).scalar_one()
    return {"status": campaign["status"], "schedule": campaign["schedule"], "start_at": campaign["start_at"],
            "deliveries": queued}


DRAFT = {"status": "draft", "schedule": {"mode": "now"}, "start_at": None, "deliveries": 0}


@pytest.mark.parametrize(("options", "message"), [
    (["--local-time", "10am", "--local-date", "2026-12-10"],
     "error: --local-time: '10am' is not a time; use HH:MM from 00:00 to 23:59, e.g. 10:00"),
    (["--local-time", "25:00", "--weekday", "tuesday"],
     "error: --local-time: '25:00' is not a time; use HH:MM from 00:00 to 23:59, e.g. 10:00"),
    (["--local-time", "10:00", "--local-date", "12/09/2026"],
     "error: --local-date: '12/09/2026' is not a date; use YYYY-MM-DD, e.g. 2026-12-09"),
    (["--local-time", "10:00", "--local-date", "2026-02-30"],
     "error: --local-date: '2026-02-30' is not a date; use YYYY-MM-DD, e.g. 2026-12-09"),
    (["--local-time", "10:00", "--weekday", "tues"],
     "error: --weekday: 'tues' is not a day of the week; one of monday, tuesday, wednesday, thursday, friday, "
     "saturday, sunday"),
    (["--at", "tomorrow"],
     "error: --at: 'tomorrow' is not an instant; use ISO 8601 with its UTC offset, e.g. 2026-12-01T09:00:00+00:00"),
    (["--at", "2026-12-10T09:00"],
     "error: --at: 2026-12-10T09:00:00 has no UTC offset; add one, e.g. 2026-12-01T09:00:00+00:00"),
    (["--at", "2026-12-10T09:00Z", "--local-time", "10:00"],
     "error: --at: give --at alone, or --local-time with --local-date or --weekday"),
    (["--local-time", "10:00", "--local-date", "2026-12-10", "--weekday", "friday"],
     "error: --weekday: give --local-date or --weekday, not both"),
])
def test_a_schedule_that_cannot_be_read_names_the_option_and_what_it_expects(app, options, message):
    # given a draft campaign
    make_campaign(app, start=False)
    # when it is scheduled with a value that is not a time, a date, a weekday or an instant
    with time_machine.travel(NOW, tick=False):
        result = invoke(app, "campaigns", "schedule", "spring", *options)
    # then one line says which option and what it expects, and the campaign is still the same draft
    assert one_error_line(result) == message
    assert stored(app) == DRAFT


def test_a_local_date_past_in_every_zone_is_refused_naming_it_and_now(app):
    # given a draft; at noon UTC on 9 December, 10:00 on the 8th has passed even at UTC-12 (22:00 UTC)
    make_campaign(app, start=False)
    with time_machine.travel(NOW, tick=False):
        # when it is scheduled for that date
        result = invoke(app, "campaigns", "schedule", "spring", "--local-date", "2026-12-08", "--local-time", "10:00")
    # then it is refused with the date, the time now, and how to send at once; the draft is unchanged
    assert one_error_line(result) == ("error: --local-date: 10:00 on 2026-12-08 has passed in every time zone "
                                      f"(it is now 2026-12-09 12:00 UTC); {SEND_NOW}")
    assert stored(app) == DRAFT


def test_an_instant_in_the_past_is_refused(app):
    make_campaign(app, start=False)
    with time_machine.travel(NOW, tick=False):
        result = invoke(app, "campaigns", "schedule", "spring", "--at", "2026-12-09T11:59:00Z")
    assert one_error_line(result) == ("error: --at: 2026-12-09T11:59:00+00:00 has already passed "
                                      f"(it is now 2026-12-09 12:00 UTC); {SEND_NOW}")
    assert stored(app) == DRAFT


def test_a_local_time_passed_in_some_zones_is_scheduled_and_says_who_gets_it_at_once(app):
    # given contacts in UTC and Tokyo, where 10:00 on 9 December has passed by noon UTC, and in New York
    add_contact(app, "utc@example.com", timezone="UTC")
    add_contact(app, "tokyo@example.com", timezone="Asia/Tokyo")
    add_contact(app, "ny@example.com", timezone="America/New_York")
    make_campaign(app, start=False)
    with time_machine.travel(NOW, tick=False):
        # when it is scheduled for 10:00 that day
        result = invoke(app, "campaigns", "schedule", "spring", "--local-date", "2026-12-09", "--local-time", "10:00",
                        "--json")
    # then it is scheduled, and a warning says how many contacts get it at once (on stderr and in the result)
    warning = ("10:00 on 2026-12-09 has already passed in some time zones (it is now 2026-12-09 12:00 UTC): 2 of the "
               "3 contacts now in the audience get it at once, not at their local 10:00")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"warning: {warning}\n"
    data = json.loads(result.stdout)
    assert data["status"] == "scheduled" and data["warnings"] == [warning]


def test_a_weekday_schedule_is_never_in_the_past_and_warns_of_nothing(app):
    add_contact(app, "tokyo@example.com", timezone="Asia/Tokyo")
    make_campaign(app, start=False)
    with time_machine.travel(NOW, tick=False):
        result = invoke(app, "campaigns", "schedule", "spring", "--weekday", "Wednesday", "--local-time", "10:00",
                        "--json")
    assert result.exit_code == 0 and result.stderr == ""
    assert json.loads(result.stdout)["schedule"] == {"mode": "local", "date": "2026-12-16", "time": "10:00:00"}


def test_the_api_applies_the_same_schedule_rules(app, admin):  # noqa: F811 - the fixture
    # given a draft campaign
    make_campaign(app, start=False)
    url = "/api/campaigns/spring/schedule"
    with time_machine.travel(NOW, tick=False):
        # when the API is asked for a date past everywhere, an unreadable time, and an instant without offset
        past = admin.post(url, json={"mode": "local", "date": "2026-12-08", "time": "10:00"})
        unreadable = admin.post(url, json={"mode": "local", "date": "2026-12-10", "time": "10am"})
        naive = admin.post(url, json={"mode": "at", "at": "2026-12-10T09:00"})
    # then each is a 422 naming the field and saying the same as the CLI; the draft is unchanged
    assert (past.status_code, past.json()["field"]) == (422, "schedule.date")
    assert past.json()["reason"] == ("10:00 on 2026-12-08 has passed in every time zone (it is now 2026-12-09 "
                                     f"12:00 UTC); {SEND_NOW}")
    assert (unreadable.status_code, unreadable.json()["field"]) == (422, "schedule.time")
    assert unreadable.json()["reason"] == "'10am' is not a time; use HH:MM from 00:00 to 23:59, e.g. 10:00"
    assert (naive.status_code, naive.json()["field"]) == (422, "schedule.at")
    assert stored(app) == DRAFT


# -- channels ------------------------------------------------------------------------------------
def add_phone(app, phone: str, *, consent: bool = True) -> int:
    with app.store.write() as conn:
        contact = app.contacts.identify(conn, Identifiers(phone=phone), ProfilePatch(first_name="Ana"))
        if consent:
            app.consent.record(conn, contact, Channel.SMS, ConsentStatus.OPTED_IN, source="test")
    return contact


def test_a_campaign_on_an_unconfigured_channel_is_created_with_a_warning_and_refused_at_send(app, tmp_path):
    # given no SMS provider, a phone contact and an SMS template
    add_phone(app, "+14155550101")
    (tmp_path / "sms.json").write_text(json.dumps(SMS_TEMPLATE))
    assert invoke(app, "segments", "create", "phones", "--rule", "phone exists").exit_code == 0
    assert invoke(app, "templates", "save", "flash-sms", "--file", str(tmp_path / "sms.json")).exit_code == 0
    hint = "no SMS provider is configured: set CLARION_SMS_TRANSPORT (see docs/channels/sms.md)"
    # when an SMS campaign is created: it is saved, with a warning on stderr
    created = invoke(app, "campaigns", "create", "flash", "--template", "flash-sms", "--segment", "phones",
                     "--channel", "sms", "--json")
    assert created.exit_code == 0, created.output
    assert created.stderr == f"warning: {hint}; campaign 'flash' cannot be sent until it is\n"
    assert json.loads(created.stdout)["warnings"] == [f"{hint}; campaign 'flash' cannot be sent until it is"]
    # and when it is sent or scheduled, each is refused in one line and it stays a draft with no deliveries
    sent = invoke(app, "campaigns", "send", "flash")
    assert one_error_line(sent) == f"error: cannot send campaign 'flash': {hint}"
    with time_machine.travel(NOW, tick=False):
        scheduled = invoke(app, "campaigns", "schedule", "flash", "--at", "2026-12-10T09:00:00Z")
    assert one_error_line(scheduled) == f"error: cannot schedule campaign 'flash': {hint}"
    assert stored(app, "flash") == DRAFT
    # and the dry run says every recipient would fail, as a worker would
    dry = invoke(app, "campaigns", "dry-run", "flash", "--json")
    assert [(r["action"], r["reason"]) for r in json.loads(dry.stdout)["recipients"]] == [
        ("fail", "channel_unavailable")]
    # and once SMS is configured, it is sent
    started = invoke(app, "campaigns", "send", "flash", "--json", CLARION_SMS_TRANSPORT="console")
    assert started.exit_code == 0 and json.loads(started.stdout)["status"] == "running"


def test_the_api_warns_at_create_and_refuses_to_send_on_an_unconfigured_channel(app, admin):  # noqa: F811
    # given a phone contact, a segment and an SMS template, and no SMS provider
    add_phone(app, "+14155550101")
    assert admin.post("/api/segments", json={"name": "phones", "rule": "phone exists"}).status_code == 201
    assert admin.put("/api/templates", json={"name": "flash-sms", "document": SMS_TEMPLATE}).status_code == 200
    hint = "no SMS provider is configured: set CLARION_SMS_TRANSPORT (see docs/channels/sms.md)"
    # when an SMS campaign is created, then it is, with the warning in the result
    created = admin.post("/api/campaigns", json={"name": "flash", "template": "flash-sms", "segment": "phones",
                                                 "channel": "sms"})
    assert created.status_code == 201
    assert created.json()["warnings"] == [f"{hint}; campaign 'flash' cannot be sent until it is"]
    # and when it is sent, then 409 says what to set, and it stays a draft with no deliveries
    refused = admin.post("/api/campaigns/flash/send")
    assert refused.status_code == 409 and refused.json()["message"] == f"cannot send campaign 'flash': {hint}"
    assert stored(app, "flash") == DRAFT


def test_the_dry_run_and_the_worker_agree_when_the_channel_is_not_configured(app):
    # given an SMS campaign started while SMS was configured, to one consenting phone and one not
    ana = add_phone(app, "+14155550101")
    bo = add_phone(app, "+14155550102", consent=False)
    configured = app.settings.model_copy(update={"sms_transport": "console"})
    make_campaign(app, "flash", channel="sms", rule="phone exists", template_document=SMS_TEMPLATE, start=False)
    with app.store.write() as conn:
        CampaignService(configured).send(conn, "flash")
    # when, with SMS no longer configured, the dry run predicts and a worker built from the settings runs
    with app.store.read() as conn:
        dry = CampaignInsight(app.settings).dry_run(conn, "flash")
    asyncio.run(Worker(app).run(until_idle=True))
    # then both say channel_unavailable for every recipient, with the same words
    with app.store.read() as conn:
        ledger = {r.contact_id: ("fail", r.reason, r.detail) for r in conn.execute(select(deliveries))}
    predicted = {r["contact_id"]: (r["action"], r["reason"], r["detail"]) for r in dry["recipients"]}
    hint = "no SMS provider is configured: set CLARION_SMS_TRANSPORT (see docs/channels/sms.md)"
    unavailable = ("fail", "channel_unavailable", hint)
    assert predicted == ledger == {ana: unavailable, bo: unavailable}
    assert hint in dry["warnings"]


# -- the public URL --------------------------------------------------------------------------------
def test_the_dry_run_shows_the_url_links_carry_and_warns_while_it_is_the_default(app):
    # given a campaign, and CLARION_PUBLIC_URL not set
    add_contact(app, "ana@example.com")
    make_campaign(app, start=False, settings={"quiet_hours": {}})
    # when it is dry-run, then the default URL is shown and a warning says how to set it
    default = invoke(app, "campaigns", "dry-run", "spring")
    assert default.exit_code == 0, default.output
    assert "Unsubscribe links point at http://127.0.0.1:8000." in default.stdout
    assert default.stderr == ("warning: CLARION_PUBLIC_URL is not set, so unsubscribe links carry "
                              "http://127.0.0.1:8000; set CLARION_PUBLIC_URL to the address recipients reach "
                              "Clarion at (e.g. https://clarion.example.com)\n")
    # and once it is set, that URL is shown, in the JSON too, without a warning
    chosen = invoke(app, "campaigns", "dry-run", "spring", "--json", CLARION_PUBLIC_URL="https://news.example.com")
    assert chosen.exit_code == 0 and chosen.stderr == ""
    data = json.loads(chosen.stdout)
    assert data["public_url"] == "https://news.example.com" and data["warnings"] == []


"""A contact's timeline: their events and their engagements as named events, merged newest first, through the
API and the command line, on both stores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import typer
from delivery_world import Clock, ScriptedChannel, add_contact, make_campaign, run, worker
from fastapi.testclient import TestClient
from sqlalchemy import select
from test_api_support import make_key
from typer.testing import CliRunner

from clarion.api.app import create_app
from clarion.cli import main as cli_main
from clarion.domain.events import EventInput
from clarion.services.timeline import ACTION_NAMES, event_name
from clarion.store.schema_delivery import deliveries
from clarion.store.schema_scores import ENGAGEMENT_ACTIONS
from clarion.tracking.engagements import record, touch_of

SENT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
EMAIL = {"default": {"email": {"subject": "Hi", "html": (
    '<p><a href="https://shop.example/sale">Sale</a> <a href="{{ links.unsubscribe }}">Unsubscribe</a></p>')}}}
SALE_URL = "https://shop.example/sale?utm_source=clarion&utm_medium=email&utm_campaign=spring&utm_content=Sale"


def sent_email(app, email: str = "ana@example.com") -> tuple[int, int]:
    """A contact sent the "spring" email at SENT (its ``received`` row written by the worker): (contact, delivery)."""
    contact = add_contact(app, email)
    make_campaign(app, "spring", template_document=EMAIL, clock=Clock(SENT))
    run(worker(app, ScriptedChannel(), clock=Clock(SENT)))
    with app.store.read() as conn:
        delivery = conn.execute(select(deliveries.c.id).where(deliveries.c.contact_id == contact)).scalar_one()
    return contact, delivery


def engage(app, delivery: int, action: str, minutes: float, **details) -> None:
    with app.store.write() as conn:
        assert record(conn, touch_of(conn, delivery), action, SENT + timedelta(minutes=minutes), **details)


def order(app, contact: int, minutes: float, revenue: float) -> int:
    at = SENT + timedelta(minutes=minutes)
    with app.store.write() as conn:
        app.events.ingest(conn, [EventInput("Order Completed", f"order-{minutes}", at, at,
                                            {"order_id": f"A-{minutes}", "revenue": revenue}, contact)])
        _total, (event,) = app.events.list(conn, contact_id=contact, limit=1)
    return event["id"]


def a_week_of_engagement(app) -> int:
    """Sent, delivered, a scanner's click, a human open and click, an order and its conversion; the contact."""
    contact, delivery = sent_email(app)
    engage(app, delivery, "delivered", 1, reason="receipt")
    engage(app, delivery, "clicked", 2, link=1, machine=True, reason="too_fast", agent="bot")
    engage(app, delivery, "opened", 10, reason="pixel", agent="email_client")
    engage(app, delivery, "clicked", 12, link=1, agent="browser")
    event_id = order(app, contact, 29, 30.0)
    engage(app, delivery, "converted", 30, event_id=event_id, revenue=30.0)
    return contact


@pytest.fixture
def admin(app) -> Iterator[TestClient]:
    with TestClient(create_app(app)) as http:
        http.headers["Authorization"] = f"Bearer {make_key(app, 'admin')}"
        yield http


def test_every_action_has_its_name_and_opens_are_named_by_channel():
    # given each action of the engagements table, then each has a timeline name
    assert set(ACTION_NAMES) | {"opened"} == set(ENGAGEMENT_ACTIONS)
    assert [event_name(action, "email") for action in ENGAGEMENT_ACTIONS] == [
        "Message Sent", "Message Delivered", "Email Opened", "Link Clicked", "Converted", "Email Bounced",
        "Spam Reported", "Unsubscribed"]
    # and an open is named by the channel that carried the message
    assert [event_name("opened", channel) for channel in ("email", "push", "webpush", "inapp", "sms")] == [
        "Email Opened", "Push Opened", "Push Opened", "Message Opened", "Message Opened"]
    with pytest.raises(ValueError, match="unknown engagement action"):
        event_name("liked", "email")


def test_the_timeline_merges_events_and_engagements_newest_first(app, admin):
    # given a contact who was sent an email, opened and clicked it (after a scanner did), and bought
    contact = a_week_of_engagement(app)
    # when the timeline is asked for
    response = admin.get(f"/api/contacts/{contact}/timeline")
    # then every event and engagement is there, newest first, engagements under their timeline names
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == 7 and page["contact_id"] == contact
    assert [(item["kind"], item["name"]) for item in page["items"]] == [
        ("engagement", "Converted"), ("event", "Order Completed"), ("engagement", "Link Clicked"),
        ("engagement", "Email Opened"), ("engagement", "Link Clicked"), ("engagement", "Message Delivered"),
        ("engagement", "Message Sent")]
    converted, ordered, clicked, opened, scanned, _delivered, sent = page["items"]
    # and each engagement names its campaign, channel, delivery, link and revenue
    assert clicked["properties"] == {
        "campaign_id": clicked["properties"]["campaign_id"], "campaign": "spring", "channel": "email",
        "delivery_id": sent["properties"]["delivery_id"], "machine": False, "reason": None, "link": 1,
        "url": SALE_URL, "revenue": None}
    assert converted["properties"]["revenue"] == 30.0 and ordered["revenue"] == 30.0
    assert ordered["properties"]["order_id"] == "A-29"
    assert opened["properties"]["reason"] == "pixel" and opened["machine"] is False
    # and the scanner's click is shown, marked as a machine's with the rule that caught it
    assert scanned["machine"] is True and scanned["properties"]["reason"] == "too_fast"
    assert datetime.fromisoformat(sent["occurred_at"]) == SENT


def test_machine_rows_can_be_left_out_and_pages_follow_each_other(app, admin):
    # given the same week
    contact = a_week_of_engagement(app)
    everything = admin.get(f"/api/contacts/{contact}/timeline").json()["items"]
    # when only people's engagement is asked for, then the scanner's click is left out of the items and the total
    human = admin.get(f"/api/contacts/{contact}/timeline", params={"human_only": True}).json()
    assert human["total"] == 6 and [i for i in everything if not i["machine"]] == human["items"]
    # when the timeline is read three items at a time, then the pages are the whole timeline, in order
    pages = [admin.get(f"/api/contacts/{contact}/timeline", params={"limit": 3, "offset": offset}).json()["items"]
             for offset in (0, 3, 6)]
    assert [item for page in pages for item in page] == everything
    # and until= starts a page before a time (the way further back than the offset limit)
    older = admin.get(f"/api/contacts/{contact}/timeline", params={"until": "2026-12-01T09:10:00Z"}).json()
    assert [item["name"] for item in older["items"]] == ["Link Clicked", "Message Delivered", "Message Sent"]


def test_an_unknown_contact_or_a_bad_page_is_refused(app, admin):
    assert admin.get("/api/contacts/424242/timeline").status_code == 404
    assert admin.get("/api/contacts/1/timeline", params={"offset": 10_001}).status_code == 422
    assert admin.get("/api/contacts/1/timeline", params={"until": "yesterday"}).status_code == 422


def cli_app() -> typer.Typer:
    return cli_main.app  # the real `clarion` command tree


def test_the_command_line_prints_the_timeline(app):
    # given the week of engagement
    contact = a_week_of_engagement(app)
    url = app.settings.database_url
    runner = CliRunner()
    # when the timeline is printed as JSON and as a table
    as_json = runner.invoke(cli_app(), ["--database-url", url, "contacts", "timeline", str(contact), "--json",
                                        "--human-only", "--limit", "2"])
    shown = runner.invoke(cli_app(), ["--database-url", url, "contacts", "timeline", str(contact)])
    # then the JSON is the API's page, and the table names each item and marks the machine's
    assert as_json.exit_code == 0, as_json.output
    page = json.loads(as_json.stdout)
    assert page["total"] == 6 and [item["name"] for item in page["items"]] == ["Converted", "Order Completed"]
    assert shown.exit_code == 0, shown.output
    assert "Email Opened" in shown.stdout and "machine (too_fast)" in shown.stdout and SALE_URL in shown.stdout

"""The REST API for templates and campaigns, and the signed unsubscribe links."""

# ruff: noqa: F811 - pytest fixtures imported from test_api_support are parameters here

from __future__ import annotations

import pytest
from delivery_world import TEMPLATE, ScriptedChannel, add_contact, run, worker
from test_api_support import admin, admin_key, client  # noqa: F401 - fixtures

from clarion.domain.consent import ConsentStatus
from clarion.tracking.links import UnsubscribeTarget, sign_unsubscribe


@pytest.fixture
def campaign(app, admin):
    add_contact(app, "ana@example.com")
    assert admin.post("/api/segments", json={"name": "all", "rule": "email exists"}).status_code == 201
    assert admin.put("/api/templates", json={"name": "hello", "document": TEMPLATE}).status_code == 200
    response = admin.post("/api/campaigns", json={"name": "spring", "template": "hello", "segment": "all",
                                                  "settings": {"quiet_hours": {}}})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_template_with_problems_is_refused_with_every_problem(admin):
    document = {"default": {"email": {"subject": "Hi {{ contact.first_nam }}", "html": "<p>{% if %}</p>"}}}
    response = admin.put("/api/templates", json={"name": "bad", "document": document})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_template"
    problems = {p["part"]: p for p in body["problems"]}
    assert problems["email.subject"]["suggestion"] == "contact.first_name"
    assert problems["email.html"]["kind"] == "syntax"


def test_campaign_lifecycle_and_progress_through_the_api(app, admin, campaign):
    # when the campaign is sent and a worker runs
    assert admin.post("/api/campaigns/spring/send").json()["status"] == "running"
    channel = ScriptedChannel()
    run(worker(app, channel))
    # then its progress comes from the ledger, and "why" explains the contact's delivery
    shown = admin.get("/api/campaigns/spring").json()
    assert shown["progress"]["counts"]["sent"] == 1 and shown["progress"]["done"] == 1
    why = admin.get("/api/campaigns/spring/why/1").json()
    assert why["deliveries"][0]["status"] == "sent"
    # and a finished campaign cannot be paused
    run(worker(app, channel))
    conflict = admin.post("/api/campaigns/spring/pause")
    assert conflict.status_code == 409 and "completed" in conflict.json()["message"]


def test_dry_run_over_the_api_stores_nothing(admin, campaign):
    dry = admin.get("/api/campaigns/spring/dry-run", params={"limit": 5}).json()
    assert dry["recipients"][0]["action"] == "send" and dry["recipients"][0]["subject"] == "Hi Ana"
    assert admin.get("/api/campaigns/spring").json()["progress"]["total"] == 0


def test_transactional_trigger_is_idempotent_by_key(app, admin):
    ana = add_contact(app, "ana@example.com", consent=False)
    admin.put("/api/templates", json={"name": "receipt", "document": TEMPLATE})
    admin.post("/api/campaigns", json={"name": "receipt", "template": "receipt", "kind": "transactional"})
    admin.post("/api/campaigns/receipt/send")
    first = admin.post("/api/campaigns/receipt/trigger", json={"contact_id": ana, "key": "order-9"})
    again = admin.post("/api/campaigns/receipt/trigger", json={"contact_id": ana, "key": "order-9"})
    assert first.status_code == again.status_code == 202
    assert first.json()["delivery_id"] == again.json()["delivery_id"] and again.json()["created"] is False
    missing = admin.post("/api/campaigns/receipt/trigger", json={"contact_id": 999_999})
    assert missing.status_code == 404


def test_one_click_unsubscribe_records_the_opt_out(app, client, campaign):
    ana = 1
    token = sign_unsubscribe(app.settings.link_secret, UnsubscribeTarget(ana, campaign["id"], "email", None))
    # the page changes nothing (link scanners follow GET links)
    page = client.get(f"/u/{token}")
    assert page.status_code == 200 and "<form" in page.text
    with app.store.read() as conn:
        assert app.consent.state(conn, ana)[("email", "*")] == ConsentStatus.OPTED_IN
    # RFC 8058 one-click POST
    done = client.post(f"/u/{token}", content="List-Unsubscribe=One-Click",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert done.status_code == 200 and "unsubscribed" in done.text
    with app.store.read() as conn:
        assert app.consent.state(conn, ana)[("email", "*")] == ConsentStatus.OPTED_OUT
        proof = app.consent.ledger(conn, ana)[-1]
    assert proof["source"] == "unsubscribe_link" and proof["proof"]["form"] == "list-unsubscribe one-click"
    assert proof["proof"]["campaign_id"] == str(campaign["id"])


@pytest.mark.parametrize("forged", ["nope", "a.b", "WzEsMSwiZW1haWwiLG51bGxd.AAAAAAAAAAAAAAAAAAAAAA"])
def test_a_forged_unsubscribe_link_is_refused(app, client, forged):
    add_contact(app, "ana@example.com")
    response = client.post(f"/u/{forged}")
    assert response.status_code == 400 and "not valid" in response.text
    with app.store.read() as conn:
        assert app.consent.state(conn, 1)[("email", "*")] == ConsentStatus.OPTED_IN

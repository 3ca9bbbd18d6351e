"""The in-app inbox: an ``inapp`` campaign stores each message once with its sent row, and the customer's app
reads, pages, marks and deletes its own contact's messages with a contact token, and nobody else's."""

# ruff: noqa: F811 - pytest fixtures imported from test_api_support are parameters here

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from delivery_world import make_campaign, run
from sqlalchemy import func, select
from test_api_support import admin, admin_key, client  # noqa: F401 - fixtures

from clarion.channels.inapp import InboxChannel
from clarion.domain.consent import Channel, ConsentStatus
from clarion.domain.profiles import ProfilePatch
from clarion.messages.inapp_compose import InAppComposer
from clarion.runners.dispatch import ChannelBinding, Dispatcher
from clarion.runners.worker import Worker
from clarion.services.identity import Identifiers
from clarion.store.schema_delivery import deliveries, inbox_messages
from clarion.tracking.contact_tokens import sign_contact_token

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
INAPP_TEMPLATE = {"default": {"inapp": {
    "title": "{{ contact.first_name }}, {{ campaign.name }}",
    "body": "Your code is worth {{ 20 | money('EUR') }}.",
    "url": "app://offers/{{ campaign.id }}", "image": "https://cdn.example.com/a.png"}}}


def add_app_user(app, email: str, first_name: str, *, consent: bool = True) -> int:
    with app.store.write() as conn:
        contact_id = app.contacts.identify(conn, Identifiers(email=email), ProfilePatch(first_name=first_name,
                                                                                      timezone="UTC"))
        if consent:
            app.consent.record(conn, contact_id, Channel.INAPP, ConsentStatus.OPTED_IN, source="test")
    return contact_id


def bindings(app) -> dict[str, ChannelBinding]:
    return {"inapp": ChannelBinding(InAppComposer(app.settings), InboxChannel())}


def inbox_rows(app) -> list:
    with app.store.read() as conn:
        return conn.execute(select(inbox_messages).order_by(inbox_messages.c.id)).all()


def send_campaigns(app, names: list[str]) -> None:
    for name in names:
        make_campaign(app, name, channel="inapp", template_document=INAPP_TEMPLATE, clock=lambda: NOW)
    run(Worker(app, channels=bindings(app), clock=lambda: NOW))


# -- delivery ---------------------------------------------------------------------------------------------

def test_an_inapp_campaign_puts_one_message_in_each_consenting_inbox(app):
    # given two app users who allow in-app messages and one who does not
    ana = add_app_user(app, "ana@example.com", "Ana")
    bo = add_app_user(app, "bo@example.com", "Bo")
    silent = add_app_user(app, "cy@example.com", "Cy", consent=False)
    # when an in-app broadcast goes through the worker
    send_campaigns(app, ["autumn"])
    # then each consenting contact has exactly one rendered message, linked to its sent delivery
    rows = {r.contact_id: r for r in inbox_rows(app)}
    assert sorted(rows) == sorted([ana, bo])
    assert rows[ana].title == "Ana, autumn" and rows[ana].body == "Your code is worth €20.00."
    assert rows[ana].url.startswith("app://offers/") and rows[ana].image == "https://cdn.example.com/a.png"
    assert rows[ana].read_at is None and rows[ana].expires_at is not None
    with app.store.read() as conn:
        status = {r.contact_id: (r.status, r.reason, r.id) for r in conn.execute(select(deliveries))}
    assert status[ana][:2] == ("sent", None) and rows[ana].delivery_id == status[ana][2]
    assert status[silent][:2] == ("skipped", "no_consent")


def test_a_batch_checkpointed_twice_stores_each_message_once(app):
    # given two consenting contacts and a started in-app campaign
    add_app_user(app, "ana@example.com", "Ana")
    add_app_user(app, "bo@example.com", "Bo")
    campaign = make_campaign(app, "autumn", channel="inapp", template_document=INAPP_TEMPLATE, clock=lambda: NOW)
    dispatcher = Dispatcher(app.store, app.settings, bindings(app), "test-worker", clock=lambda: NOW)
    # when a batch is leased, sent, and its checkpoint applied twice (a worker that retried its commit)
    batch = dispatcher.lease(campaign["id"])
    assert batch is not None and len(batch.items) == 2
    outcomes = asyncio.run(dispatcher.send(batch))
    dispatcher.checkpoint(batch, outcomes)
    dispatcher.checkpoint(batch, outcomes)
    # then there is still one message per contact
    with app.store.read() as conn:
        per_contact = dict(conn.execute(select(inbox_messages.c.contact_id, func.count())
                                        .group_by(inbox_messages.c.contact_id)).all())
    assert sorted(per_contact.values()) == [1, 1]


# -- the app's API --------------------------------------------------------------------------------------

def token_for(admin, contact_id: int, scope: str = "inbox") -> str:
    response = admin.post(f"/api/contacts/{contact_id}/client-token", json={"scope": scope})
    assert response.status_code == 200, response.text
    return response.json()["token"]


def as_contact(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_app_pages_newest_first_marks_read_and_deletes(app, admin):
    # given three in-app campaigns sent to Ana, and her app's token
    ana = add_app_user(app, "ana@example.com", "Ana")
    send_campaigns(app, ["first", "second", "third"])
    me = as_contact(token_for(admin, ana))
    # when the app asks for two messages, then the newest come first, with the unread count of the whole inbox
    page = admin.get("/api/inbox?limit=2", headers=me).json()
    assert [m["title"] for m in page["messages"]] == ["Ana, third", "Ana, second"]
    assert page["unread"] == 3 and page["next_before"] == page["messages"][-1]["id"]
    older = admin.get(f"/api/inbox?limit=2&before={page['next_before']}", headers=me).json()
    assert [m["title"] for m in older["messages"]] == ["Ana, first"] and older["next_before"] is None
    # when it marks the newest read, then two stay unread, and ?unread=true lists only those
    newest = page["messages"][0]["id"]
    assert admin.post("/api/inbox/read", json={"ids": [newest]}, headers=me).json() == {"marked": 1}
    unread = admin.get("/api/inbox?unread=true", headers=me).json()
    assert unread["unread"] == 2 and newest not in [m["id"] for m in unread["messages"]]
    # when it marks all read, then the rest change and nothing is unread
    assert admin.post("/api/inbox/read", json={"all": True}, headers=me).json() == {"marked": 2}
    assert admin.get("/api/inbox", headers=me).json()["unread"] == 0
    # when it deletes one, then it is gone; deleting it again is 404
    assert admin.delete(f"/api/inbox/{newest}", headers=me).status_code == 204
    assert admin.delete(f"/api/inbox/{newest}", headers=me).status_code == 404
    assert len(admin.get("/api/inbox", headers=me).json()["messages"]) == 2
    # and an admin sees the same inbox for support
    seen = admin.get(f"/api/contacts/{ana}/inbox").json()
    assert [m["title"] for m in seen["messages"]] == ["Ana, second", "Ana, first"]


def test_another_contacts_token_can_neither_read_nor_touch_them(app, admin):
    # given Ana's and Bo's messages, and Bo's token
    ana = add_app_user(app, "ana@example.com", "Ana")
    bo = add_app_user(app, "bo@example.com", "Bo")
    send_campaigns(app, ["autumn"])
    anas = next(r.id for r in inbox_rows(app) if r.contact_id == ana)
    bob = as_contact(token_for(admin, bo))
    # then Bo's app lists only Bo's message
    listed = admin.get("/api/inbox", headers=bob).json()["messages"]
    assert [m["title"] for m in listed] == ["Bo, autumn"]
    # and cannot mark or delete Ana's (404, as for an id that does not exist), even among his own ids
    assert admin.post("/api/inbox/read", json={"ids": [anas]}, headers=bob).status_code == 404
    assert admin.post("/api/inbox/read", json={"ids": [listed[0]["id"], anas]}, headers=bob).status_code == 404
    assert admin.delete(f"/api/inbox/{anas}", headers=bob).status_code == 404
    # so Ana's message is untouched, and Bo's own was not marked by the refused request
    rows = {r.contact_id: r for r in inbox_rows(app)}
    assert rows[ana].read_at is None and rows[bo].read_at is None


@pytest.mark.parametrize("kind", ["none", "forged", "expired", "wrong_scope", "api_key", "garbage"])
def test_a_bad_token_is_401(app, admin, admin_key, kind):
    # given Ana with a message
    ana = add_app_user(app, "ana@example.com", "Ana")
    send_campaigns(app, ["autumn"])
    good = token_for(admin, ana)
    secret = app.settings.link_secret
    tokens = {
        "none": None,
        "forged": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        "expired": sign_contact_token(secret, ana, "inbox", 60, now=time.time() - 120),
        "wrong_scope": token_for(admin, ana, "webpush"),
        "api_key": admin_key,  # an admin key is not a contact token
        "garbage": "ct1.x.y",
    }
    headers = {"Authorization": f"Bearer {tokens[kind]}"} if tokens[kind] else {"Authorization": ""}
    # then every inbox route refuses it
    for method, path, body in (("GET", "/api/inbox", None), ("POST", "/api/inbox/read", {"all": True}),
                               ("DELETE", "/api/inbox/1", None)):
        response = admin.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers.get("www-authenticate")
    assert inbox_rows(app)[0].read_at is None


def test_an_erased_contacts_token_finds_nothing(app, admin):
    ana = add_app_user(app, "ana@example.com", "Ana")
    token = as_contact(token_for(admin, ana))
    with app.store.write() as conn:
        app.gdpr.erase(conn, ana)
    assert admin.get("/api/inbox", headers=token).status_code == 404


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/inbox/read", {}),
    ("POST", "/api/inbox/read", {"ids": [1], "all": True}),
    ("POST", "/api/inbox/read", {"ids": [0]}),
    ("POST", "/api/inbox/read", {"ids": list(range(1, 202))}),
    ("POST", "/api/inbox/read", {"all": True, "extra": 1}),
    ("GET", "/api/inbox?limit=0", None),
    ("GET", "/api/inbox?limit=201", None),
    ("GET", "/api/inbox?before=0", None),
])
def test_malformed_requests_are_422(app, admin, method, path, body):
    ana = add_app_user(app, "ana@example.com", "Ana")
    response = admin.request(method, path, json=body, headers=as_contact(token_for(admin, ana)))
    assert response.status_code == 422, response.text


def test_the_admin_view_needs_an_admin_key(app, client):
    ana = add_app_user(app, "ana@example.com", "Ana")
    assert client.get(f"/api/contacts/{ana}/inbox").status_code == 401


def test_a_web_app_on_another_origin_may_call_the_inbox(app, admin):
    # given Ana's token, held by the business's web app on its own origin
    ana = add_app_user(app, "ana@example.com", "Ana")
    me = as_contact(token_for(admin, ana)) | {"Origin": "https://shop.example"}
    # when the browser asks first (preflight), then reads the inbox
    preflight = admin.options("/api/inbox", headers={"Origin": "https://shop.example",
                                                     "Access-Control-Request-Method": "GET",
                                                     "Access-Control-Request-Headers": "authorization"})
    page = admin.get("/api/inbox", headers=me)
    # then both answers let the page read them, without ever allowing cookies
    assert preflight.status_code == 204 and "Authorization" in preflight.headers["access-control-allow-headers"]
    assert page.status_code == 200 and page.headers["access-control-allow-origin"] == "https://shop.example"
    assert "access-control-allow-credentials" not in page.headers
    # and a refused token is readable too, so the app can tell why
    refused = admin.get("/api/inbox", headers={"Authorization": "Bearer ct1.forged.x", "Origin": "https://shop.example"})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "https://shop.example"

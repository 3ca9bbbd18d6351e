"""Registering push devices: FCM and APNs tokens, web push subscriptions, and what is refused."""

# ruff: noqa: F811 - pytest fixtures imported from test_api_support are parameters here

from __future__ import annotations

import base64

import pytest
from delivery_world import add_contact
from sqlalchemy import select
from test_api_support import admin, admin_key, client  # noqa: F401 - fixtures

from clarion.services import devices as device_service
from clarion.store.schema import contacts

FCM = "fcm-token_" + "x" * 140
P256DH = base64.urlsafe_b64encode(b"\x04" + b"\x01" * 64).rstrip(b"=").decode()
AUTH = base64.urlsafe_b64encode(b"\x02" * 16).rstrip(b"=").decode()
SUBSCRIPTION = {"endpoint": "https://updates.push.services.mozilla.com/wpush/v2/abc", "expirationTime": None,
                "keys": {"p256dh": P256DH, "auth": AUTH}}


def test_register_refresh_move_and_forget_devices(app, admin):
    # given two contacts
    ana = add_contact(app, "ana@example.com")
    bob = add_contact(app, "bob@example.com")
    # when Ana registers a phone and a browser
    phone = admin.put(f"/api/contacts/{ana}/devices", json={"kind": "fcm", "token": FCM, "platform": "android"})
    browser = admin.put(f"/api/contacts/{ana}/devices", json={"kind": "webpush", "subscription": SUBSCRIPTION})
    # then both are stored, the subscription with its keys
    assert phone.status_code == browser.status_code == 200, browser.text
    assert browser.json()["token"] == SUBSCRIPTION["endpoint"] and browser.json()["p256dh"] == P256DH
    assert len(admin.get(f"/api/contacts/{ana}/devices").json()["items"]) == 2
    # when a provider declares the phone's token gone, and the app registers it again, then it is live again
    with app.store.write() as conn:
        assert device_service.invalidate(conn, "fcm", FCM)
    assert admin.get(f"/api/contacts/{ana}/devices").json()["items"][0]["invalidated_at"] is not None
    again = admin.put(f"/api/contacts/{ana}/devices", json={"kind": "fcm", "token": FCM})
    assert again.json()["id"] == phone.json()["id"] and again.json()["invalidated_at"] is None
    # when Bob signs in on the same phone, then the token moves to him
    moved = admin.put(f"/api/contacts/{bob}/devices", json={"kind": "fcm", "token": FCM})
    assert moved.json()["contact_id"] == bob and moved.json()["id"] == phone.json()["id"]
    assert [d["kind"] for d in admin.get(f"/api/contacts/{ana}/devices").json()["items"]] == ["webpush"]
    # when Ana forgets her browser, then it is gone; forgetting it twice is 404
    device_id = browser.json()["id"]
    assert admin.delete(f"/api/contacts/{ana}/devices/{device_id}").status_code == 204
    assert admin.delete(f"/api/contacts/{ana}/devices/{device_id}").status_code == 404


@pytest.mark.parametrize(("endpoint", "why"), [
    ("http://push.example.com/x", "https"),
    ("https://127.0.0.1/x", "internal"),
    ("https://localhost:8443/x", "internal"),
    ("https://10.1.2.3/x", "internal"),
    ("https://[::1]/x", "internal"),
    ("https://169.254.169.254/latest/meta-data", "internal"),
    ("https://metadata/x", "internal"),
    ("https://user:pw@push.example.com/x", "credentials"),
])
def test_web_push_endpoints_that_could_reach_inside_are_refused(app, admin, endpoint, why):
    ana = add_contact(app, "ana@example.com")
    response = admin.put(f"/api/contacts/{ana}/devices",
                         json={"kind": "webpush", "subscription": {**SUBSCRIPTION, "endpoint": endpoint}})
    assert response.status_code == 422 and why in response.json()["reason"]


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "apns", "token": "not-hex"}, "token"),
    ({"kind": "fcm", "token": "short"}, "token"),
    ({"kind": "fcm"}, "token"),
    ({"kind": "webpush"}, "subscription"),
    ({"kind": "webpush", "subscription": {**SUBSCRIPTION, "keys": {"p256dh": "AAAA", "auth": AUTH}}}, "keys.p256dh"),
    ({"kind": "webpush", "subscription": {**SUBSCRIPTION, "keys": {"p256dh": P256DH, "auth": "!!"}}}, "keys.auth"),
])
def test_malformed_devices_are_refused_with_the_field_named(app, admin, body, field):
    ana = add_contact(app, "ana@example.com")
    response = admin.put(f"/api/contacts/{ana}/devices", json=body)
    assert response.status_code == 422 and response.json()["field"] == field, response.text


def test_an_unknown_contact_is_404_and_a_device_makes_push_reachable(app, admin):
    assert admin.put("/api/contacts/999/devices", json={"kind": "fcm", "token": FCM}).status_code == 404
    ana = add_contact(app, "ana@example.com")
    admin.put(f"/api/contacts/{ana}/devices", json={"kind": "apns", "token": "AB" * 32})
    from clarion.segments.reachable import has_address

    with app.store.read() as conn:
        reachable = conn.execute(select(contacts.c.id).where(has_address("push"))).scalars().all()
        stored = device_service.list_for(conn, ana)
    assert reachable == [ana] and stored[0]["token"] == "ab" * 32  # APNs tokens are stored lower-case

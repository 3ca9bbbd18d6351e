"""Consent, topics (double opt-in) and the suppression list through the REST API."""

# ruff: noqa: F811 - pytest fixtures imported from test_api_support are parameters here

from __future__ import annotations

from test_api_support import admin, admin_key, client  # noqa: F401 - fixtures


def _contact(admin, email="c@example.com") -> int:
    return admin.post("/api/contacts", json={"email": email}).json()["id"]


def test_opt_in_then_out_is_in_state_and_ledger(admin):
    # given a contact
    contact_id = _contact(admin)
    url = f"/api/contacts/{contact_id}/consent"
    # when they opt in to email with proof, then out
    opted_in = admin.post(url, json={"channel": "email", "status": "opted_in", "source": "signup_form",
                                     "proof": {"form": "footer", "text_version": "v3"}})
    opted_out = admin.post(url, json={"channel": "EMAIL", "status": "opted_out",
                                      "source": "unsubscribe_link"})
    # then the state is the latest and the ledger keeps both, with their proof
    assert opted_in.status_code == 201 and opted_in.json()["status"] == "opted_in"
    assert opted_out.status_code == 201
    consent = admin.get(url).json()
    assert consent["state"] == [{"channel": "email", "topic": "*", "status": "opted_out"}]
    assert [row["status"] for row in consent["ledger"]] == ["opted_in", "opted_out"]
    assert consent["ledger"][0]["proof"] == {"form": "footer", "text_version": "v3"}


def test_double_opt_in_topic_is_pending_until_confirmed(admin):
    # given a double opt-in topic and a contact
    topic = admin.post("/api/topics", json={"key": "newsletter", "name": "Newsletter", "double_opt_in": True})
    assert topic.status_code == 201 and topic.json()["double_opt_in"] is True
    assert [t["key"] for t in admin.get("/api/topics").json()["items"]] == ["newsletter"]
    contact_id = _contact(admin)
    url = f"/api/contacts/{contact_id}/consent"
    # when the contact opts in
    pending = admin.post(url, json={"channel": "email", "topic": "newsletter", "status": "opted_in"})
    # then the consent waits for confirmation
    assert pending.json()["status"] == "pending_confirmation"
    assert admin.get(url).json()["state"][0]["status"] == "pending_confirmation"
    # and when they confirm, it is given
    confirmed = admin.post(f"{url}/confirm", json={"channel": "email", "topic": "newsletter",
                                                   "source": "confirm_link", "proof": {"ip": "10.1.2.3"}})
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "opted_in"
    consent = admin.get(url).json()
    assert consent["state"] == [{"channel": "email", "topic": "newsletter", "status": "opted_in"}]
    assert consent["ledger"][-1]["proof"]["confirmed_at"]
    # and confirming again has nothing to confirm
    again = admin.post(f"{url}/confirm", json={"channel": "email", "topic": "newsletter"})
    assert again.status_code == 409


def test_consent_input_errors(admin):
    contact_id = _contact(admin)
    url = f"/api/contacts/{contact_id}/consent"
    assert admin.post(url, json={"channel": "pigeon", "status": "opted_in"}).json()["field"] == "channel"
    assert admin.post(url, json={"channel": "sms", "status": "maybe"}).json()["field"] == "status"
    unknown_topic = {"channel": "sms", "status": "opted_in", "topic": "nope"}
    assert admin.post(url, json=unknown_topic).json()["field"] == "topic"
    assert admin.post(url, json={"channel": "sms", "status": "opted_in", "proof": {"mood": "good"}}).json()[
        "field"] == "proof"
    sms = {"channel": "sms", "status": "opted_in"}
    assert admin.post("/api/contacts/999/consent", json=sms).status_code == 404
    assert admin.get("/api/contacts/999/consent").status_code == 404


def test_duplicate_topic_is_409(admin):
    assert admin.post("/api/topics", json={"key": "promo"}).status_code == 201
    assert admin.post("/api/topics", json={"key": "promo"}).status_code == 409


def test_suppressions_add_list_lift(admin):
    # given two suppressed addresses
    email = admin.post("/api/suppressions", json={"email": "Bounce@Example.com", "reason": "hard_bounce"})
    phone = admin.post("/api/suppressions",
                       json={"phone": "+1 415 555 0100", "reason": "complaint", "note": "STOP"})
    assert email.status_code == 201 and email.json()["address"] == "bounce@example.com"
    assert phone.json()["address"] == "+14155550100"
    # when the list is read
    listed = admin.get("/api/suppressions").json()
    only_phones = admin.get("/api/suppressions", params={"kind": "phone"}).json()
    # then both are there, filterable
    assert listed["total"] == 2
    assert [s["reason"] for s in only_phones["items"]] == ["complaint"]
    # and when one is lifted, it is gone
    assert admin.delete("/api/suppressions", params={"email": "bounce@example.com"}).status_code == 204
    assert admin.get("/api/suppressions", params={"email": "bounce@example.com"}).json()["items"] == []
    assert admin.delete("/api/suppressions", params={"email": "bounce@example.com"}).status_code == 404


def test_suppression_input_errors(admin):
    assert admin.post("/api/suppressions", json={"email": "x@example.com", "reason": "erased"}).json()[
        "field"] == "reason"
    assert admin.post("/api/suppressions", json={}).status_code == 422
    assert admin.post("/api/suppressions", json={"email": "bad"}).json()["field"] == "email"
    assert admin.get("/api/suppressions", params={"kind": "fax"}).json()["field"] == "kind"

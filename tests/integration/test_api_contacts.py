"""The native REST API for contacts and events, and GDPR export/erase."""

# ruff: noqa: F811 - pytest fixtures imported from test_api_support are parameters here

from __future__ import annotations

from test_api_support import admin, admin_key, client, ingest_key, write_key  # noqa: F401 - fixtures


def _create(admin, **profile):
    response = admin.post("/api/contacts", json=profile)
    assert response.status_code == 200, response.text
    return response.json()


def test_create_read_update_delete(admin):
    # given a new contact created with a snake_case profile
    created = _create(admin, external_id="c-1", email="Dee@Example.com", first_name="Dee", country="France",
                      birthday="1990-02-28", attributes={"tier": "gold"},
                      custom_dates={"renewal_date": "2025-01-31"})
    assert created["email"] == "dee@example.com" and created["country"] == "FR"
    assert created["timezone"] == "Europe/Paris"
    assert created["birthday"] == "1990-02-28"
    assert created["created_at"].startswith("20") and "T" in created["created_at"]
    # when it is read, patched and read again
    contact_id = created["id"]
    assert admin.get(f"/api/contacts/{contact_id}").json()["external_id"] == "c-1"
    patched = admin.patch(f"/api/contacts/{contact_id}",
                          json={"last_name": "Ray", "attributes": {"vip": True}})
    # then the change is merged into the profile
    assert patched.status_code == 200
    assert patched.json()["last_name"] == "Ray" and patched.json()["first_name"] == "Dee"
    assert patched.json()["attributes"] == {"tier": "gold", "vip": True}
    # and when it is deleted, it is gone
    assert admin.delete(f"/api/contacts/{contact_id}").status_code == 204
    assert admin.get(f"/api/contacts/{contact_id}").status_code == 404
    assert admin.delete(f"/api/contacts/{contact_id}").status_code == 404


def test_post_again_identifies_the_same_contact(admin):
    first = _create(admin, email="eve@example.com")
    second = _create(admin, email="EVE@example.com", first_name="Eve")
    assert first["id"] == second["id"] and second["first_name"] == "Eve"


def test_post_with_an_anonymous_id_merges_the_visitor(admin, client, ingest_key):
    # given an anonymous visitor who did something
    client.post("/v1/track", json={"anonymousId": "v-1", "event": "Viewed"}, auth=write_key(ingest_key))
    # when the admin API identifies them
    contact = _create(admin, external_id="c-2", anonymous_id="v-1")
    # then the visitor's events are theirs
    assert contact["aggregates"]["event_count"] == 1
    assert {"kind": "anonymous_id", "value": "v-1"} in contact["identities"]


def test_patch_to_an_address_of_someone_else_is_409(admin):
    _create(admin, email="a@example.com")
    other = _create(admin, email="b@example.com")
    response = admin.patch(f"/api/contacts/{other['id']}", json={"email": "a@example.com"})
    assert response.status_code == 409
    assert response.json()["error"] == "conflict"


def test_search_and_lookup(admin):
    # given three contacts
    _create(admin, external_id="s-1", email="anna@example.com", country="FR")
    _create(admin, external_id="s-2", email="annie@example.com", country="DE")
    _create(admin, external_id="s-3", email="bob@example.com", phone="+1 415 555 0100", country="FR")
    # when they are searched
    page = admin.get("/api/contacts", params={"q": "ann", "limit": 1}).json()
    french = admin.get("/api/contacts", params={"country": "france"}).json()
    # then total and page are given
    assert page["total"] == 2 and len(page["items"]) == 1
    assert {c["external_id"] for c in french["items"]} == {"s-1", "s-3"}
    # and a look-up normalises what it is given
    def lookup(**params):
        return admin.get("/api/contacts/lookup", params=params)

    assert lookup(email="ANNA@example.com").json()["external_id"] == "s-1"
    assert lookup(phone="(415) 555-0100").json()["external_id"] == "s-3"
    assert lookup(external_id="s-2").json()["email"] == "annie@example.com"
    assert admin.get("/api/contacts/lookup", params={"email": "nobody@example.com"}).status_code == 404
    assert admin.get("/api/contacts/lookup").status_code == 422


def test_gdpr_export_then_erase_then_reidentify_is_gone(admin, client, ingest_key):
    # given a contact with events and consent
    contact = _create(admin, external_id="g-1", email="gdpr@example.com")
    client.post("/v1/track", json={"userId": "g-1", "event": "Order Completed", "properties": {"revenue": 3}},
                auth=write_key(ingest_key))
    admin.post(f"/api/contacts/{contact['id']}/consent",
               json={"channel": "email", "status": "opted_in", "proof": {"form": "footer", "ip": "10.0.0.1"}})
    # when everything is exported
    export = admin.get(f"/api/contacts/{contact['id']}/export")
    # then the export holds the profile, events and consent
    assert export.status_code == 200
    data = export.json()
    assert data["profile"]["email"] == "gdpr@example.com"
    assert [e["name"] for e in data["events"]] == ["Order Completed"]
    assert data["consent"] == [{"channel": "email", "topic": "*", "status": "opted_in"}]
    # and when the contact is erased
    erased = admin.post(f"/api/contacts/{contact['id']}/erase")
    assert erased.status_code == 200 and erased.json()["events"] == 1
    assert admin.get(f"/api/contacts/{contact['id']}").status_code == 404
    # then the same email or user id cannot bring them back, by either API
    assert admin.post("/api/contacts", json={"email": "gdpr@example.com"}).status_code == 410
    identify = client.post("/v1/identify", json={"userId": "new", "traits": {"email": "GDPR@example.com"}},
                           auth=write_key(ingest_key))
    assert identify.status_code == 410 and identify.json()["error"] == "erased"
    assert client.post("/v1/identify", json={"userId": "g-1"}, auth=write_key(ingest_key)).status_code == 410
    # and the address stays suppressed, as a hash only
    [entry] = admin.get("/api/suppressions", params={"email": "gdpr@example.com"}).json()["items"]
    assert entry["reason"] == "erased" and entry["address"] is None


def test_events_list_and_native_track(admin):
    # given a contact
    contact = _create(admin, email="ev@example.com")
    # when events are recorded by contact id and by email, one of them twice
    first = admin.post("/api/events", json={"contact_id": contact["id"], "name": "Order Completed",
                                            "properties": {"total": 12.5}, "message_id": "n-1",
                                            "occurred_at": "2024-05-01T12:00:00Z"})
    replay = admin.post("/api/events", json={"contact_id": contact["id"], "name": "Order Completed",
                                             "message_id": "n-1"})
    by_email = admin.post("/api/events", json={"email": "EV@example.com", "name": "Newsletter Opened",
                                               "occurred_at": "2024-05-02T08:00:00+02:00"})
    # then the replay is recognised and the list is newest first
    assert (first.status_code, replay.status_code, by_email.status_code) == (201, 200, 201)
    assert replay.json()["duplicate"] is True
    assert by_email.json()["contact_id"] == contact["id"]
    listed = admin.get("/api/events", params={"contact_id": contact["id"]}).json()
    assert listed["total"] == 2
    assert [e["name"] for e in listed["items"]] == ["Newsletter Opened", "Order Completed"]
    assert listed["items"][1]["revenue"] == 12.5
    assert listed["items"][0]["occurred_at"] == "2024-05-02T06:00:00Z"
    # and filters apply
    since = admin.get("/api/events", params={"since": "2024-05-02T00:00:00Z"}).json()
    assert [e["name"] for e in since["items"]] == ["Newsletter Opened"]
    named = admin.get("/api/events", params={"name": "Order Completed"}).json()
    assert named["total"] == 1
    aggregates = admin.get(f"/api/contacts/{contact['id']}").json()["aggregates"]
    assert aggregates["event_count"] == 2 and aggregates["revenue_total"] == 12.5


def test_event_for_an_unknown_contact_id_is_404(admin):
    assert admin.post("/api/events", json={"contact_id": 999, "name": "E"}).status_code == 404

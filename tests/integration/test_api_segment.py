"""The Segment-compatible /v1 endpoints, on both stores."""

# ruff: noqa: F811 - pytest fixtures imported from test_api_support are parameters here

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import orjson
from test_api_support import (  # noqa: F401 - fixtures
    admin_key,
    client,
    contact_of,
    events_of,
    ingest_key,
    write_key,
)

from clarion.services.clock import utcnow


def test_identify_creates_a_contact_with_normalised_traits(app, client, ingest_key):
    # given an identify call with reserved and custom traits
    body = {"userId": "u-1", "traits": {"email": " Ann@Example.COM ", "firstName": "Ann",
                                        "phone": "+33 6 12 34 56 78", "plan": "pro"}}
    # when it is posted with the write key
    response = client.post("/v1/identify", json=body, auth=write_key(ingest_key))
    # then Segment's answer comes back and the contact holds the normalised profile
    assert response.status_code == 200
    assert response.json() == {"success": True}
    contact = contact_of(app, "external_id", "u-1")
    assert contact["email"] == "ann@example.com"
    assert contact["first_name"] == "Ann"
    assert contact["phone"] == "+33612345678"
    assert contact["timezone"] == "Europe/Paris"
    assert contact["attributes"] == {"plan": "pro"}


def test_identify_again_updates_the_same_contact(app, client, ingest_key):
    # given a known user
    client.post("/v1/identify", json={"userId": "u-1", "traits": {"first_name": "Ann"}},
                auth=write_key(ingest_key))
    # when they are identified again with new traits
    client.post("/v1/identify", json={"userId": "u-1", "traits": {"last_name": "Lee", "plan": "free"}},
                auth=write_key(ingest_key))
    # then one contact holds both
    contact = contact_of(app, "external_id", "u-1")
    assert (contact["first_name"], contact["last_name"]) == ("Ann", "Lee")
    assert contact["attributes"] == {"plan": "free"}


def test_track_stores_the_event_with_its_timestamp_and_purchase(app, client, ingest_key):
    # given an Order Completed event with an explicit timestamp
    body = {"userId": "u-2", "event": "Order Completed", "messageId": "m-1",
            "timestamp": "2024-03-01T10:00:00+01:00", "properties": {"revenue": "19.90", "currency": "eur"}}
    # when it is tracked
    response = client.post("/v1/track", json=body, auth=write_key(ingest_key))
    # then the event is stored, times in UTC, and the aggregates count the order
    assert response.status_code == 200 and response.json() == {"success": True}
    contact = contact_of(app, "external_id", "u-2")
    [event] = events_of(app, contact["id"])
    assert event["name"] == "Order Completed"
    assert event["message_id"] == "m-1"
    assert event["occurred_at"] == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    assert (event["revenue"], event["currency"]) == (19.9, "EUR")
    assert contact["aggregates"]["order_count"] == 1


def test_track_without_message_id_or_timestamp_gets_a_uuid_and_now(app, client, ingest_key):
    # given a bare track call
    before = utcnow()
    # when it is tracked
    client.post("/v1/track", json={"anonymousId": "a-1", "event": "Signed Up"}, auth=write_key(ingest_key))
    # then the message id is generated and the time is the time received
    [event] = events_of(app, contact_of(app, "anonymous_id", "a-1")["id"])
    assert len(event["message_id"]) == 36
    assert before <= event["occurred_at"] <= utcnow()
    assert event["received_at"] == event["occurred_at"]


def test_original_timestamp_is_corrected_for_the_senders_clock_skew(app, client, ingest_key):
    # given a device whose clock is one hour ahead: it sent at its 13:00 an event of its 12:59
    now = utcnow()
    device_now = now + timedelta(hours=1)
    original = device_now - timedelta(minutes=1)
    body = {"userId": "u-3", "event": "Opened", "originalTimestamp": original.isoformat(),
            "sentAt": device_now.isoformat()}
    # when it is tracked
    client.post("/v1/track", json=body, auth=write_key(ingest_key))
    # then the event is placed one minute before it was received
    [event] = events_of(app, contact_of(app, "external_id", "u-3")["id"])
    assert abs(event["occurred_at"] - (now - timedelta(minutes=1))) < timedelta(seconds=30)


def test_same_message_id_twice_is_counted_once(app, client, ingest_key):
    # given a track call
    body = {"userId": "u-4", "event": "Order Completed", "messageId": "dup-1", "properties": {"revenue": 10}}
    # when the SDK retries it, once alone and once inside a batch
    first = client.post("/v1/track", json=body, auth=write_key(ingest_key))
    second = client.post("/v1/track", json=body, auth=write_key(ingest_key))
    third = client.post("/v1/batch", json={"batch": [{**body, "type": "track"}]}, auth=write_key(ingest_key))
    # then every call succeeds but the event and its revenue are counted once
    assert [r.status_code for r in (first, second, third)] == [200, 200, 200]
    contact = contact_of(app, "external_id", "u-4")
    assert len(events_of(app, contact["id"])) == 1
    assert contact["aggregates"]["event_count"] == 1
    assert contact["aggregates"]["revenue_total"] == 10.0


def test_batch_merges_an_anonymous_visitor_into_the_identified_user(app, client, ingest_key):
    # given a visitor tracked anonymously, and a user already known by their user id
    client.post("/v1/identify", json={"userId": "u-5", "traits": {"email": "bo@example.com"}},
                auth=write_key(ingest_key))
    batch = [
        {"type": "track", "anonymousId": "anon-5", "event": "Product Viewed", "messageId": "b-1"},
        {"type": "page", "anonymousId": "anon-5", "name": "Pricing", "properties": {"path": "/pricing"},
         "messageId": "b-2"},
        {"type": "identify", "anonymousId": "anon-5", "userId": "u-5", "traits": {"first_name": "Bo"},
         "messageId": "b-3"},
        {"type": "track", "userId": "u-5", "event": "Order Completed", "properties": {"revenue": 5},
         "messageId": "b-4"},
        {"type": "screen", "userId": "u-5", "name": "Cart", "messageId": "b-5"},
        {"type": "group", "userId": "u-5", "groupId": "acme", "messageId": "b-6"},
        {"type": "alias", "previousId": "anon-5", "userId": "u-5", "messageId": "b-7"},
    ]
    # when the visitor logs in, all in one batch
    response = client.post("/v1/batch", json={"batch": batch, "sentAt": utcnow().isoformat()},
                           auth=write_key(ingest_key))
    # then one contact holds everything; page and screen are events, group and alias are ignored
    assert response.status_code == 200 and response.json() == {"success": True, "skipped": 0}
    contact = contact_of(app, "anonymous_id", "anon-5")
    assert contact["external_id"] == "u-5" and contact["first_name"] == "Bo"
    assert contact["email"] == "bo@example.com"
    events = {e["name"]: e for e in events_of(app, contact["id"])}
    assert set(events) == {"Product Viewed", "Page Viewed", "Order Completed", "Screen Viewed"}
    assert events["Page Viewed"]["properties"] == {"path": "/pricing", "name": "Pricing"}
    assert events["Screen Viewed"]["properties"] == {"name": "Cart"}
    assert contact["aggregates"]["event_count"] == 4


def test_import_is_an_alias_of_batch(app, client, ingest_key):
    # given a batch posted to /v1/import
    batch = [{"type": "track", "userId": "u-6", "event": "Imported", "timestamp": "2020-01-01T00:00:00Z"}]
    # when it is sent
    response = client.post("/v1/import", json={"batch": batch}, auth=write_key(ingest_key))
    # then it is handled like /v1/batch
    assert response.status_code == 200
    [event] = events_of(app, contact_of(app, "external_id", "u-6")["id"])
    assert event["occurred_at"] == datetime(2020, 1, 1, tzinfo=UTC)


def test_gzip_body_is_accepted(app, client, ingest_key):
    # given a gzip-compressed batch, as the SDKs send with gzip=True
    payload = gzip.compress(orjson.dumps({"batch": [{"type": "track", "userId": "u-7", "event": "Zipped"}]}))
    # when it is posted with Content-Encoding: gzip
    response = client.post("/v1/batch", content=payload, auth=write_key(ingest_key),
                           headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    # then it is stored
    assert response.status_code == 200
    assert [e["name"] for e in events_of(app, contact_of(app, "external_id", "u-7")["id"])] == ["Zipped"]


def test_batch_skips_an_erased_sender_and_keeps_the_others(app, client, ingest_key):
    # given a user who was erased
    client.post("/v1/identify", json={"userId": "gone"}, auth=write_key(ingest_key))
    with app.store.write() as conn:
        app.gdpr.erase(conn, app.contacts.find(conn, "external_id", "gone"))
    batch = [{"type": "track", "userId": "gone", "event": "Came Back"},
             {"type": "track", "userId": "u-8", "event": "Stayed"},
             {"type": "identify", "userId": "gone", "traits": {"plan": "pro"}}]
    # when a batch mixes their messages with another user's
    response = client.post("/v1/batch", json={"batch": batch}, auth=write_key(ingest_key))
    # then the erased sender's messages are skipped and the rest is stored
    assert response.status_code == 200 and response.json() == {"success": True, "skipped": 2}
    assert [e["name"] for e in events_of(app, contact_of(app, "external_id", "u-8")["id"])] == ["Stayed"]


def test_single_call_for_an_erased_sender_is_gone(app, client, ingest_key):
    # given an erased user
    client.post("/v1/identify", json={"userId": "gone"}, auth=write_key(ingest_key))
    with app.store.write() as conn:
        app.gdpr.erase(conn, app.contacts.find(conn, "external_id", "gone"))
    # when a track call names them
    response = client.post("/v1/track", json={"userId": "gone", "event": "Back"}, auth=write_key(ingest_key))
    # then it is refused with 410
    assert response.status_code == 410
    assert response.json()["error"] == "erased"


def test_admin_key_may_ingest_too(app, client, admin_key):
    # given an admin key
    # when it is used as a write key
    response = client.post("/v1/track", json={"userId": "u-9", "event": "E"}, auth=write_key(admin_key))
    # then it is accepted
    assert response.status_code == 200

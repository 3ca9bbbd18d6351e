"""Input the API probe found answered 500 or stored without bound: each is now a 4xx naming the limit, the same
on the REST API and the Segment API, and on both stores."""

# ruff: noqa: F811 - pytest fixtures imported from test_api_support are parameters here

from __future__ import annotations

import base64

import pytest
from delivery_world import add_contact
from sqlalchemy import func, select
from test_api_support import admin, admin_key, client, events_of, ingest_key, write_key  # noqa: F401 - fixtures

from clarion.store.schema import contacts, events

BIG = 10**30  # a 31-digit integer: beyond 64 bits, well within a double
P256DH = base64.urlsafe_b64encode(b"\x04" + b"\x01" * 64).rstrip(b"=").decode()  # a subscription's keys
AUTH = base64.urlsafe_b64encode(b"\x02" * 16).rstrip(b"=").decode()


def count(app, table) -> int:
    with app.store.read() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


@pytest.fixture
def v1(client, ingest_key):
    def post(path, body):
        return client.post(path, json=body, auth=write_key(ingest_key))

    return post


def test_integers_beyond_64_bits_are_stored_alike_by_both_apis(app, admin, v1):
    # given the same Order Completed event with 31-digit numbers, sent to the REST API and to /v1
    properties = {"revenue": BIG, "big": BIG, "nested": {"ids": [2**70, 5]}, "currency": "EUR"}
    rest = admin.post("/api/events", json={"name": "Order Completed", "external_id": "u1", "properties": properties})
    segment = v1("/v1/track", {"userId": "u2", "event": "Order Completed", "properties": properties})
    # then both are accepted, never a 500
    assert rest.status_code == 201, rest.text
    assert segment.status_code == 200, segment.text
    # and both stored the numbers the same way: as the nearest double, as JavaScript reads them (PostgreSQL's
    # JSONB gives a whole number back as an integer of that value, SQLite as a double)
    stored = [events_of(app, admin.get("/api/contacts/lookup", params={"external_id": user}).json()["id"])[0]
              for user in ("u1", "u2")]
    for event in stored:
        properties = event["properties"]
        assert float(properties["big"]) == float(properties["revenue"]) == 1e30
        assert [float(n) for n in properties["nested"]["ids"]] == [float(2**70), 5.0]
        assert event["revenue"] == 1e30
    assert stored[0]["properties"] == stored[1]["properties"]


def test_a_number_beyond_a_double_is_refused_by_both_apis_and_nothing_is_stored(app, admin, v1):
    # when an event carries a 400-digit integer
    rest = admin.post("/api/events", json={"name": "E", "external_id": "u1", "properties": {"huge": 10**400}})
    revenue = admin.post("/api/events", json={"name": "Order Completed", "external_id": "u1",
                                              "properties": {"revenue": 10**400}})
    segment = v1("/v1/track", {"userId": "u2", "event": "E", "properties": {"huge": 10**400}})
    # then each is a 4xx (the REST API names the property; /v1's JSON parser refuses the number itself)
    assert rest.status_code == 422 and rest.json()["field"] == "properties.huge"
    assert revenue.status_code == 422 and revenue.json()["field"].startswith("properties.revenue")
    assert segment.status_code == 400 and segment.json()["error"] == "malformed_json"
    assert count(app, events) == count(app, contacts) == 0


def test_contact_attributes_beyond_64_bits_are_stored_alike_by_both_apis(app, admin, v1):
    rest = admin.post("/api/contacts", json={"external_id": "u1", "attributes": {"points": BIG}})
    segment = v1("/v1/identify", {"userId": "u2", "traits": {"points": BIG}})
    assert rest.status_code == 200 and segment.status_code == 200
    points = [admin.get("/api/contacts/lookup", params={"external_id": user}).json()["attributes"]["points"]
              for user in ("u1", "u2")]
    assert points[0] == points[1] and float(points[0]) == 1e30


def test_a_search_longer_than_any_identifier_is_refused(app, admin):
    # given a contact
    add_contact(app, "ana@example.com")
    # when the search text is 50,001 characters (SQLite refused the LIKE pattern: a 500)
    long = admin.get("/api/contacts", params={"q": "a" * 50_001})
    # then it is a 422 naming q and the bound; a search at the bound still runs
    assert long.status_code == 422 and long.json()["field"] == "q"
    assert "320" in long.json()["reason"]
    at_bound = admin.get("/api/contacts", params={"q": "%_" * 160})
    assert at_bound.status_code == 200 and at_bound.json()["total"] == 0
    assert admin.get("/api/contacts", params={"q": "ana@"}).json()["total"] == 1


@pytest.mark.parametrize(("attributes", "reason"), [
    ({f"a{n}": n for n in range(501)}, "at most 500 attribute names are allowed, not 501"),
    ({"x" * 101: 1}, "must be 1..100 characters"),
    ({"a": "x" * 40_000, "b": "y" * 30_000}, "bytes of JSON is over the 65,536 allowed"),
])
def test_oversized_attributes_are_refused_naming_the_limit(app, admin, attributes, reason):
    # when a contact is created with too many, too long or too large attributes
    response = admin.post("/api/contacts", json={"external_id": "u1", "attributes": attributes})
    # then 422 names the limit and nothing is stored
    assert response.status_code == 422
    assert response.json()["field"] == "attributes" and reason in response.json()["reason"]
    assert count(app, contacts) == 0


def test_attributes_cannot_pile_up_change_by_change(app, admin):
    # given a contact with 300 attributes
    first = {f"a{n}": n for n in range(300)}
    contact = admin.post("/api/contacts", json={"external_id": "u1", "attributes": first}).json()
    # when 300 more are added, within the limit for one change but not for the profile
    more = admin.patch(f"/api/contacts/{contact['id']}", json={"attributes": {f"b{n}": n for n in range(300)}})
    # then the change is refused and the stored attributes are as they were
    assert more.status_code == 422 and "not 600" in more.json()["reason"]
    assert admin.get(f"/api/contacts/{contact['id']}").json()["attributes"] == first


def test_segment_traits_have_the_same_limits(app, v1):
    response = v1("/v1/identify", {"userId": "u1", "traits": {f"t{n}": n for n in range(501)}})
    assert response.status_code == 422 and "at most 500 attribute names" in response.json()["reason"]
    assert count(app, contacts) == 0


@pytest.mark.parametrize(("properties", "reason"), [
    ({f"p{n}": n for n in range(256)}, "at most 255 property names are allowed, not 256"),
    ({"p" * 101: 1}, "must be 1..100 characters"),
    ({"blob": "x" * 33_000}, "bytes of JSON is over the 32,768 allowed (Segment's limit for one call)"),
])
def test_oversized_event_properties_are_refused_by_both_apis(app, admin, v1, properties, reason):
    # when the same properties are sent as an event to each API, and in a /v1 batch after a good message
    rest = admin.post("/api/events", json={"name": "E", "external_id": "u1", "properties": properties})
    batch = v1("/v1/batch", {"batch": [{"type": "track", "userId": "u2", "event": "E"},
                                       {"type": "track", "userId": "u2", "event": "E", "properties": properties}]})
    # then each is a 422 naming the limit (and, in the batch, the message), and nothing at all is stored
    assert rest.status_code == 422 and rest.json()["field"] == "properties"
    assert reason in rest.json()["reason"]
    if batch.status_code == 413:  # the 33 KB blob is over /v1's 32 KB per message before any other check
        assert "batch[1]" in batch.json()["message"]
    else:
        assert batch.status_code == 422 and batch.json()["field"] == "batch[1].properties"
        assert reason in batch.json()["reason"]
    assert count(app, events) == count(app, contacts) == 0


@pytest.mark.parametrize("host", ["127.1", "0177.0.0.1", "0x7f.1", "2130706433", "192.0.0.192", "0xa9.0xfe.0xa9.0xfe"])
def test_device_registration_refuses_every_spelling_of_an_internal_address(app, admin, host):
    # given a contact whose browser subscription names an internal address in another spelling
    ana = add_contact(app, "ana@example.com")
    subscription = {"endpoint": f"https://{host}/wpush/v2/x",
                    "keys": {"p256dh": P256DH, "auth": AUTH}}
    # when it is registered
    response = admin.put(f"/api/contacts/{ana}/devices", json={"kind": "webpush", "subscription": subscription})
    # then it is refused as internal, and no device is stored
    assert response.status_code == 422 and "internal" in response.json()["reason"]
    assert admin.get(f"/api/contacts/{ana}/devices").json()["items"] == []


def test_a_template_with_a_slow_filter_call_fails_its_preview_at_once(app, admin):
    # given the template the probe saved: one wordwrap call that ran for 24 s of CPU
    ana = add_contact(app, "ana@example.com")
    document = {"default_locale": "en", "default": {"sms": {"text": "{{ ('a'*999999)|wordwrap(1, true, '')|length }}"}}}
    assert admin.put("/api/templates", json={"name": "slow", "document": document}).status_code == 200
    # when it is previewed
    preview = admin.get(f"/api/templates/slow/preview/{ana}")
    # then the preview is refused by the bound on wordwrap's input, before the call runs
    assert preview.status_code == 400
    assert "wordwrap takes at most 65,536 characters, not 999,999" in preview.json()["message"]

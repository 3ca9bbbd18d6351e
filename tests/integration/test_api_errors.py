"""Bad input is a 4xx naming what was wrong, never a 500."""

# ruff: noqa: F811 - pytest fixtures imported from test_api_support are parameters here

from __future__ import annotations

import pytest
from test_api_support import admin, admin_key, client, ingest_key, write_key  # noqa: F401 - fixtures


@pytest.fixture
def post_v1(client, ingest_key):
    def post(path, **kwargs):
        return client.post(path, auth=write_key(ingest_key), **kwargs)

    return post


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/identify", {"userId": "u", "traits": {"email": "not-an-email"}}, "traits.email"),
    ("/v1/identify", {"userId": "u", "traits": {"phone": "12"}}, "traits.phone"),
    ("/v1/identify", {"userId": "u", "traits": {"birthday": "yesterday"}}, "traits.birthday"),
    ("/v1/identify", {"userId": "u", "traits": "not an object"}, "traits"),
    ("/v1/identify", {"traits": {"plan": "pro"}}, "userId"),
    ("/v1/identify", {"userId": "x" * 256}, "userId"),
    ("/v1/track", {"userId": "u", "event": "E", "timestamp": "last tuesday"}, "timestamp"),
    ("/v1/track", {"userId": "u", "event": "E", "timestamp": "0001-01-01T00:00:00+05:00"}, "timestamp"),
    ("/v1/track", {"userId": "u"}, "event"),
    ("/v1/track", {"userId": "u", "event": "   "}, "event"),
    ("/v1/track", {"userId": "u", "event": "E", "messageId": "m" * 201}, "messageId"),
    ("/v1/track", {"userId": "u", "event": "Order Completed", "properties": {"revenue": "lots"}},
     "properties.revenue"),
    ("/v1/batch", {"batch": [{"type": "track", "userId": "u", "event": "E"},
                             {"type": "track", "userId": "u"}]},
     "batch[1].event"),
    ("/v1/batch", {"batch": [{"userId": "u", "event": "E"}]}, "batch[0].type"),
    ("/v1/batch", {"batch": [{"type": "teleport", "userId": "u"}]}, "batch[0].type"),
    ("/v1/batch", {"batch": [{"type": "identify", "userId": "u", "traits": {"email": "@"}}]},
     "batch[0].traits.email"),
    ("/v1/batch", {"events": []}, "batch"),
])
def test_invalid_field_is_422_with_the_field(app, post_v1, path, body, field):
    # given a call with one bad field
    # when it is posted
    response = post_v1(path, json=body)
    # then the answer names the field, and nothing was written
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_field"
    assert response.json()["field"] == field
    assert response.json()["reason"]
    with app.store.read() as conn:
        assert app.contacts.search(conn)[0] == 0


def test_a_bad_message_rejects_the_whole_batch(app, post_v1):
    # given a batch whose second message is invalid
    batch = [{"type": "track", "userId": "u", "event": "Fine"},
             {"type": "identify", "userId": "u", "traits": {"email": "nope"}}]
    # when it is posted
    response = post_v1("/v1/batch", json={"batch": batch})
    # then nothing of it is stored
    assert response.status_code == 422
    with app.store.read() as conn:
        assert app.events.list(conn)[0] == 0


@pytest.mark.parametrize("content", [b"{not json", b"", b"[1, 2]", b"\"text\"", b'{"a": NaN}',
                                     b"[" * 100 + b"]" * 100, b'{"userId": "u", "event": "a\\u0000b"}'])
def test_malformed_body_is_400(post_v1, content):
    # given a body that is no usable JSON object
    # when it is posted
    response = post_v1("/v1/track", content=content, headers={"Content-Type": "application/json"})
    # then the answer is 400
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_json"


def test_bad_gzip_is_400(post_v1):
    response = post_v1("/v1/batch", content=b"not gzip", headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400


def test_call_over_32_kb_is_413(post_v1):
    # given a track call just over Segment's 32 KB limit
    body = {"userId": "u", "event": "Big", "properties": {"blob": "x" * (32 * 1024)}}
    # when it is posted
    response = post_v1("/v1/track", json=body)
    # then it is refused as too large, with the limit
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert "32 KB" in response.json()["message"]


def test_batch_over_500_kb_is_413(post_v1):
    # given a batch of small messages adding up to more than 500 KB
    message = {"type": "track", "userId": "u", "event": "E", "properties": {"blob": "x" * 20_000}}
    # when it is posted
    response = post_v1("/v1/batch", json={"batch": [message] * 30})
    # then it is refused
    assert response.status_code == 413
    assert "500 KB" in response.json()["message"]


def test_batch_message_over_32_kb_is_413(post_v1):
    message = {"type": "track", "userId": "u", "event": "E", "properties": {"blob": "x" * 40_000}}
    response = post_v1("/v1/batch", json={"batch": [message]})
    assert response.status_code == 413
    assert "batch[0]" in response.json()["message"]


def test_rest_malformed_json_is_400(admin):
    response = admin.post("/api/contacts", content=b"{oops", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_json"


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/contacts", {"email": "nope"}, "email"),
    ("/api/contacts", {"email": "a@example.com", "shoe_size": 44}, "shoe_size"),
    ("/api/contacts", {"external_id": "u", "latitude": 123}, "latitude"),
    ("/api/contacts", {"first_name": "Ann"}, "external_id"),
    ("/api/events", {"email": "a@example.com"}, "name"),
    ("/api/events", {"email": "a@example.com", "name": "E", "occurred_at": "soon"}, "occurred_at"),
    ("/api/events", {"name": "E"}, "contact_id"),
    ("/api/topics", {"key": "*"}, "key"),
])
def test_rest_invalid_field_is_422(admin, path, body, field):
    response = admin.post(path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_rest_query_validation_is_422(admin):
    assert admin.get("/api/contacts?limit=0").json()["field"] == "limit"
    assert admin.get("/api/contacts?country=Atlantis").json()["field"] == "country"
    assert admin.get("/api/events?since=never").json()["field"] == "since"
    assert admin.get("/api/contacts/abc").status_code == 422


def test_unknown_route_is_404_json(admin):
    response = admin.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"

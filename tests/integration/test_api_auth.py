"""API keys: 401 without a live key, 403 with the wrong scope."""

# ruff: noqa: F811 - pytest fixtures imported from test_api_support are parameters here

from __future__ import annotations

import pytest
from test_api_support import admin_key, client, ingest_key, make_key, write_key  # noqa: F401 - fixtures

TRACK = {"userId": "u-1", "event": "E"}


def test_v1_without_credentials_is_401_with_a_challenge(client):
    # given no Authorization header
    # when a track call is posted
    response = client.post("/v1/track", json=TRACK)
    # then it is refused and the client is told how to authenticate
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert "Basic" in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("header", ["Basic bm90LWEta2V5Og==", "Basic !!!not-base64", "Bearer nope",
                                    "Digest x"])
def test_unknown_or_garbled_credentials_are_401(client, header):
    # given credentials that name no key
    # when they are used
    response = client.post("/v1/track", json=TRACK, headers={"Authorization": header})
    # then the answer is 401
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers


def test_a_revoked_key_is_refused_at_once(app, client, ingest_key):
    # given a key that worked
    assert client.post("/v1/track", json=TRACK, auth=write_key(ingest_key)).status_code == 200
    # when it is revoked
    with app.store.write() as conn:
        [record] = [k for k in app.keys.list(conn) if ingest_key.startswith(k.prefix)]
        app.keys.revoke(conn, record.id)
    # then the next request is refused
    assert client.post("/v1/track", json=TRACK, auth=write_key(ingest_key)).status_code == 401


def test_ingest_key_cannot_use_the_rest_api(client, ingest_key):
    # given an ingest key
    # when it calls the admin API, as Bearer or as basic auth
    bearer = client.get("/api/contacts", headers={"Authorization": f"Bearer {ingest_key}"})
    basic = client.get("/api/contacts", auth=write_key(ingest_key))
    # then both are forbidden
    assert bearer.status_code == 403 and basic.status_code == 403
    assert bearer.json()["error"] == "forbidden"


def test_admin_key_works_as_bearer_and_basic(client, admin_key):
    # given an admin key
    # when it calls the REST API both ways
    bearer = client.get("/api/contacts", headers={"Authorization": f"Bearer {admin_key}"})
    basic = client.get("/api/contacts", auth=write_key(admin_key))
    # then both are allowed
    assert bearer.status_code == 200 and basic.status_code == 200


def test_rest_api_without_credentials_is_401(client):
    assert client.get("/api/contacts/1").status_code == 401
    assert client.post("/api/topics", json={"key": "news"}).status_code == 401


def test_key_use_is_recorded(app, client):
    # given a fresh key
    key = make_key(app, "ingest")
    # when it is used
    client.post("/v1/track", json=TRACK, auth=write_key(key))
    # then its last use is recorded
    with app.store.read() as conn:
        [record] = [k for k in app.keys.list(conn) if key.startswith(k.prefix)]
    assert record.last_used_at is not None


def test_docs_and_openapi_need_no_key(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/identify", "/v1/track", "/v1/batch", "/v1/import", "/api/contacts"} <= set(paths)

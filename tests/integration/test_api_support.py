"""Fixtures and helpers shared by the HTTP API tests (imported by the test_api_* modules)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from clarion.api.app import create_app
from clarion.bootstrap import Clarion


def make_key(app: Clarion, scope: str, name: str | None = None) -> str:
    with app.store.write() as conn:
        _record, secret = app.keys.create(conn, name or f"{scope} key", scope)
    return secret


@pytest.fixture
def client(app: Clarion) -> Iterator[TestClient]:
    with TestClient(create_app(app)) as http:
        yield http


@pytest.fixture
def ingest_key(app: Clarion) -> str:
    return make_key(app, "ingest")


@pytest.fixture
def admin_key(app: Clarion) -> str:
    return make_key(app, "admin")


@pytest.fixture
def admin(client: TestClient, admin_key: str) -> TestClient:
    """The client, sending the admin key as a Bearer token."""
    client.headers["Authorization"] = f"Bearer {admin_key}"
    return client


def write_key(key: str) -> tuple[str, str]:
    """httpx basic auth as the Segment SDKs send it: the key as user name, no password."""
    return (key, "")


def contact_of(app: Clarion, kind: str, value: str) -> dict[str, Any]:
    with app.store.read() as conn:
        return app.contacts.get(conn, app.contacts.find(conn, kind, value))


def events_of(app: Clarion, contact_id: int) -> list[dict[str, Any]]:
    with app.store.read() as conn:
        _total, items = app.events.list(conn, contact_id=contact_id)
    return items

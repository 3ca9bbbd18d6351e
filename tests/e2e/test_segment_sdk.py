"""End to end: the real Segment Python SDK against a real uvicorn server running Clarion."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import uvicorn
from segment.analytics import Client

from clarion.api.app import create_app
from clarion.bootstrap import Clarion


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server_url(app: Clarion) -> Iterator[str]:
    port = _free_port()
    config = uvicorn.Config(create_app(app), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30  # seconds: under one unloaded; generous for a loaded CI machine
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            state = "its thread ended" if not thread.is_alive() else "still starting"
            pytest.fail(f"waited 30 s for uvicorn to start; {state}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def write_key(app: Clarion) -> str:
    with app.store.write() as conn:
        _record, secret = app.keys.create(conn, "sdk", "ingest")
    return secret


def _contact(app: Clarion, kind: str, value: str) -> dict:
    with app.store.read() as conn:
        return app.contacts.get(conn, app.contacts.find(conn, kind, value))


def _event_names(app: Clarion, contact_id: int) -> list[str]:
    with app.store.read() as conn:
        _total, items = app.events.list(conn, contact_id=contact_id)
    return sorted(e["name"] for e in items)


@pytest.mark.parametrize("gzip", [False, True])
def test_sdk_in_sync_mode_identifies_and_tracks(app, server_url, write_key, gzip):
    # given the SDK pointed at Clarion, sending each call at once
    errors = []
    analytics = Client(write_key, host=server_url, sync_mode=True, gzip=gzip, max_retries=0,
                       on_error=lambda error, batch: errors.append(error))
    # when a visitor is tracked anonymously, then identified, then buys
    analytics.track(anonymous_id="anon-e2e", event="Product Viewed", properties={"sku": "A-1"})
    analytics.page(anonymous_id="anon-e2e", name="Checkout")
    analytics.identify("user-e2e", {"email": "E2E@example.com", "firstName": "Eli", "plan": "pro"},
                       anonymous_id="anon-e2e")
    analytics.track("user-e2e", "Order Completed", {"order_id": "o-1", "revenue": 42.5, "currency": "usd"},
                    timestamp=datetime(2024, 6, 1, 12, 0, tzinfo=UTC), message_id="sdk-order-1")
    analytics.track("user-e2e", "Order Completed", {"revenue": 42.5}, message_id="sdk-order-1")  # a retry
    analytics.group("user-e2e", "acme")
    # then everything landed on one contact, the replay counted once
    assert errors == []
    contact = _contact(app, "external_id", "user-e2e")
    assert contact["email"] == "e2e@example.com" and contact["first_name"] == "Eli"
    assert contact["attributes"] == {"plan": "pro"}
    assert _contact(app, "anonymous_id", "anon-e2e")["id"] == contact["id"]
    assert _event_names(app, contact["id"]) == ["Order Completed", "Page Viewed", "Product Viewed"]
    assert contact["aggregates"]["order_count"] == 1
    assert contact["aggregates"]["revenue_total"] == 42.5
    assert contact["aggregates"]["last_order_at"] == datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def test_sdk_batches_in_the_background_and_flushes(app, server_url, write_key):
    # given the SDK in its default mode: a queue and a consumer thread posting batches
    errors = []
    analytics = Client(write_key, host=server_url, max_retries=0, upload_size=50,
                       on_error=lambda error, batch: errors.append(error))
    # when many events are queued, then flushed
    for index in range(120):
        analytics.track(f"user-{index % 3}", "Article Read", {"n": index}, message_id=f"bg-{index}")
    analytics.flush()
    analytics.join()
    # then all were stored
    assert errors == []
    counts = [_contact(app, "external_id", f"user-{i}")["aggregates"]["event_count"] for i in range(3)]
    assert counts == [40, 40, 40]


def test_sdk_with_a_wrong_key_reports_an_error(app, server_url):
    # given the SDK with a key Clarion does not know
    errors = []
    analytics = Client("clk_wrong", host=server_url, sync_mode=True, max_retries=0,
                       on_error=lambda error, batch: errors.append(error))
    # when it tracks
    with pytest.raises(Exception) as raised:
        analytics.track("u", "E")
    # then the SDK sees the 401 and nothing is stored
    assert getattr(raised.value, "status", None) == 401
    with app.store.read() as conn:
        assert app.events.list(conn)[0] == 0

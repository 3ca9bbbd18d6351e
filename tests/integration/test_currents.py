"""The engagement stream ("Currents") against a real HTTP receiver on 127.0.0.1: signed batches in id order,
retries with backoff and Retry-After, dead letters and their retry, leases, the SSRF checks, and (PostgreSQL)
rows that commit out of id order."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from typing import Any

import pytest
import typer
from delivery_world import Clock, ScriptedChannel, add_contact, make_campaign, run, worker
from sqlalchemy import select
from typer.testing import CliRunner

from clarion.cli import main as cli_main
from clarion.runners.currents import CurrentsClient, push_once, push_until_idle, retry_dead_letter
from clarion.services import currents
from clarion.services.currents import CurrentsConfig
from clarion.services.timeline import ITEM_KEYS
from clarion.store.schema_delivery import deliveries
from clarion.tracking.engagements import record, touch_of
from threaded_server import PeerHandler, ThreadedPeer

SECRET = "whsec_stream"
NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
TOLERANCE = 300  # seconds: the receiver's replay window, as docs/webhooks-out.md suggests
SIGNATURE = re.compile(r"t=(\d+),v1=([0-9a-f]{64})")


# -- the receiver: the warehouse's endpoint as docs/webhooks-out.md tells it to behave ------------------

@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool


def verifies(secret: str, header: str | None, body: bytes) -> bool:
    """The receiver's check, written from the documentation rather than imported from Clarion."""
    found = SIGNATURE.fullmatch(header or "")
    if found is None or abs(time.time() - int(found[1])) > TOLERANCE:
        return False
    expected = hmac.new(secret.encode(), found[1].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, found[2])


@dataclass
class Receiver(ThreadedPeer):
    """Answers each request with the next of ``answers`` (status, headers), then 200; 401 when the signature
    does not verify. ``batches``: the events of each accepted batch, once per Idempotency-Key."""

    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    _keys: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    thread_name = "currents-receiver"

    def handler(self) -> type[PeerHandler]:
        receiver = self

        class Handler(PeerHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.reply(*receiver.take(self.lower_headers(), self.request_body()))
        return Handler

    def take(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        ok = verifies(SECRET, headers.get("x-clarion-signature"), body)
        with self._lock:
            self.requests.append(Received(headers, body, ok))
            status, extra = self.answers.pop(0) if self.answers else (200, {})
            if not ok:
                return 401, {}, b"signature does not verify"
            if 200 <= status < 300 and headers["idempotency-key"] not in self._keys:
                self._keys.add(headers["idempotency-key"])
                self.batches.append(parse(headers["content-type"], body))
        return status, extra, b"{}"

    def ids(self) -> list[list[int]]:
        return [[item["id"] for item in batch] for batch in self.batches]


def parse(content_type: str, body: bytes) -> list[dict[str, Any]]:
    if content_type == "application/x-ndjson":
        return [json.loads(line) for line in body.decode().splitlines()]
    return json.loads(body)["events"]


# -- the world: emails sent, engagement recorded --------------------------------------------------------

EMAIL = {"default": {"email": {"subject": "Hi", "html": (
    '<p><a href="https://shop.example/sale">Sale</a> <a href="{{ links.unsubscribe }}">Unsubscribe</a></p>')}}}


def sent(app, count: int) -> list[int]:
    """``count`` contacts sent an email at NOW (one ``received`` engagement each): their deliveries."""
    for n in range(count):
        add_contact(app, f"c{n}@example.com")
    make_campaign(app, "spring", template_document=EMAIL, clock=Clock(NOW))
    run(worker(app, ScriptedChannel(), clock=Clock(NOW)))
    with app.store.read() as conn:
        return list(conn.execute(select(deliveries.c.id).order_by(deliveries.c.id)).scalars())


def engage(app, delivery: int, action: str, **details: Any) -> None:
    with app.store.write() as conn:
        assert record(conn, touch_of(conn, delivery), action, NOW + timedelta(minutes=5), **details)


def config(receiver: Receiver, **changes: Any) -> CurrentsConfig:
    values = {"url": f"{receiver.base_url}/events", "secret": SECRET, "allow_private": True,
              "retry_base_seconds": 0.0, **changes}
    return CurrentsConfig(**values)


def push(app, settings: CurrentsConfig, times: int = 1, clock: Clock | None = None) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        client = CurrentsClient(settings, clock=clock or Clock(NOW))
        try:
            return [await push_once(app, client) for _ in range(times)]
        finally:
            await client.aclose()
    return asyncio.run(go())


def statuses(results: list[dict[str, Any]]) -> list[str]:
    return [result["status"] for result in results]


def stream(app) -> dict[str, Any]:
    with app.store.read() as conn:
        return currents.status(conn)


# -- delivery ------------------------------------------------------------------------------------------

def test_a_batch_is_signed_and_carries_the_documented_items(app):
    # given two emails sent and a click on one
    first, _second = sent(app, 2)
    engage(app, first, "clicked", link=1, agent="browser")
    with Receiver() as receiver:
        # when the stream is pushed twice
        results = push(app, config(receiver), times=2)
        # then one request carried the three engagements, in id order, and the second push found nothing new
        assert statuses(results) == ["delivered", "idle"]
        (request,) = receiver.requests
        assert request.verified and receiver.ids() == [[1, 2, 3]]
    headers = request.headers
    assert SIGNATURE.fullmatch(headers["x-clarion-signature"])[1] == headers["x-clarion-timestamp"]
    assert headers["content-type"] == "application/json" and headers["user-agent"] == "Clarion-Currents/1"
    assert headers["idempotency-key"] == "currents-1-3"
    # and each item has exactly the documented keys, the click its link and URL
    sent_item, _, click = receiver.batches[0]
    assert list(click) == list(ITEM_KEYS)
    assert (sent_item["type"], click["type"], click["campaign"], click["channel"]) == (
        "Message Sent", "Link Clicked", "spring", "email")
    assert click["link"] == 1 and click["url"].startswith("https://shop.example/sale?utm_source=clarion")
    assert datetime.fromisoformat(sent_item["occurred_at"]) == NOW and sent_item["machine"] is False
    # and the cursor stands after the last one
    assert {k: stream(app)[k] for k in ("mark", "backlog", "attempts", "dead_letters")} == {
        "mark": 3, "backlog": 0, "attempts": 0, "dead_letters": 0}


def test_json_lines_carry_one_event_per_line(app):
    sent(app, 2)
    with Receiver() as receiver:
        assert statuses(push(app, config(receiver, format="jsonl"))) == ["delivered"]
    (request,) = receiver.requests
    assert request.verified and request.headers["content-type"] == "application/x-ndjson"
    assert request.body.endswith(b"\n") and receiver.ids() == [[1, 2]]


def test_batches_go_out_in_id_order_each_once(app):
    # given five engagements and batches of two
    for delivery in sent(app, 3)[:2]:
        engage(app, delivery, "opened", reason="pixel")
    with Receiver() as receiver:
        # when pushed until idle
        async def go() -> dict[str, int]:
            client = CurrentsClient(config(receiver, batch_size=2), clock=Clock(NOW))
            try:
                return await push_until_idle(app, client)
            finally:
                await client.aclose()
        seen = asyncio.run(go())
    # then three batches went, in order
    assert seen == {"delivered": 3, "idle": 1}
    assert receiver.ids() == [[1, 2], [3, 4], [5]]


def test_a_server_error_is_retried_and_the_batch_delivered_once(app):
    # given a receiver that fails once with 500
    sent(app, 2)
    with Receiver(answers=[(500, {})]) as receiver:
        # when the stream is pushed twice
        results = push(app, config(receiver), times=2)
    # then the first push is a retry, the second delivers: the same batch, signed each time, taken once
    assert statuses(results) == ["retry", "delivered"]
    assert results[0]["error"].startswith("500") and results[0]["attempt"] == 1
    assert [r.verified for r in receiver.requests] == [True, True]
    assert receiver.requests[0].body == receiver.requests[1].body
    assert {r.headers["idempotency-key"] for r in receiver.requests} == {"currents-1-2"}
    assert receiver.ids() == [[1, 2]]
    assert {k: stream(app)[k] for k in ("mark", "attempts", "last_error", "dead_letters")} == {
        "mark": 2, "attempts": 0, "last_error": None, "dead_letters": 0}


def test_retry_after_is_respected(app):
    # given a receiver that says 429, come back in 120 seconds
    sent(app, 1)
    clock = Clock(NOW)
    with Receiver(answers=[(429, {"Retry-After": "120"})]) as receiver:
        settings = config(receiver, retry_base_seconds=1.0)
        # when pushed at once and again before the two minutes are over
        early = push(app, settings, times=2, clock=clock)
        # then the second push waits, without a request
        assert statuses(early) == ["retry", "waiting"] and len(receiver.requests) == 1
        assert early[1]["next_at"] >= NOW + timedelta(seconds=120)
        # when the two minutes have passed, then the batch goes
        clock.now = NOW + timedelta(seconds=121)
        assert statuses(push(app, settings, clock=clock)) == ["delivered"]
    assert receiver.ids() == [[1]]


def test_a_failing_endpoint_ends_in_a_dead_letter_and_the_stream_moves_on(app):
    # given two emails sent and a receiver that answers 503 three times
    first, _ = sent(app, 2)
    with Receiver(answers=[(503, {})] * 3) as receiver:
        settings = config(receiver, max_attempts=3)
        # when the stream is pushed three times
        results = push(app, settings, times=3)
        # then the batch is dead-lettered after its third attempt
        assert statuses(results) == ["retry", "retry", "dead_letter"]
        with app.store.read() as conn:
            (letter,) = currents.dead_letters(conn)
            payload = currents.dead_letter(conn, letter["id"])["payload"]
        assert (letter["first_engagement_id"], letter["last_engagement_id"], letter["attempts"]) == (1, 2, 3)
        assert letter["last_error"].startswith("503") and [e["id"] for e in payload["events"]] == [1, 2]
        # and the stream moves on: a later engagement is delivered when the receiver is back
        engage(app, first, "opened", reason="pixel")
        assert statuses(push(app, settings)) == ["delivered"] and receiver.ids() == [[3]]
        # when the dead letter is retried while the receiver fails, then it stays, its attempt counted
        receiver.answers.append((500, {}))
        assert not retried(app, settings, letter["id"])["delivered"]
        with app.store.read() as conn:
            assert currents.dead_letters(conn)[0]["attempts"] == 4
        # when it is retried with the receiver back, then it is delivered and leaves the list
        assert retried(app, settings, letter["id"]) == {"id": letter["id"], "delivered": True, "events": 2,
                                                        "error": None}
    assert receiver.ids() == [[3], [1, 2]]
    assert stream(app)["dead_letters"] == 0


def retried(app, settings: CurrentsConfig, letter_id: int) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        client = CurrentsClient(settings)
        try:
            return await retry_dead_letter(app, client, letter_id)
        finally:
            await client.aclose()
    return asyncio.run(go())


def test_a_leased_batch_is_not_sent_twice_until_its_lease_runs_out(app):
    # given a batch claimed by another pusher (which then went quiet)
    sent(app, 2)
    with Receiver() as receiver:
        settings = config(receiver)
        with app.store.write() as conn:
            held = currents.claim(conn, settings, "other", NOW)
        # when this pusher pushes while the lease holds, then it leaves the batch alone
        assert statuses(push(app, settings)) == ["busy"] and receiver.requests == []
        # when the lease has run out, then this pusher sends the batch
        later = Clock(NOW + settings.lease + timedelta(seconds=1))
        assert statuses(push(app, settings, clock=later)) == ["delivered"]
    # and the first pusher's late answer changes nothing
    with app.store.write() as conn:
        assert currents.settle(conn, settings, held, currents.Answer(ok=False, error="late"), later.now) == "lost"
    assert stream(app)["mark"] == 2 and stream(app)["last_error"] is None


def test_an_address_that_may_not_be_called_pauses_the_stream_without_counting_attempts(app):
    # given the receiver on loopback, and the stream not allowed private addresses
    sent(app, 1)
    with Receiver() as receiver:
        plain = config(receiver, allow_private=False)
        tls = config(receiver, allow_private=False, url=f"https://127.0.0.1:{receiver.port}/events")
        # when pushed over http, then over https
        first = push(app, plain)
        second = push(app, tls, clock=Clock(NOW + currents.CONFIG_PAUSE))
        # then neither connects, nothing is counted against the batch, and the stream waits a while
        assert receiver.requests == []
    assert statuses(first) == ["config_error"] and "https_required" in first[0]["error"]
    assert statuses(second) == ["config_error"] and "ssrf_blocked" in second[0]["error"]
    assert {k: stream(app)[k] for k in ("mark", "attempts", "dead_letters")} == {"mark": 0, "attempts": 0,
                                                                                 "dead_letters": 0}
    assert statuses(push(app, plain, clock=Clock(NOW + currents.CONFIG_PAUSE))) == ["waiting"]


def test_skipping_history_starts_the_stream_at_the_newest_engagement(app):
    first, _ = sent(app, 2)
    with app.store.write() as conn:
        assert currents.skip_history(conn, NOW) == 2
    engage(app, first, "opened", reason="pixel")
    with Receiver() as receiver:
        assert statuses(push(app, config(receiver), times=2)) == ["delivered", "idle"]
    assert receiver.ids() == [[3]]


def test_an_erased_contact_leaves_the_dead_letters(app):
    # given a dead letter with two contacts' engagements
    sent(app, 2)
    with Receiver(answers=[(500, {})]) as receiver:
        assert statuses(push(app, config(receiver, max_attempts=1))) == ["dead_letter"]
    with app.store.read() as conn:
        (letter,) = currents.dead_letters(conn)
        contacts = [e["contact_id"] for e in currents.dead_letter(conn, letter["id"])["payload"]["events"]]
    # when the first contact is forgotten, then only the other's engagement stays; when both, the letter goes
    with app.store.write() as conn:
        assert currents.forget_contact(conn, contacts[:1]) == 1
        assert [e["contact_id"] for e in currents.dead_letter(conn, letter["id"])["payload"]["events"]] == contacts[1:]
        assert currents.forget_contact(conn, contacts[1:]) == 1
        assert currents.dead_letters(conn) == []


def test_after_the_newest_contact_is_erased_the_next_engagements_are_still_sent(app):
    # given both sends delivered, then the contact with the newest engagement erased (its rows go with it)
    first, second = sent(app, 2)
    with Receiver() as receiver:
        settings = config(receiver)
        assert statuses(push(app, settings)) == ["delivered"]
        with app.store.write() as conn:
            app.gdpr.erase(conn, touch_of(conn, second).contact_id)
        assert statuses(push(app, settings)) == ["idle"]
        # when the other contact opens (SQLite gives the new row the erased row's id again)
        engage(app, first, "opened", reason="pixel")
        # then the open is sent
        assert statuses(push(app, settings)) == ["delivered"]
    assert [[item["type"] for item in batch] for batch in receiver.batches] == [
        ["Message Sent", "Message Sent"], ["Email Opened"]]


def test_rows_committed_out_of_id_order_are_all_sent(app):
    # given (PostgreSQL: ids are handed out at insert, rows become visible at commit) a transaction that
    # wrote engagement 3 and has not committed, while engagement 4 is committed
    if app.store.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: its rows commit in id order")
    first, second = sent(app, 2)
    with Receiver() as receiver, app.store.engine.connect() as slow:
        transaction = slow.begin()
        record(slow, touch_of(slow, first), "opened", NOW, reason="pixel")
        engage(app, second, "opened", reason="pixel")
        # when the stream is pushed, then it does not go past the open transaction's row
        assert statuses(push(app, config(receiver))) == ["idle"] and receiver.ids() == []
        # when that transaction commits, then both rows go, in id order
        transaction.commit()
        assert statuses(push(app, config(receiver), times=2)) == ["delivered", "idle"]
    assert receiver.ids() == [[1, 2, 3, 4]]


# -- the command line -----------------------------------------------------------------------------------

def cli_app() -> typer.Typer:
    return cli_main.app  # the real `clarion` command tree


def cli(app, *args: str):
    return CliRunner().invoke(cli_app(), ["--database-url", app.settings.database_url, "events", *args])


def test_dead_letters_are_listed_and_dropped_from_the_command_line(app):
    sent(app, 1)
    with Receiver(answers=[(500, {})]) as receiver:
        assert statuses(push(app, config(receiver, max_attempts=1))) == ["dead_letter"]
    listed = cli(app, "dead-letters", "list", "--json")
    assert listed.exit_code == 0, listed.output
    (letter,) = json.loads(listed.stdout)
    assert letter["attempts"] == 1 and letter["last_error"].startswith("500")
    assert "500" in cli(app, "dead-letters", "list").stdout
    status = json.loads(cli(app, "stream-status", "--json").stdout)
    assert (status["mark"], status["dead_letters"]) == (1, 1)
    assert cli(app, "dead-letters", "drop", str(letter["id"])).exit_code == 0
    assert json.loads(cli(app, "dead-letters", "list", "--json").stdout) == []
    missing = cli(app, "dead-letters", "drop", str(letter["id"]))
    assert missing.exit_code == 1 and "not found" in missing.stderr


def test_push_without_an_endpoint_says_so(app):
    result = cli(app, "push")
    assert result.exit_code == 1 and "CLARION_EVENTS_WEBHOOK_URL" in result.stderr


def test_push_and_retry_from_the_command_line(app, monkeypatch):
    # given an endpoint in the settings and two engagements
    sent(app, 2)
    with Receiver(answers=[(500, {})]) as receiver:
        for name, value in (("URL", f"{receiver.base_url}/events"), ("SECRET", SECRET), ("MAX_ATTEMPTS", "1")):
            monkeypatch.setenv(f"CLARION_EVENTS_WEBHOOK_{name}", value)
        monkeypatch.setenv("CLARION_WEBHOOK_ALLOW_PRIVATE_URLS", "true")
        # when pushed by hand, then the failing batch is dead-lettered; retried, it is delivered
        pushed = cli(app, "push", "--until-idle", "--json")
        assert pushed.exit_code == 0, pushed.output
        assert json.loads(pushed.stdout) == {"dead_letter": 1, "idle": 1}
        (letter,) = json.loads(cli(app, "dead-letters", "list", "--json").stdout)
        retried_ = cli(app, "dead-letters", "retry", str(letter["id"]), "--json")
        assert retried_.exit_code == 0, retried_.output
    assert json.loads(retried_.stdout)["delivered"] is True and receiver.ids() == [[1, 2]]

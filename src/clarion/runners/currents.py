"""Pushing the engagement stream to the workspace's endpoint: signed batches over HTTP (docs/webhooks-out.md).

    client = CurrentsClient(CurrentsConfig(url="https://warehouse.example/clarion", secret="whsec_..."))
    result = await push_once(app, client)      # one batch: {"status": "delivered", "first": 1, "last": 500 ...}
    await client.aclose()

The request goes through the webhook channel's checks (``channels.webhook``): https only, every address
the name resolves to must be public (CLARION_WEBHOOK_ALLOW_PRIVATE_URLS lifts that, for tests), the
connection goes to the vetted address, redirects are not followed. Each batch is signed::

    X-Clarion-Signature: t=<Unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

(and ``X-Clarion-Timestamp: <t>``, as the webhook channel sends it), with ``Idempotency-Key:
currents-<first id>-<last id>``, the same on every retry of the batch.

What the answer does to the batch (``services.currents.settle``): 2xx delivers it and the cursor moves
on. Anything else (a network error, a timeout, 429, 5xx, and also 4xx and redirects, which are a
receiver's configuration an operator can fix within the retry schedule) is retried with full-jitter
exponential backoff, never sooner than a ``Retry-After``; after ``max_attempts`` the batch becomes a dead
letter and the cursor moves on. A URL that may not be called at all (not https, not public) pauses the
stream without counting attempts.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..bootstrap import Clarion
from ..channels.base import DeliveryResult, Outcome
from ..channels.webhook import Refused, WebhookChannel, WebhookSettings, check_url, sign
from ..services import currents
from ..services.clock import utcnow
from ..services.currents import Answer, Claim, CurrentsConfig, Idle

log = logging.getLogger(__name__)
USER_AGENT = "Clarion-Currents/1"
BATCHES_PER_STEP = 4  # batches a worker cycle pushes at most, so a backlog does not hold back the sending
MOVED_ON = frozenset({"delivered", "dead_letter", "lost"})  # another batch may be ready at once


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<hex>``: the MAC covers the timestamp, so a captured request cannot be replayed later."""
    return f"t={timestamp},{sign(secret, timestamp, body)}"


class _BatchChannel(WebhookChannel):
    """The webhook channel's vetted connection, with the stream's own headers."""

    async def post(self, url: str, body: bytes, content_type: str, key: str) -> DeliveryResult:
        try:
            target = check_url(url, self.settings.allow_private)
            addresses = await self._vetted_addresses(target)
        except Refused as refused:
            return refused.result
        stamp = int(self.clock())
        headers = {"Content-Type": content_type, "User-Agent": USER_AGENT, "Idempotency-Key": key,
                   "X-Clarion-Timestamp": str(stamp), "X-Clarion-Signature": signature_header(
                       self.settings.secret, stamp, body), "Host": target.host_header}
        try:
            async with asyncio.timeout(self.settings.timeout):
                return await self._post(target, addresses, body, headers)
        except TimeoutError:
            return DeliveryResult(Outcome.RETRY, code="timeout", detail=f"no answer within {self.settings.timeout:g} s")


class CurrentsClient:
    """Sends batches to ``config.url``. ``clock``: the time of leases and retries (the signature's
    timestamp is the real time, which the receiver checks against its own clock)."""

    def __init__(self, config: CurrentsConfig, *, clock: Callable[[], datetime] = utcnow,
                 wall: Callable[[], float] = time.time, resolver: Any = None) -> None:
        self.config = config
        self.clock = clock
        settings = WebhookSettings(secret=config.secret or "-", timeout=config.timeout_seconds, concurrency=1,
                                   allow_private=config.allow_private, ca_file=config.ca_file)
        self._channel = _BatchChannel(settings, clock=wall, resolver=resolver)

    @classmethod
    def from_settings(cls, settings: Any) -> CurrentsClient:
        return cls(CurrentsConfig.from_settings(settings))

    async def post(self, payload: dict[str, Any], key: str) -> Answer:
        body, content_type = currents.encode(payload, self.config.format)
        result = await self._channel.post(self.config.url, body, content_type, key)
        if result.outcome is Outcome.SENT:
            return Answer(ok=True)
        error = f"{result.code}: {result.detail}" if result.code else result.detail
        config = result.outcome is Outcome.CONFIG_ERROR or result.code == "ssrf_blocked"
        return Answer(ok=False, error=error, retry_after=result.retry_after, config=config)

    async def aclose(self) -> None:
        await self._channel.aclose()


async def push_once(app: Clarion, client: CurrentsClient) -> dict[str, Any]:
    """Send the next batch, if one is due: ``{"status": ...}`` is ``off`` (no URL), ``idle`` (nothing new),
    ``busy`` (another pusher holds the batch), ``waiting`` (a retry is due at ``next_at``), or what became
    of the batch sent: ``delivered``, ``retry``, ``dead_letter``, ``config_error``, ``lost``."""
    config = client.config
    if not config.url:
        return {"status": "off"}
    owner = uuid.uuid4().hex
    held = await asyncio.to_thread(_claim, app, config, owner, client.clock())
    if isinstance(held, Idle):
        return {"status": held.status, "next_at": held.next_at}
    try:
        answer = await client.post(held.payload, f"currents-{held.first}-{held.last}")
    except BaseException:  # cancelled (the worker stops): the next pusher sends the batch at once
        await asyncio.to_thread(_release, app, owner, client.clock())
        raise
    outcome = await asyncio.to_thread(_settle, app, config, held, answer, client.clock())
    if outcome in ("retry", "dead_letter", "config_error"):
        log.warning("events webhook: batch %s-%s %s: %s", held.first, held.last, outcome, answer.error)
    return {"status": outcome, "first": held.first, "last": held.last, "events": len(held.payload["events"]),
            "attempt": held.attempts + 1, "error": answer.error or None}


async def retry_dead_letter(app: Clarion, client: CurrentsClient, letter_id: int) -> dict[str, Any]:
    """Send a dead letter again (signed now); delivered: it leaves the list, else its error is updated."""
    with app.store.read() as conn:
        letter = currents.dead_letter(conn, letter_id)
    key = f"currents-{letter['first_engagement_id']}-{letter['last_engagement_id']}"
    answer = await client.post(letter["payload"], key)
    with app.store.write() as conn:
        currents.dead_letter_retried(conn, letter_id, answer)
    return {"id": letter_id, "delivered": answer.ok, "events": len(letter["payload"]["events"]),
            "error": answer.error or None}


async def push_until_idle(app: Clarion, client: CurrentsClient, *, wait: bool = True,
                          sleep: Callable[[float], Any] = asyncio.sleep,
                          on_result: Callable[[dict[str, Any]], None] | None = None) -> dict[str, int]:
    """Push batches until nothing is left (``clarion events push --until-idle``). A batch waiting for its
    retry is waited for when ``wait`` (the retries end in delivery or a dead letter); ``busy``, ``idle``,
    ``off`` and ``config_error`` stop. Returns the count of each status seen."""
    seen: dict[str, int] = {}
    while True:
        result = await push_once(app, client)
        seen[result["status"]] = seen.get(result["status"], 0) + 1
        if on_result is not None:
            on_result(result)
        if result["status"] == "waiting" and wait:
            await sleep(max(0.0, (result["next_at"] - client.clock()).total_seconds()))
        elif result["status"] not in MOVED_ON | {"retry"}:
            return seen


class CurrentsPusher:
    """The worker's share of the stream: a few batches each cycle, its failures logged, never raised."""

    def __init__(self, client: CurrentsClient) -> None:
        self.client = client

    @classmethod
    def from_settings(cls, settings: Any) -> CurrentsPusher | None:
        """None when CLARION_EVENTS_WEBHOOK_URL is not set; ValueError for a URL without a secret."""
        config = CurrentsConfig.from_settings(settings)
        return cls(CurrentsClient(config)) if config.url else None

    async def step(self, app: Clarion) -> int:
        """Up to BATCHES_PER_STEP batches; returns how many were delivered or dead-lettered."""
        moved = 0
        for _ in range(BATCHES_PER_STEP):
            try:
                result = await push_once(app, self.client)
            except Exception:  # the database or a bug: the stream waits for the next cycle, sending goes on
                log.exception("events webhook push failed")
                return moved
            if result["status"] not in MOVED_ON:
                return moved
            moved += 1
        return moved

    async def aclose(self) -> None:
        await self.client.aclose()


def _claim(app: Clarion, config: CurrentsConfig, owner: str, now: datetime) -> Claim | Idle:
    with app.store.write() as conn:
        return currents.claim(conn, config, owner, now)


def _settle(app: Clarion, config: CurrentsConfig, held: Claim, answer: Answer, now: datetime) -> str:
    with app.store.write() as conn:
        return currents.settle(conn, config, held, answer, now)


def _release(app: Clarion, owner: str, now: datetime) -> None:
    with app.store.write() as conn:
        currents.release(conn, owner, now)

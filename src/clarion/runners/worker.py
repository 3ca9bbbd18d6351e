"""``clarion worker``: starts due campaigns, sends what is due, completes what is done, forever.

Any number of workers may run against one PostgreSQL database, on any number of machines: the ledger's
leases keep them from sending one delivery twice. On SQLite, run one (``clarion serve`` embeds it).
Each cycle visits every running campaign in turn and sends at most one batch of each, so a big
broadcast does not hold back a transactional campaign's receipts.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import select

from ..bootstrap import Clarion
from ..delivery.throttle import claim_slots, release_slots
from ..services.attribution import AttributionService
from ..services.campaigns import CampaignService
from ..services.clock import utcnow
from ..store.schema_delivery import campaigns
from .channels import build_channels, close_channels
from .currents import CurrentsPusher
from .dispatch import Batch, ChannelBinding, Dispatcher
from .outcomes import SendOutcome
from .progress import CampaignProgress, ProgressTracker

log = logging.getLogger(__name__)
SLOT_HOLD = timedelta(seconds=60)  # a dead worker's connection slots free up after this long
BATCHES_PER_TURN = 8  # batches of one campaign per cycle before the next campaign's turn
# Conversions are credited at most this often (seconds of real time, not the worker's clock, which tests
# freeze): a pass with nothing new is one indexed query, so this only spaces out the passes that work.
ATTRIBUTION_EVERY = 15.0
# New goal events per pass: one chunk of the pass (services.attribution.CHUNK), so a late import's
# catch-up is spread over cycles and never holds the write lock (SQLite) for long.
ATTRIBUTION_LIMIT = 2_000


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"[:80]


class Worker:
    def __init__(self, app: Clarion, *, channels: Mapping[str, ChannelBinding] | None = None,
                 worker_id: str | None = None, clock: Callable[[], datetime] = utcnow,
                 on_progress: Callable[[CampaignProgress], None] | None = None) -> None:
        self.app = app
        self.worker_id = worker_id or default_worker_id()
        self.clock = clock
        self._own_channels = channels is None
        self.channels = dict(channels) if channels is not None else build_channels(app.settings)
        self.dispatcher = Dispatcher(app.store, app.settings, self.channels, self.worker_id, clock=clock)
        self.campaigns = CampaignService(app.settings, clock=clock)
        self.sent = 0
        self.progress = ProgressTracker(on_progress)
        self.attribution = AttributionService(app.settings)
        self._attributed_at: float | None = None  # time.monotonic() of the last pass
        # The events webhook (docs/webhooks-out.md): None unless CLARION_EVENTS_WEBHOOK_URL is set.
        self.currents = CurrentsPusher.from_settings(app.settings)

    async def run_once(self) -> int:
        """One cycle; returns how many deliveries it decided (sent, skipped, deferred or failed)."""
        with self.app.store.write() as conn:
            self.campaigns.start_due(conn)
            self._claim_connections(conn)
        with self.app.store.read() as conn:
            running = conn.execute(select(campaigns.c.id).where(campaigns.c.status == "running")
                                   .order_by(campaigns.c.id)).scalars().all()
        handled = 0
        for campaign_id in running:
            handled += await self._work_on(campaign_id)
            self.progress.report()
        if self.currents is not None:  # a few batches of the engagement stream; its failures are logged
            await self.currents.step(self.app)
        if handled == 0:
            with self.app.store.write() as conn:
                self.campaigns.complete_finished(conn)
        self._attribute()
        return handled

    def _attribute(self) -> None:
        """Credit the goal events that arrived since the last pass (services.attribution), every
        ATTRIBUTION_EVERY seconds, or at once again while a catch-up has more. Its failure is logged and
        does not stop the sending."""
        now = time.monotonic()
        if self._attributed_at is not None and now - self._attributed_at < ATTRIBUTION_EVERY:
            return
        self._attributed_at = now
        try:
            with self.app.store.write() as conn:
                result = self.attribution.run(conn, limit=ATTRIBUTION_LIMIT)
        except Exception:  # the mark did not move: the next pass retries the same events
            log.exception("attribution pass failed")
            return
        if result["more"]:
            self._attributed_at = None

    async def _work_on(self, campaign_id: int) -> int:
        """Up to BATCHES_PER_TURN batches of one campaign, pipelined: the next batch is leased and the
        previous one checkpointed (in threads, where the database drivers release the GIL) while this
        one is being sent. Every batch leased here is sent here, so a turn never leaves leases behind."""
        handled, checkpoint = 0, None
        self.progress.begin(campaign_id)
        leasing = asyncio.create_task(asyncio.to_thread(self.dispatcher.lease, campaign_id))
        for turn in range(BATCHES_PER_TURN):
            batch = await leasing
            if batch is None:
                break
            handled += len(batch.items) + sum(batch.decided.values())
            self.progress.count(batch.campaign, batch.decided)
            more = turn + 1 < BATCHES_PER_TURN and len(batch.items) > 0
            if more:
                leasing = asyncio.create_task(asyncio.to_thread(self.dispatcher.lease, campaign_id))
            if batch.items:
                outcomes = await self.dispatcher.send(batch)
                if checkpoint is not None:
                    await checkpoint
                checkpoint = asyncio.create_task(self._checkpoint(batch, outcomes))
            if not more:
                break
        if checkpoint is not None:
            await checkpoint
        return handled

    async def _checkpoint(self, batch: Batch, outcomes: list[SendOutcome]) -> None:
        summary = await asyncio.to_thread(self.dispatcher.checkpoint, batch, outcomes)
        self.sent += summary.get("sent", 0)
        self.progress.count(batch.campaign, summary)

    async def run(self, stop: threading.Event | None = None, *, until_idle: bool = False) -> None:
        stop = stop or threading.Event()
        # Everything loaded so far lives as long as the worker: moving it out of the collector's sight
        # keeps full collections short, so a render is not charged a long pause (Python's gc.freeze docs).
        gc.collect()
        gc.freeze()
        try:
            while not stop.is_set():
                try:
                    handled = await self.run_once()
                except Exception:  # a worker outlives a failed cycle: the ledger is consistent, retry later
                    log.exception("delivery cycle failed")
                    handled = 0
                if handled == 0:
                    self.progress.report(final=True)  # idle: whatever changed since the last lines
                    if until_idle:
                        return
                    await asyncio.sleep(self.app.settings.worker_poll_seconds)
        finally:
            self.progress.report(final=True)
            await self.aclose()

    def _claim_connections(self, conn) -> None:
        limit = self.app.settings.smtp_max_connections
        binding = self.channels.get("email")
        if limit <= 0 or binding is None:
            return
        want = self.app.settings.smtp_pool_size
        held = claim_slots(conn, "smtp", self.worker_id, want, limit, self.clock(), SLOT_HOLD)
        binding.concurrency = held  # 0: this worker sends no email until a slot frees up

    async def aclose(self) -> None:
        if self.app.settings.smtp_max_connections > 0:
            with self.app.store.write() as conn:
                release_slots(conn, "smtp", self.worker_id)
        if self._own_channels:
            await close_channels(self.channels)
        if self.currents is not None:
            await self.currents.aclose()


def run_in_thread(app: Clarion, stop: threading.Event) -> threading.Thread:
    """The embedded worker of ``clarion serve``: its own thread and event loop."""
    def target() -> None:
        asyncio.run(Worker(app).run(stop))

    thread = threading.Thread(target=target, name="clarion-worker", daemon=True)
    thread.start()
    return thread

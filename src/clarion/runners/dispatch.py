"""One worker cycle for one campaign: lease a batch, check the policies, send, checkpoint.

    batch = dispatcher.lease(campaign_id)          # one write transaction
    results = await dispatcher.send(batch)          # no transaction: render, sign, network
    dispatcher.checkpoint(batch, results)           # one write transaction

The lease transaction runs the whole policy chain for every row, so consent, suppression, quiet hours
and caps are checked when the message is about to go, not when the campaign was queued. Rows that may
go are leased; the others are skipped, deferred or failed there and then, each with its reason. On
PostgreSQL, the contacts of a batch with frequency caps are locked with transaction-level advisory
locks (in id order, so workers never deadlock): two workers sending two campaigns to one contact count
each other's messages, which keeps the caps honest.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, select, text, update

from ..config import Settings
from ..content.errors import RenderError
from ..delivery import ledger
from ..delivery.facts import load_contacts, recipients
from ..delivery.policies import DeliveryCase, evaluate
from ..delivery.throttle import give_back, take_tokens
from ..domain.rules import RuleError
from ..services.clock import utcnow
from ..services.delivery_defaults import defaults_version, get_defaults
from ..store.engine import Store
from ..store.schema_delivery import campaigns
from .channel_setup import unavailable
from .loaded_campaign import LoadedCampaign, eligibility_context, load_campaign
from .outcomes import Checkpoint, SendOutcome

ADVISORY_NAMESPACE = 0x436C_6172 << 32  # "Clar": keeps Clarion's advisory lock keys apart from others'


class Composer(Protocol):
    def compose(self, campaign: LoadedCampaign, item: Leased, now: datetime) -> Any: ...


class Sender(Protocol):
    async def send(self, message: Any) -> Any: ...


@dataclass
class ChannelBinding:
    """How one channel is sent: its composer (render, build) and its adapter (network)."""

    composer: Composer
    channel: Sender
    concurrency: int = 4
    rate_per_second: float = 0.0
    rate_burst: float = 100.0


@dataclass
class Leased:
    row: Any
    profile: dict[str, Any]
    address: str
    targets: tuple = ()  # push channels: the contact's live devices (channels.base.PushTarget)
    last_inbound_at: datetime | None = None  # WhatsApp: the contact's last message to us
    links: list = field(default_factory=list)  # the composed message's tracked links (messages.link_tracking)


@dataclass
class Batch:
    campaign: LoadedCampaign
    items: list[Leased]
    now: datetime
    decided: dict[str, int] = field(default_factory=dict)  # skipped/deferred/failed at lease time


class Dispatcher:
    def __init__(self, store: Store, settings: Settings, channels: Mapping[str, ChannelBinding], worker_id: str,
                 clock: Callable[[], datetime] = utcnow, rng: random.Random | None = None) -> None:
        self.store = store
        self.settings = settings
        self.channels = channels
        self.worker_id = worker_id
        self.clock = clock
        self.rng = rng or random.Random()
        self._campaigns: dict[int, LoadedCampaign] = {}
        self.checkpointer = Checkpoint(settings, worker_id, self.rng)

    # -- lease -------------------------------------------------------------------------------
    def lease(self, campaign_id: int, limit: int | None = None) -> Batch | None:
        with self.store.write() as conn:
            now = self.clock()
            current = conn.execute(select(campaigns.c.status, campaigns.c.updated_at)
                                   .where(campaigns.c.id == campaign_id)).first()
            if current is None or current.status != "running":
                return None
            campaign = self._campaign(conn, campaign_id, current.updated_at)
            binding = self.channels.get(campaign.channel)
            if binding is not None and binding.concurrency <= 0:
                return None  # no connection slot for this worker right now (throttle.claim_slots)
            wanted = limit or self.settings.worker_batch_size
            granted = self._tokens(conn, campaign.channel, binding, wanted, now)
            rows = ledger.due_rows(conn, campaign_id, now, granted) if granted else []
            if not rows:
                self._return_tokens(conn, campaign.channel, binding, granted)
                return None
            if binding is None:
                self._fail_all(conn, campaign, rows, now)
                return Batch(campaign, [], now, {"failed": len(rows)})
            batch = self._decide(conn, campaign, rows, now)
            self._return_tokens(conn, campaign.channel, binding, granted - len(batch.items))
            return batch

    def _campaign(self, conn: Connection, campaign_id: int, updated_at: datetime) -> LoadedCampaign:
        # A change of the campaign, its template (which touches the campaign) or the workspace defaults reloads it.
        version = (updated_at, defaults_version(conn))
        cached = self._campaigns.get(campaign_id)
        if cached is None or cached.version != version:
            cached = load_campaign(conn, campaign_id, get_defaults(conn), self.settings, version)
            self._campaigns[campaign_id] = cached
        return cached

    def _decide(self, conn: Connection, campaign: LoadedCampaign, rows: list[Any], now: datetime) -> Batch:
        contact_ids = sorted({row.contact_id for row in rows if row.contact_id is not None})
        if campaign.rules.caps and conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(CAST(:ns AS bigint) + id) "
                              "FROM unnest(CAST(:ids AS bigint[])) AS id ORDER BY id"),
                         {"ns": ADVISORY_NAMESPACE, "ids": contact_ids})
        profiles = load_contacts(conn, contact_ids)
        context = eligibility_context(conn, self.settings, campaign, now)
        try:
            facts = recipients(conn, campaign.scope, rows, profiles, now, context)
        except RuleError as exc:  # fail closed: nothing is sent while a compliance rule cannot be evaluated
            pause(conn, campaign.id, f"eligibility rule cannot be evaluated: {exc}", now)
            return Batch(campaign, [], now)
        return self._apply_chain(conn, campaign, rows, profiles, facts, now)

    def _apply_chain(self, conn: Connection, campaign: LoadedCampaign, rows: list[Any], profiles: dict,
                     facts: dict, now: datetime) -> Batch:
        batch = Batch(campaign, [], now)
        changes, entries, to_lease, taken = [], [], [], set()
        for row in rows:
            recipient = facts[row.id]
            if (recipient.address, row.step) in taken:  # two contacts of this batch share the address
                recipient = replace(recipient, duplicate=True)
            decision = evaluate(DeliveryCase(recipient, row.created_at, now), campaign.rules).decision
            if decision.action == "send":
                taken.add((recipient.address, row.step))
                to_lease.append(row)
                batch.items.append(Leased(row, profiles[row.contact_id], recipient.address, recipient.targets,
                                          recipient.last_inbound_at))
                continue
            status = {"skip": "skipped", "defer": "deferred", "fail": "failed"}[decision.action]
            final = now if status != "deferred" else None
            changes.append(ledger.change(row, status, reason=decision.reason, detail=decision.detail,
                                         due_at=decision.until or row.due_at, finished_at=final))
            # Logged under the policy's own outcome (skipped, deferred, expired): not a send that failed.
            outcome = "expired" if decision.reason == "expired" else status
            entries.append(ledger.LogEntry(row.id, campaign.id, row.attempts, outcome, decision.reason,
                                           detail=decision.detail))
            batch.decided[status] = batch.decided.get(status, 0) + 1
        ledger.settle(conn, changes)
        ledger.write_log(conn, entries, now, self.worker_id)
        ledger.lease(conn, to_lease, self.worker_id, now, timedelta(seconds=self.settings.worker_lease_seconds))
        return batch

    def _fail_all(self, conn: Connection, campaign: LoadedCampaign, rows: list[Any], now: datetime) -> None:
        detail = unavailable(campaign.channel)  # the very line the dry run and `campaigns send` give
        ledger.settle(conn, [ledger.change(r, "failed", reason="channel_unavailable", detail=detail, finished_at=now)
                             for r in rows])
        ledger.write_log(conn, [ledger.LogEntry(r.id, campaign.id, r.attempts, "failed", "channel_unavailable",
                                                detail=detail) for r in rows], now, self.worker_id)

    @staticmethod
    def _tokens(conn: Connection, channel: str, binding: ChannelBinding | None, wanted: int, now: datetime) -> int:
        if binding is None:
            return wanted
        return take_tokens(conn, channel, wanted, binding.rate_per_second, binding.rate_burst, now)

    @staticmethod
    def _return_tokens(conn: Connection, channel: str, binding: ChannelBinding | None, unused: int) -> None:
        if binding is not None and binding.rate_per_second > 0:
            give_back(conn, channel, unused, binding.rate_burst)

    # -- send --------------------------------------------------------------------------------
    async def send(self, batch: Batch) -> list[SendOutcome]:
        binding = self.channels[batch.campaign.channel]
        gate = asyncio.Semaphore(max(binding.concurrency, 1))

        async def one(item: Leased) -> SendOutcome:
            # Composed inside the gate: while one message is on the wire the next is being rendered,
            # instead of rendering the whole batch before the first byte goes out.
            async with gate:
                try:
                    message = binding.composer.compose(batch.campaign, item, batch.now)
                except RenderError as exc:
                    return SendOutcome(item, None, None, exc)
                return SendOutcome(item, message, await binding.channel.send(message))

        return list(await asyncio.gather(*(one(item) for item in batch.items)))

    # -- checkpoint --------------------------------------------------------------------------
    def checkpoint(self, batch: Batch, outcomes: list[SendOutcome]) -> dict[str, int]:
        with self.store.write() as conn:
            now = self.clock()
            summary = self.checkpointer.apply(conn, batch.campaign, outcomes, now)
            if summary.get("config_error"):
                pause(conn, batch.campaign.id, summary_reason(outcomes), now)
            else:
                self.checkpointer.auto_pause(conn, batch.campaign, now)
            return summary


def summary_reason(outcomes: list[SendOutcome]) -> str:
    failed = next((o.result for o in outcomes if o.result is not None and o.result.outcome == "config_error"), None)
    return f"channel configuration error: {failed.code or ''} {failed.detail}".strip() if failed else "config error"


def pause(conn: Connection, campaign_id: int, reason: str, now: datetime) -> None:
    conn.execute(update(campaigns).where(campaigns.c.id == campaign_id, campaigns.c.status == "running")
                 .values(status="paused", status_reason=reason[:2000], updated_at=now))

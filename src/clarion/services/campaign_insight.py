"""Answers about a campaign without sending: the dry run, and "why did Ana not get it?".

Both run the very policy chain the workers run (``delivery.policies`` with facts from
``delivery.facts``), on the campaign's stored settings, so what they say is what a worker would do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, select

from ..config import Settings
from ..content.context import RenderContext
from ..content.errors import RenderError
from ..content.render import RenderSettings, render
from ..delivery.facts import load_contacts, recipients
from ..delivery.policies import Decision, DeliveryCase, evaluate
from ..delivery.reasons import describe
from ..domain.campaigns import Schedule
from ..domain.errors import NotFound
from ..runners.loaded_campaign import LoadedCampaign, eligibility_context, load_campaign
from ..segments.compiler import compile_rule
from ..segments.rule_json import rule_from_json
from ..store.schema import contacts
from ..store.schema_delivery import deliveries, delivery_log
from ..store.schema_scores import segments
from ..tracking.public_url import public_url_warning
from .campaign_audience import MAIN_STEP, local_send_time
from .campaigns import CampaignService
from .clock import utcnow
from .delivery_defaults import get_defaults
from .segments import SegmentService


class CampaignInsight:
    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utcnow,
                 channels: Collection[str] | None = None) -> None:
        """``channels``: those the workers can send on; by default the ones ``settings`` configure."""
        self.settings = settings
        self.clock = clock
        self.campaigns = CampaignService(settings, clock, channels)
        self.segments = SegmentService(settings, clock)

    def dry_run(self, conn: Connection, name: str, *, limit: int = 20, at: datetime | None = None) -> dict[str, Any]:
        """For the first ``limit`` contacts of the audience: who would get what, when; who is skipped, why."""
        row = self.campaigns.row(conn, name)
        campaign = load_campaign(conn, row.id, get_defaults(conn), self.settings)
        ids = self._audience(conn, row, limit)
        now = at or self.clock()
        plan = Schedule.model_validate(row.schedule or {})
        profiles = load_contacts(conn, ids)
        fake = [SimpleNamespace(id=-index - 1, step=MAIN_STEP, contact_id=cid, created_at=now, attempts=0, due_at=now,
                                data=None)
                for index, cid in enumerate(ids)]
        facts = recipients(conn, campaign.scope, fake, profiles, now, self._context(conn, campaign, now))
        # A worker without the channel fails every delivery before any policy is asked (dispatch._fail_all).
        missing = self.campaigns.missing_channel(row.channel)
        results = [self._predict(campaign, plan, item, profiles.get(item.contact_id), facts[item.id], now, missing)
                   for item in fake]
        return {"campaign": row.name, "at": now, "examined": len(results),
                "summary": dict(Counter(r["action"] + (f":{r['reason']}" if r["reason"] else "") for r in results)),
                "recipients": results, "public_url": self.settings.public_url,
                "warnings": [w for w in (missing, public_url_warning(self.settings)) if w]}

    def _audience(self, conn: Connection, row: Any, limit: int) -> list[int]:
        if row.segment_id is None:
            return []
        rule = conn.execute(select(segments.c.rule).where(segments.c.id == row.segment_id)).scalar_one()
        query = compile_rule(rule_from_json(rule), self.segments.context(conn)).order_by(contacts.c.id).limit(limit)
        return list(conn.execute(query).scalars())

    def _context(self, conn: Connection, campaign: LoadedCampaign, now: datetime):
        return eligibility_context(conn, self.settings, campaign, now)

    def _predict(self, campaign: LoadedCampaign, plan: Schedule, item: Any, profile: dict | None, recipient: Any,
                 now: datetime, missing_channel: str | None) -> dict[str, Any]:
        due = now
        if plan.mode == "local" and profile is not None:
            due = max(local_send_time(plan, profile.get("timezone"), self.settings.default_timezone), now)
        elif plan.mode == "at" and plan.at:
            due = max(plan.at, now)
        decision = (Decision("fail", "channel_unavailable", missing_channel) if missing_channel else
                    evaluate(DeliveryCase(recipient, due, due), campaign.rules).decision)
        result = {"contact_id": item.contact_id, "address": recipient.address, "timezone": recipient.zone.key,
                  "action": decision.action, "reason": decision.reason, "detail": decision.detail,
                  "send_at": decision.until if decision.action == "defer" else due if decision.action == "send"
                  else None}
        if decision.action in ("send", "defer") and profile is not None:
            result["subject"] = self._subject(campaign, profile, due)
        return result

    def _subject(self, campaign: LoadedCampaign, profile: dict, now: datetime) -> str | None:
        try:
            message = render(campaign.template, RenderContext(contact=profile, campaign=campaign.render_view,
                                                              links={"unsubscribe": "https://preview.invalid/u"},
                                                              now=now),
                             RenderSettings(default_timezone=self.settings.default_timezone), channels=("email",))
        except RenderError as exc:
            return f"(render error: {exc})"
        return message.email.subject if message.email else None

    def why(self, conn: Connection, contact_id: int, name: str) -> dict[str, Any]:
        """The contact's deliveries of the campaign, their history, and what the chain says right now."""
        row = self.campaigns.row(conn, name)
        d = deliveries.c
        found = conn.execute(select(deliveries).where(d.campaign_id == row.id, d.contact_id == contact_id)
                             .order_by(d.id)).all()
        if not found and conn.execute(select(contacts.c.id).where(contacts.c.id == contact_id)).first() is None:
            raise NotFound("contact", contact_id)
        history = {r.id: [dict(e._mapping) for e in conn.execute(
            select(delivery_log).where(delivery_log.c.delivery_id == r.id).order_by(delivery_log.c.id))]
            for r in found}
        campaign = load_campaign(conn, row.id, get_defaults(conn), self.settings)
        now = self.clock()
        step = found[0].step if found else MAIN_STEP
        probe = SimpleNamespace(id=0, step=step, contact_id=contact_id, created_at=now, attempts=0, due_at=now,
                                data=None)
        profiles = load_contacts(conn, [contact_id])
        recipient = recipients(conn, campaign.scope, [probe], profiles, now, self._context(conn, campaign, now))[0]
        verdict = evaluate(DeliveryCase(recipient, now, now), campaign.rules)
        return {
            "campaign": row.name, "contact_id": contact_id, "in_audience": bool(found),
            "deliveries": [{**_delivery(r), "explanation": describe(r.reason), "history": history[r.id]}
                           for r in found],
            "now": {"action": verdict.decision.action, "reason": verdict.decision.reason,
                    "explanation": describe(verdict.decision.reason), "detail": verdict.decision.detail,
                    "passed": verdict.passed},
        }


def _delivery(row: Any) -> dict[str, Any]:
    keep = ("id", "step", "channel", "status", "reason", "detail", "due_at", "attempts", "sent_at", "message_id",
            "provider_id", "created_at", "finished_at")
    return {key: getattr(row, key) for key in keep}

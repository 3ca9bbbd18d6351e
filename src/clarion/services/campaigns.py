"""Campaigns: create, schedule, start, pause, resume, cancel, and transactional sends.

A campaign's life: ``draft`` → (``scheduled``) → ``running`` → ``completed``, with ``paused`` and
``cancelled`` reachable from any live state. Starting a broadcast puts its audience in the ledger (one
queued delivery per contact, see :mod:`.campaign_audience`); workers do the rest. A transactional
campaign stays ``running`` and gets one delivery per API call.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update

from ..config import Settings
from ..content.errors import InvalidTemplate, Problem
from ..content.template_store import template_from_document
from ..delivery import ledger
from ..domain.campaigns import CHANNELS, CampaignSettings, Schedule
from ..domain.errors import ClarionError, Conflict, FieldError, NotFound
from ..domain.ids import is_id_text
from ..domain.rules import RuleError
from ..domain.sending_time import local_instant
from ..runners.channel_setup import configured_channels, unavailable
from ..segments.compiler import compile_rule
from ..segments.rule_json import rule_to_json
from ..store.schema_delivery import campaigns, deliveries, templates
from ..store.schema_scores import segments
from .campaign_audience import EARLIEST_ZONE, LATEST_ZONE, enqueue_audience, enqueue_one, passed_locally, start_time
from .clock import utcnow
from .delivery_defaults import parse_model
from .segments import SegmentService, parse_any

LIVE = ("draft", "scheduled", "running", "paused")


class CampaignService:
    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utcnow,
                 channels: Collection[str] | None = None) -> None:
        """``channels``: those the workers can send on; by default the ones ``settings`` configure."""
        self.settings = settings
        self.clock = clock
        self.segments = SegmentService(settings, clock=clock)
        self.channels = frozenset(configured_channels(settings) if channels is None else channels)

    # -- definition --------------------------------------------------------------------------
    def create(self, conn: Connection, spec: dict[str, Any]) -> dict[str, Any]:
        """``spec``: name, template, channel, kind (broadcast), segment, topic, eligibility, settings, schedule."""
        name = _text(spec.get("name"), "name", 200)
        if name.isdecimal():  # a campaign is addressed by name or id: a name of digits would be taken for an id
            raise FieldError("name", "a campaign name cannot be only digits")
        if conn.execute(select(campaigns.c.id).where(campaigns.c.name == name)).first():
            raise Conflict(f"campaign {name!r} already exists")
        kind = spec.get("kind", "broadcast")
        if kind not in ("broadcast", "transactional"):
            raise FieldError("kind", "broadcast or transactional")
        values = self._definition(conn, spec, kind)
        now = self.clock()
        conn.execute(campaigns.insert().values(name=name, kind=kind, status="draft", created_at=now,
                                               updated_at=now, **values))
        # Not an error: the provider may be configured before the campaign is sent.
        missing = self.missing_channel(values["channel"])
        warnings = [f"{missing}; campaign {name!r} cannot be sent until it is"] if missing else []
        warnings += [f"eligibility: {warning}" for warning in self.segments.warnings(conn, values["eligibility"])]
        return {**self.get(conn, name), "warnings": warnings}

    def _definition(self, conn: Connection, spec: dict[str, Any], kind: str) -> dict[str, Any]:
        channel = spec.get("channel", "email")
        if channel not in CHANNELS:
            raise FieldError("channel", f"one of {', '.join(CHANNELS)}")
        template_id = self._template(conn, spec.get("template"), channel)
        segment_id = self._segment(conn, spec.get("segment")) if kind == "broadcast" else None
        if kind == "broadcast" and segment_id is None:
            raise FieldError("segment", "a broadcast needs the segment it is sent to")
        settings = parse_model(CampaignSettings, spec.get("settings"), "settings.")
        schedule = parse_model(Schedule, spec.get("schedule"), "schedule.")
        return {"channel": channel, "template_id": template_id, "segment_id": segment_id,
                "topic": spec.get("topic") or None, "marketing": bool(spec.get("marketing", kind == "broadcast")),
                "eligibility": self._eligibility(conn, spec.get("eligibility")),
                "settings": settings.model_dump(mode="json", exclude_defaults=True),
                "schedule": schedule.model_dump(mode="json", exclude_none=True)}

    def _template(self, conn: Connection, name: Any, channel: str) -> int:
        row = conn.execute(select(templates.c.id, templates.c.document).where(templates.c.name == name)).first()
        if row is None:
            raise FieldError("template", f"no template named {name!r}; save it first")
        if getattr(template_from_document(row.document).default, channel, None) is None:
            raise InvalidTemplate([Problem(channel, f"template {name!r} has no {channel} content", kind="unsupported")])
        return row.id

    def _segment(self, conn: Connection, name: Any) -> int | None:
        if name is None:
            return None
        row = conn.execute(select(segments.c.id).where(segments.c.name == name)).first()
        if row is None:
            raise FieldError("segment", f"no segment named {name!r}")
        return row.id

    def _eligibility(self, conn: Connection, rule: Any) -> dict[str, Any] | None:
        """The rule's canonical JSON (``rfm.segment = "Can't lose them"`` stored as ``"cant_lose"``); FieldError
        for an invalid rule, a value outside a field's closed set included. Warnings are in create's result."""
        if not rule:
            return None
        try:
            model = parse_any(rule)
            compile_rule(model, self.segments.context(conn))
        except RuleError as exc:
            raise FieldError("eligibility", str(exc)) from None
        return rule_to_json(model)

    def get(self, conn: Connection, name_or_id: str | int) -> dict[str, Any]:
        return dict(self.row(conn, name_or_id)._mapping)

    def list(self, conn: Connection) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in conn.execute(select(campaigns).order_by(campaigns.c.id))]

    def row(self, conn: Connection, name_or_id: str | int, *, lock: bool = False):
        """The campaign row by name or id (locked FOR UPDATE on PostgreSQL when asked)."""
        column = campaigns.c.id if isinstance(name_or_id, int) or is_id_text(str(name_or_id)) else campaigns.c.name
        key = int(name_or_id) if column is campaigns.c.id else name_or_id
        query = select(campaigns).where(column == key)
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise NotFound("campaign", name_or_id)
        return row

    # -- lifecycle ---------------------------------------------------------------------------
    def schedule(self, conn: Connection, name: str, schedule: dict[str, Any]) -> dict[str, Any]:
        """Schedules a draft; a time already past everywhere is refused, one past in some zones is said."""
        row = self.row(conn, name, lock=True)
        _require(row, ("draft", "scheduled"), "schedule")
        self._require_channel(row, "schedule")
        now = self.clock()
        plan = parse_model(Schedule, schedule, "schedule.").resolved(now, EARLIEST_ZONE)
        if plan.mode == "now":
            raise FieldError("schedule.mode", "use send to start now; schedule takes 'at' or 'local'")
        warnings = self._timing(conn, row, plan, now)
        self._set(conn, row.id, status="scheduled", schedule=plan.model_dump(mode="json", exclude_none=True),
                  start_at=start_time(plan, now))
        return {**self.get(conn, row.id), "warnings": warnings}

    def _timing(self, conn: Connection, row, plan: Schedule, now: datetime) -> list[str]:
        """FieldError when the plan's time has passed everywhere; a warning when it has in some zones."""
        send_now = f"to start it now, send it: `clarion campaigns send {shlex.quote(row.name)}`"
        if plan.mode == "at" and plan.at is not None and plan.at < now:
            raise FieldError("schedule.at", f"{plan.at.isoformat()} has already passed (it is now "
                                            f"{_utc(now)}); {send_now}")
        if plan.mode != "local" or plan.date is None or plan.time is None:
            return []
        wall = f"{plan.time.isoformat('minutes')} on {plan.date.isoformat()}"
        if local_instant(plan.date, plan.time, LATEST_ZONE) < now:
            raise FieldError("schedule.date", f"{wall} has passed in every time zone (it is now {_utc(now)}); "
                                              f"{send_now}")
        if local_instant(plan.date, plan.time, EARLIEST_ZONE) >= now:
            return []
        if row.segment_id is None:
            return [f"{wall} has already passed in some time zones (it is now {_utc(now)}): "
                    "messages to contacts there go at once"]
        passed, total = passed_locally(conn, row, self.segments, self.settings.default_timezone, plan, now)
        if not passed:
            return []
        return [f"{wall} has already passed in some time zones (it is now {_utc(now)}): {passed:,} of the "
                f"{total:,} contacts now in the audience get it at once, not at their local "
                f"{plan.time.isoformat('minutes')}"]

    def send(self, conn: Connection, name: str) -> dict[str, Any]:
        """Starts now: a broadcast's audience goes into the ledger (a local-time schedule keeps each due time)."""
        row = self.row(conn, name, lock=True)
        _require(row, ("draft", "scheduled"), "send")
        self._require_channel(row, "send")
        return self._start(conn, row)

    def missing_channel(self, channel: str) -> str | None:
        """None when a worker can send on ``channel``; else what to set so one can."""
        return None if channel in self.channels else unavailable(channel)

    def _require_channel(self, row, action: str) -> None:
        """A campaign on a channel no worker can send on would fail every delivery: refused before it starts."""
        missing = self.missing_channel(row.channel)
        if missing:
            raise Conflict(f"cannot {action} campaign {row.name!r}: {missing}")

    def start_due(self, conn: Connection) -> list[str]:
        """Starts the scheduled campaigns whose time came (the worker calls this on every cycle)."""
        now = self.clock()
        due = conn.execute(select(campaigns.c.id).where(campaigns.c.status == "scheduled",
                                                        campaigns.c.start_at <= now)).scalars().all()
        started = []
        for campaign_id in due:
            row = self.row(conn, campaign_id, lock=True)
            if row.status != "scheduled":
                continue
            try:
                with conn.begin_nested():  # a savepoint: a campaign that cannot start leaves no half audience
                    started.append(self._start(conn, row)["name"])
            except (ClarionError, RuleError) as exc:  # its segment was deleted, its rule no longer compiles ...
                self._set(conn, row.id, status="paused", status_reason=f"could not start: {exc}")
        return started

    def _start(self, conn: Connection, row) -> dict[str, Any]:
        now = self.clock()
        count = 0
        if row.kind == "broadcast":
            count = enqueue_audience(conn, row, self.segments, self.settings.default_timezone, now)
        self._set(conn, row.id, status="running", started_at=now, audience_count=count, status_reason=None)
        return self.get(conn, row.id)

    def pause(self, conn: Connection, name: str, reason: str = "paused by an operator") -> dict[str, Any]:
        row = self.row(conn, name, lock=True)
        _require(row, ("running", "scheduled"), "pause")
        self._set(conn, row.id, status="paused", status_reason=reason)
        return self.get(conn, row.id)

    def resume(self, conn: Connection, name: str) -> dict[str, Any]:
        row = self.row(conn, name, lock=True)
        _require(row, ("paused",), "resume")
        status = "running" if row.started_at is not None else "scheduled"
        self._set(conn, row.id, status=status, status_reason=None)
        return self.get(conn, row.id)

    def cancel(self, conn: Connection, name: str, reason: str = "cancelled by an operator") -> dict[str, Any]:
        """Stops for good: every delivery not yet sent is cancelled (one being sent right now may still go)."""
        row = self.row(conn, name, lock=True)
        _require(row, LIVE, "cancel")
        now = self.clock()
        conn.execute(update(deliveries).where(deliveries.c.campaign_id == row.id,
                                              deliveries.c.status.in_(("queued", "deferred"))).values(
            status="cancelled", reason="cancelled", finished_at=now))
        self._set(conn, row.id, status="cancelled", status_reason=reason, finished_at=now)
        return self.get(conn, row.id)

    def complete_finished(self, conn: Connection) -> list[int]:
        """Running broadcasts with nothing left to send become ``completed``; a cancelled campaign's leases
        that expired (their worker died, so nothing is in flight) become ``cancelled``."""
        now = self.clock()
        cancelled = select(campaigns.c.id).where(campaigns.c.status == "cancelled")
        conn.execute(update(deliveries).where(deliveries.c.campaign_id.in_(cancelled),
                                              deliveries.c.status == "leased", deliveries.c.due_at < now)
                     .values(status="cancelled", reason="cancelled", finished_at=now, lease_owner=None))
        done = []
        for campaign_id in conn.execute(select(campaigns.c.id).where(campaigns.c.status == "running",
                                                                     campaigns.c.kind == "broadcast")).scalars():
            if not ledger.has_open(conn, campaign_id):
                self._set(conn, campaign_id, status="completed", finished_at=self.clock())
                done.append(campaign_id)
        return done

    def _set(self, conn: Connection, campaign_id: int, **values: Any) -> None:
        conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(updated_at=self.clock(), **values))

    # -- transactional -----------------------------------------------------------------------
    def trigger(self, conn: Connection, name: str, contact_id: int, *, key: str | None = None,
                data: dict[str, Any] | None = None) -> dict[str, Any]:
        """One transactional message; the same ``key`` twice is one delivery (a safe retry for the caller)."""
        row = self.row(conn, name)
        if row.kind != "transactional":
            raise Conflict(f"campaign {row.name!r} is a broadcast; trigger sends transactional campaigns only")
        _require(row, ("running",), "trigger")
        return enqueue_one(conn, row, contact_id, key=key, data=data, now=self.clock())

    def progress(self, conn: Connection, name: str) -> dict[str, Any]:
        row = self.row(conn, name)
        counts = ledger.counts(conn, row.id)
        total = sum(counts.values())
        done = total - counts["queued"] - counts["leased"] - counts["deferred"]
        return {"campaign": row.name, "id": row.id, "status": row.status, "status_reason": row.status_reason,
                "audience": row.audience_count, "total": total, "done": done, "counts": counts,
                "reasons": ledger.reasons(conn, row.id), "started_at": row.started_at, "finished_at": row.finished_at}


def _require(row, states: tuple[str, ...], action: str) -> None:
    if row.status not in states:
        raise Conflict(f"cannot {action} campaign {row.name!r}: it is {row.status}")


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _text(value: Any, field: str, limit: int) -> str:
    text = str(value or "").strip()
    if not text or len(text) > limit:
        raise FieldError(field, f"1 to {limit} characters")
    return text



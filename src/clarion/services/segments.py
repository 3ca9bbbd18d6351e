"""Segments: named rules, previewed and explained live, with materialised membership and its changes.

A segment's rule is stored as canonical JSON and shown in the text form. A rule is checked where it is
accepted (create, update, preview): unknown fields and segments, misfit operators and values outside a
field's closed set are RuleErrors; events and topics the store has never seen are ``warnings`` in the
result, not errors (``services.rule_warnings``). Membership is
materialised in ``segment_members``; every refresh records who entered and who left in
``segment_changes`` (what journeys trigger on). Refreshes:

- **full**: the compiled rule over every contact (on demand, and on the segment's schedule:
  ``refresh_minutes``, run by ``clarion segments refresh --due``);
- **incremental**: the rule over the contacts whose data changed since the last refresh: new
  events, consent changes, engagement, profile updates, devices, new suppressions of their
  address and new scores. Conditions relative to the current time (``within 90 days``, ``in next
  7 days``) also change as time passes without any data changing, and so does a contact whose
  address is taken off the suppression list or a topic made double opt-in: those are caught by the
  next full refresh, so a segment should have a schedule (``refresh_minutes`` counts from the last
  *full* refresh). A new or changed rule always refreshes fully first. On PostgreSQL, ids are
  handed out before commit, so an event committed late with a lower id than one already seen can
  be missed by an incremental refresh until the next full one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from time import perf_counter
from typing import Any

from sqlalchemy import Column, Connection, MetaData, Table, delete, func, literal, or_, select, union, update

from ..config import Settings
from ..domain.errors import Conflict, NotFound
from ..domain.rules import InSegment, Rule, RuleError, walk
from ..segments.compiler import CompileContext, compile_rule
from ..segments.explain import explain as explain_rule
from ..segments.rule_json import rule_from_json, rule_to_json
from ..segments.rule_text import format_rule, parse_rule
from ..segments.suggest import did_you_mean
from ..segments.vocabulary import canonical_rule
from ..store.schema import consent_ledger, contacts, devices, events, suppressions
from ..store.schema_scores import contact_scores, engagements, segment_changes, segment_members, segments
from ..store.sql import scratch_tables, tune_for_analytics
from ..store.types import Id
from .clock import utcnow
from .rule_warnings import rule_warnings

MAX_NAME = 100
_scratch = MetaData()
_fresh = Table("clarion_segment_fresh", _scratch, Column("contact_id", Id, primary_key=True), prefixes=["TEMPORARY"])
_candidates = Table("clarion_segment_candidates", _scratch, Column("contact_id", Id, primary_key=True),
                    prefixes=["TEMPORARY"])


@dataclass
class RefreshResult:
    segment: str
    mode: str  # full | incremental
    members: int
    entered: int
    left: int
    examined: int  # contacts evaluated: all (full) or those with changed data (incremental)
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_any(rule: str | dict[str, Any] | Rule) -> Rule:
    """A rule from its text form, its JSON form, or already a model, with closed-set values in their stored
    spelling (RuleError for one outside its set, see ``segments.vocabulary``)."""
    if isinstance(rule, str):
        rule = parse_rule(rule)
    elif isinstance(rule, dict):
        rule = rule_from_json(rule)
    return canonical_rule(rule)


class SegmentService:
    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.clock = clock  # "now" for rules relative to the current time (the demo evaluates as of 1998)

    # -- definitions ---------------------------------------------------------------------
    def create(self, conn: Connection, name: str, rule: str | dict[str, Any] | Rule, *,
               description: str | None = None, refresh_minutes: int | None = None) -> dict[str, Any]:
        name = _clean_name(name)
        if conn.execute(select(segments.c.id).where(segments.c.name == name)).first():
            raise Conflict(f"segment {name!r} already exists")
        model = parse_any(rule)
        self._check_compiles(conn, name, model)
        now = utcnow()
        conn.execute(segments.insert().values(
            name=name, description=description, rule=rule_to_json(model), refresh_minutes=_minutes(refresh_minutes),
            member_count=0, event_mark=0, ledger_mark=0, engagement_mark=0, created_at=now, updated_at=now))
        return {**self.get(conn, name), "warnings": rule_warnings(conn, model)}

    def update(self, conn: Connection, name: str, *, rule: str | dict[str, Any] | Rule | None = None,
               description: str | None = None, refresh_minutes: int | None = None) -> dict[str, Any]:
        row = self._row(conn, name)
        values: dict[str, Any] = {"updated_at": utcnow()}
        warnings: list[str] = []
        if rule is not None:
            model = parse_any(rule)
            self._check_compiles(conn, row.name, model)
            warnings = rule_warnings(conn, model)
            values["rule"] = rule_to_json(model)
            values["refreshed_at"] = None  # the members were chosen by the old rule: the next refresh is full
        if description is not None:
            values["description"] = description
        if refresh_minutes is not None:
            values["refresh_minutes"] = _minutes(refresh_minutes) if refresh_minutes > 0 else None
        conn.execute(update(segments).where(segments.c.id == row.id).values(**values))
        return {**self.get(conn, row.name), "warnings": warnings}

    def delete(self, conn: Connection, name: str) -> None:
        row = self._row(conn, name)
        users = [other.name for other in conn.execute(select(segments.c.name, segments.c.rule))
                 if other.name != row.name and row.name in _referenced(rule_from_json(other.rule))]
        if users:
            raise Conflict(f"segment {row.name!r} is used by: {', '.join(sorted(users))}")
        conn.execute(delete(segments).where(segments.c.id == row.id))

    def get(self, conn: Connection, name: str) -> dict[str, Any]:
        row = self._row(conn, name)
        data = dict(row._mapping)
        data["text"] = format_rule(rule_from_json(row.rule))
        return data

    def list(self, conn: Connection) -> list[dict[str, Any]]:
        return [{**dict(row._mapping), "text": format_rule(rule_from_json(row.rule))}
                for row in conn.execute(select(segments).order_by(segments.c.name))]

    # -- evaluation ----------------------------------------------------------------------
    def context(self, conn: Connection, *, overrides: dict[str, Rule] | None = None,
                segment_name: str | None = None, scope=None) -> CompileContext:
        def resolve(name: str) -> Rule:
            if overrides and name in overrides:
                return overrides[name]
            found = conn.execute(select(segments.c.rule).where(segments.c.name == name)).first()
            if found is None:
                known = conn.execute(select(segments.c.name).order_by(segments.c.name)).scalars()
                raise RuleError(f"unknown segment {name!r}{did_you_mean(name, known)}", "in_segment")
            return rule_from_json(found.rule)

        return CompileContext(now=self.clock(), default_timezone=self.settings.default_timezone,
                              resolve_segment=resolve, segment_name=segment_name, scope=scope)

    def preview(self, conn: Connection, rule: str | dict[str, Any] | Rule, *, sample: int = 10) -> dict[str, Any]:
        """How many contacts match now, and a few of them, without storing anything; with ``warnings`` about
        events and topics the rule names that the store has never seen (``services.rule_warnings``)."""
        model = parse_any(rule)
        query = compile_rule(model, self.context(conn)).subquery()
        tune_for_analytics(conn)
        count = conn.execute(select(func.count()).select_from(query)).scalar_one()
        ids = conn.execute(select(query.c[0]).order_by(query.c[0]).limit(sample)).scalars().all()
        rows = conn.execute(select(contacts.c.id, contacts.c.external_id, contacts.c.email, contacts.c.first_name,
                                   contacts.c.last_name, contacts.c.country).where(contacts.c.id.in_(ids))
                            .order_by(contacts.c.id)) if ids else []
        return {"count": count, "sample": [dict(r._mapping) for r in rows], "warnings": rule_warnings(conn, model)}

    def warnings(self, conn: Connection, rule: dict[str, Any] | Rule | None) -> list[str]:
        """Events and topics a rule (a model or its JSON form) names that the store has never seen."""
        if rule is None:
            return []
        return rule_warnings(conn, rule_from_json(rule) if isinstance(rule, dict) else rule)

    def count(self, conn: Connection, name: str) -> dict[str, Any]:
        """The live count of a segment's rule: ``segment``, ``count`` and ``warnings`` (as for preview)."""
        preview = self.preview(conn, self._rule(conn, name), sample=0)
        return {"segment": name, "count": preview["count"], "warnings": preview["warnings"]}

    def explain(self, conn: Connection, name: str, contact_id: int) -> dict[str, Any]:
        if conn.execute(select(contacts.c.id).where(contacts.c.id == contact_id)).first() is None:
            raise NotFound("contact", contact_id)
        explanation = explain_rule(conn, self._rule(conn, name), self.context(conn), contact_id)
        return {"segment": name, "contact_id": contact_id, **explanation.to_dict()}

    # -- materialised membership ---------------------------------------------------------
    def refresh(self, conn: Connection, name: str, *, incremental: bool = False) -> RefreshResult:
        started = perf_counter()
        row = self._row(conn, name, lock=True)  # PostgreSQL: one refresh of a segment at a time
        marks = _marks(conn)
        tune_for_analytics(conn)
        incremental = incremental and row.refreshed_at is not None  # new or changed rule: a full refresh
        with scratch_tables(conn, _fresh, _candidates):
            examined = self._evaluate(conn, row, incremental)
            entered, left = _apply_changes(conn, row.id, incremental)
        members = conn.execute(select(func.count()).where(segment_members.c.segment_id == row.id)).scalar_one()
        full = {} if incremental else {"full_refreshed_at": marks["at"]}
        conn.execute(update(segments).where(segments.c.id == row.id).values(
            member_count=members, refreshed_at=marks["at"], event_mark=marks["event"], ledger_mark=marks["ledger"],
            engagement_mark=marks["engagement"], **full))
        return RefreshResult(row.name, "incremental" if incremental else "full", members, entered, left, examined,
                             round(perf_counter() - started, 4))

    def _evaluate(self, conn: Connection, row, incremental: bool) -> int:
        """Fill ``_fresh`` with the members among the examined contacts; returns how many were examined."""
        rule = rule_from_json(row.rule)
        if not incremental:
            conn.execute(_fresh.insert().from_select(["contact_id"], compile_rule(rule, self.context(conn))))
            return conn.execute(select(func.count()).select_from(contacts)).scalar_one()
        examined = _fill_candidates(conn, row)
        # Scoped: behaviour subqueries read only the candidates' events (index seeks, not a scan).
        candidates = select(_candidates.c.contact_id)
        query = compile_rule(rule, self.context(conn, scope=candidates))
        conn.execute(_fresh.insert().from_select(["contact_id"], query.where(contacts.c.id.in_(candidates))))
        return examined

    def due(self, conn: Connection) -> list[str]:
        """Segments whose scheduled full refresh is due."""
        now = utcnow()
        rows = conn.execute(select(segments.c.name, segments.c.refresh_minutes, segments.c.full_refreshed_at)
                            .where(segments.c.refresh_minutes.is_not(None)).order_by(segments.c.name))
        return [r.name for r in rows if r.full_refreshed_at is None
                or (now - r.full_refreshed_at).total_seconds() >= r.refresh_minutes * 60]

    def members(self, conn: Connection, name: str, *, limit: int = 100, offset: int = 0) -> list[int]:
        row = self._row(conn, name)
        return list(conn.execute(select(segment_members.c.contact_id).where(segment_members.c.segment_id == row.id)
                                 .order_by(segment_members.c.contact_id).limit(limit).offset(offset)).scalars())

    def changes(self, conn: Connection, name: str, *, after_id: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        row = self._row(conn, name)
        c = segment_changes
        return [dict(r._mapping) for r in conn.execute(
            select(c.c.id, c.c.contact_id, c.c.change, c.c.at).where(c.c.segment_id == row.id, c.c.id > after_id)
            .order_by(c.c.id).limit(limit))]

    # -- helpers -------------------------------------------------------------------------
    def _row(self, conn: Connection, name: str, *, lock: bool = False):
        query = select(segments).where(segments.c.name == name)
        row = conn.execute(query.with_for_update() if lock else query).first()
        if row is None:
            raise NotFound("segment", name)
        return row

    def _rule(self, conn: Connection, name: str) -> Rule:
        return rule_from_json(self._row(conn, name).rule)

    def _check_compiles(self, conn: Connection, name: str, model: Rule) -> None:
        """Unknown fields, unknown segments and cycles (through this segment's new rule) raise RuleError."""
        compile_rule(model, self.context(conn, overrides={name: model}, segment_name=name))


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME:
        raise RuleError(f"a segment name is 1..{MAX_NAME} characters", "name")
    return name


def _minutes(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise RuleError("refresh_minutes is a positive number of minutes", "refresh_minutes")
    return value


def _referenced(rule: Rule) -> set[str]:
    return {node.segment for node, _ in walk(rule) if isinstance(node, InSegment)}


def _marks(conn: Connection) -> dict[str, Any]:
    """What this refresh sees: the latest event and consent change ids, and the time (read first)."""
    return {"at": utcnow(),
            "event": conn.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one(),
            "ledger": conn.execute(select(func.coalesce(func.max(consent_ledger.c.id), 0))).scalar_one(),
            "engagement": conn.execute(select(func.coalesce(func.max(engagements.c.id), 0))).scalar_one()}


def _fill_candidates(conn: Connection, row) -> int:
    """The contacts whose data changed since the segment's last refresh: new events, consent changes,
    engagement, profile updates, new or seen devices, new suppressions of their address, new scores."""
    since = row.refreshed_at
    s = contact_scores.c
    changed = union(
        select(events.c.contact_id).where(events.c.id > row.event_mark),
        select(consent_ledger.c.contact_id).where(consent_ledger.c.id > row.ledger_mark,
                                                  consent_ledger.c.contact_id.is_not(None)),
        select(engagements.c.contact_id).where(engagements.c.id > row.engagement_mark),
        select(contacts.c.id).where(contacts.c.updated_at > since),
        select(devices.c.contact_id).where(or_(devices.c.last_seen_at > since, devices.c.invalidated_at > since)),
        select(contacts.c.id).join(suppressions, or_(suppressions.c.address == contacts.c.email,
                                                     suppressions.c.address == contacts.c.phone))
        .where(suppressions.c.created_at > since),
        select(s.contact_id).where(or_(s.rfm_at > since, s.lead_at > since, s.predicted_at > since)))
    conn.execute(_candidates.insert().from_select(["contact_id"], changed))
    return conn.execute(select(func.count()).select_from(_candidates)).scalar_one()


def _apply_changes(conn: Connection, segment_id: int, incremental: bool) -> tuple[int, int]:
    """Members in ``_fresh`` (of the examined contacts) replace the stored ones; returns (entered, left).

    The changes are written first; members are then removed and added from this refresh's change
    rows (those past the highest change id seen before), so both always agree.
    """
    m, c = segment_members, segment_changes
    current = select(m.c.contact_id).where(m.c.segment_id == segment_id)
    examined = current.where(m.c.contact_id.in_(select(_candidates.c.contact_id))) if incremental else current
    leaving = examined.where(m.c.contact_id.not_in(select(_fresh.c.contact_id))).subquery()
    entering = select(_fresh.c.contact_id).where(_fresh.c.contact_id.not_in(current)).subquery()
    at = literal(utcnow(), type_=c.c.at.type)
    sid = literal(segment_id, type_=Id)
    columns = ["segment_id", "contact_id", "change", "at"]

    def this_refresh(mark: int, change: str):
        return select(c.c.contact_id).where(c.c.segment_id == segment_id, c.c.id > mark, c.c.change == change)

    mark = _last_change_id(conn)
    conn.execute(c.insert().from_select(columns, select(sid, leaving.c[0], literal("left"), at)))
    conn.execute(delete(m).where(m.c.segment_id == segment_id, m.c.contact_id.in_(this_refresh(mark, "left"))))
    conn.execute(c.insert().from_select(columns, select(sid, entering.c[0], literal("entered"), at)))
    conn.execute(m.insert().from_select(["segment_id", "contact_id", "entered_at"],
                                        select(sid, this_refresh(mark, "entered").subquery().c[0], at)))
    counts = dict(conn.execute(select(c.c.change, func.count()).where(c.c.segment_id == segment_id, c.c.id > mark)
                               .group_by(c.c.change)).all())
    return counts.get("entered", 0), counts.get("left", 0)


def _last_change_id(conn: Connection) -> int:
    return conn.execute(select(func.coalesce(func.max(segment_changes.c.id), 0))).scalar_one()

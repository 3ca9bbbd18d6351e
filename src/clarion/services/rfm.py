"""Compute RFM scores for every customer, set-based in SQL, and record segment transitions.

The inputs per customer are the last order time (recency), the number of orders (frequency) and
the revenue (monetary) of ``Order Completed`` events: by default over all time from the
per-contact aggregates (no event scan), or from the events in a window ending at a reference time.
Scores and segment names follow :mod:`clarion.scoring.rfm`; the rank arithmetic is the same
integer formula on SQLite and PostgreSQL, so both stores give identical scores.

``rfm_at`` is when a contact's scores last changed: a recompute rewrites only the contacts whose
scores moved (so an incremental segment refresh afterwards examines just those). A recompute writes
one ``rfm_transitions`` row per contact whose segment changed (including
leaving RFM: a customer with no order in the window any more), not for first assignments.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    func,
    literal,
    null,
    or_,
    select,
    update,
)

from ..domain.events import ORDER_COMPLETED
from ..scoring.rfm import LABELS, SCORES, SEGMENT_GRID, SEGMENTS
from ..store.schema import contact_aggregates, events
from ..store.schema_scores import contact_scores, rfm_transitions
from ..store.sql import insert_for, scratch_tables, tune_for_analytics
from ..store.types import Id
from .clock import utcnow

_scratch = MetaData()
_new = Table("clarion_rfm_new", _scratch, Column("contact_id", Id, primary_key=True), Column("r", Integer),
             Column("f", Integer), Column("m", Integer), Column("segment", String(32)), prefixes=["TEMPORARY"])


@dataclass
class RfmResult:
    scored: int
    transitions: int
    unscored: int  # had RFM scores, now without orders in the window
    window_days: int | None
    as_of: datetime
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "as_of": self.as_of.isoformat()}


def compute(conn: Connection, *, window_days: int | None = None, as_of: datetime | None = None) -> RfmResult:
    """Score every customer with an order in the window (all time when None) up to ``as_of`` (now)."""
    started = utcnow()
    now = as_of or started
    if window_days is not None and window_days < 1:
        raise ValueError("window_days must be at least 1")
    tune_for_analytics(conn)
    with scratch_tables(conn, _new):
        conn.execute(_new.insert().from_select(["contact_id", "r", "f", "m", "segment"], _scores(window_days, as_of)))
        scored = conn.execute(select(func.count()).select_from(_new)).scalar_one()
        transitions = _record_transitions(conn, started)
        unscored = _clear_unscored(conn)
        _upsert(conn, started)
    if conn.dialect.name == "postgresql":  # segment plans join contact_scores: keep its statistics current
        conn.exec_driver_sql("ANALYZE contact_scores")
    return RfmResult(scored, transitions, unscored, window_days, now, (utcnow() - started).total_seconds())


def _inputs(window_days: int | None, as_of: datetime | None):
    """(contact_id, last_at, orders, revenue) per customer with an order in the window."""
    if window_days is None and as_of is None:
        a = contact_aggregates
        return (select(a.c.contact_id, a.c.last_order_at.label("last_at"), a.c.order_count.label("orders"),
                       a.c.revenue_total.label("revenue")).where(a.c.order_count > 0).subquery("rfm_inputs"))
    conditions = [events.c.name == ORDER_COMPLETED]
    if as_of is not None:
        conditions.append(events.c.occurred_at <= as_of)
    if window_days is not None:
        conditions.append(events.c.occurred_at > (as_of or utcnow()) - timedelta(days=window_days))
    return (select(events.c.contact_id, func.max(events.c.occurred_at).label("last_at"),
                   func.count().label("orders"), func.coalesce(func.sum(events.c.revenue), 0.0).label("revenue"))
            .where(and_(*conditions)).group_by(events.c.contact_id).subquery("rfm_inputs"))


def _scores(window_days: int | None, as_of: datetime | None):
    """The scores and segment per customer: score = 1 + floor(5 * (rank - 1) / n), ties share a rank."""
    inputs = _inputs(window_days, as_of)
    n = func.count().over()

    def score(column):
        return literal(1) + (literal(SCORES) * (func.rank().over(order_by=column) - 1)) // n

    ranked = select(inputs.c.contact_id, score(inputs.c.last_at).label("r"), score(inputs.c.orders).label("f"),
                    score(inputs.c.revenue).label("m")).subquery("rfm_ranked")
    fm = (ranked.c.f + ranked.c.m + 1) // 2
    cells = [(and_(ranked.c.r == r, fm == f), SEGMENT_GRID[f - 1][r - 1])
             for f in range(1, SCORES + 1) for r in range(1, SCORES + 1)]
    return select(ranked.c.contact_id, ranked.c.r, ranked.c.f, ranked.c.m, case(*cells, else_=null()))


def _record_transitions(conn: Connection, at: datetime) -> int:
    s = contact_scores
    moved = (select(_new.c.contact_id, s.c.rfm_segment, _new.c.segment, literal(at, type_=rfm_transitions.c.at.type))
             .join(s, s.c.contact_id == _new.c.contact_id)
             .where(s.c.rfm_segment.is_not(None), s.c.rfm_segment != _new.c.segment))
    left = (select(s.c.contact_id, s.c.rfm_segment, null(), literal(at, type_=rfm_transitions.c.at.type))
            .where(s.c.rfm_segment.is_not(None), s.c.contact_id.not_in(select(_new.c.contact_id))))
    columns = ["contact_id", "from_segment", "to_segment", "at"]
    conn.execute(rfm_transitions.insert().from_select(columns, moved))
    conn.execute(rfm_transitions.insert().from_select(columns, left))
    # (INSERT ... SELECT has no reliable rowcount through psycopg: count what this run wrote)
    return conn.execute(select(func.count()).where(rfm_transitions.c.at == at)).scalar_one()


def _clear_unscored(conn: Connection) -> int:
    s = contact_scores
    return conn.execute(update(s).where(s.c.rfm_segment.is_not(None), s.c.contact_id.not_in(select(_new.c.contact_id)))
                        .values(rfm_r=None, rfm_f=None, rfm_m=None, rfm_segment=None)).rowcount


def _upsert(conn: Connection, at: datetime) -> None:
    statement = insert_for(conn, contact_scores).from_select(
        ["contact_id", "rfm_r", "rfm_f", "rfm_m", "rfm_segment", "rfm_at"],
        select(_new.c.contact_id, _new.c.r, _new.c.f, _new.c.m, _new.c.segment,
               literal(at, type_=contact_scores.c.rfm_at.type)).where(literal(True)))
    excluded, s = statement.excluded, contact_scores.c
    # Only rows whose scores changed are rewritten: a recompute of a million customers mostly confirms
    # them, and on PostgreSQL every rewritten row is a new tuple version, index entries and WAL.
    changed = or_(s.rfm_r.is_distinct_from(excluded.rfm_r), s.rfm_f.is_distinct_from(excluded.rfm_f),
                  s.rfm_m.is_distinct_from(excluded.rfm_m), s.rfm_segment.is_distinct_from(excluded.rfm_segment))
    conn.execute(statement.on_conflict_do_update(index_elements=["contact_id"], set_={
        "rfm_r": excluded.rfm_r, "rfm_f": excluded.rfm_f, "rfm_m": excluded.rfm_m,
        "rfm_segment": excluded.rfm_segment, "rfm_at": excluded.rfm_at}, where=changed))


def summary(conn: Connection) -> list[dict[str, Any]]:
    """Per named segment: contacts, and their average orders, revenue and days since the last order."""
    s, a = contact_scores, contact_aggregates
    rows = conn.execute(
        select(s.c.rfm_segment, func.count(), func.avg(a.c.order_count), func.avg(a.c.revenue_total),
               func.min(a.c.last_order_at), func.max(a.c.last_order_at))
        .join(a, a.c.contact_id == s.c.contact_id, isouter=True)
        .where(s.c.rfm_segment.is_not(None)).group_by(s.c.rfm_segment)).all()
    found = {row[0]: row for row in rows}
    return [{"segment": name, "label": LABELS[name], "contacts": found[name][1] if name in found else 0,
             "avg_orders": _round(found[name][2]) if name in found else None,
             "avg_revenue": _round(found[name][3]) if name in found else None}
            for name in SEGMENTS]


def transitions(conn: Connection, *, limit: int = 100) -> list[dict[str, Any]]:
    t = rfm_transitions
    rows = conn.execute(select(t).order_by(t.c.id.desc()).limit(limit))
    return [dict(row._mapping) for row in rows]


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)

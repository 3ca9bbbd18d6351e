"""The attribution pass: credits new goal events to the messages that earned them (tracking.attribution).

Incremental. ``workspace_settings`` key ``attribution`` keeps ``{"event_mark": N}``: every event with an id
up to N has been examined. A run reads the events above the mark whose name is the goal of a campaign
that has started, and the touches of their contacts (human clicks and opens, deliveries), each kind
within its longest window among the goals, in one set-based query each per chunk of events; the model
picks the credited touch and the pass writes one ``converted`` engagement (``event_id`` = the event,
``occurred_at`` = its time, ``revenue`` in the workspace currency). The mark then moves past what was read.

- **Once.** ``engagements.event_id`` is unique and the events query skips events already credited, so a
  second run, or a second worker, credits nothing twice. Runs hold the mark's row (``FOR UPDATE`` on
  PostgreSQL; SQLite has one writer), so two workers take turns instead of failing on the unique key.
- **Late events.** A purchase imported a day late has an old ``occurred_at`` but a new id: it is above
  the mark, and is credited by the touches around its own time when it arrives.
- **Stragglers.** On PostgreSQL a transaction can commit an id below one that another transaction
  committed first. Each run that finds new events (of any name) looks again at the uncredited goal events
  among the last ``RESCAN_IDS`` ids below the mark, so an event whose transaction was still open at the
  last run is credited by the next run after any later event; an import batch that stays open while more
  than ``RESCAN_IDS`` other events commit can still be missed (``rewind`` finds it).
- **Nothing new.** One query (the mark beside ``max(events.id)``, an index lookup) and no write. New
  events that are no campaign's goal cost a few more statements and move the mark; nothing is created.
- **Goals.** A goal is read when the pass runs: a campaign's goal changed later applies to the events
  that arrive after the change (``rewind`` examines every event again; credited ones stay as they are).

Revenue: the event's ``revenue`` column (Order Completed), else a numeric ``revenue`` property, with its
currency (none: the workspace currency), converted with the user's rates (services.currency). Without a
rate the conversion still counts, with no revenue and reason ``no_rate:EUR``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, MetaData, Table, and_, delete, exists, func, literal, select, union_all

from ..config import Settings
from ..domain.campaigns import ConversionGoal
from ..store.schema import events
from ..store.schema_delivery import campaigns, deliveries
from ..store.schema_scores import engagements, workspace_settings
from ..store.sql import insert_for
from ..store.types import Id, UtcDateTime
from ..store.workspace import read_document, write_document
from ..tracking import engagements as recorded
from ..tracking.attribution import TOUCH_KINDS, CandidateTouch, Conversion, credit, longest_window
from .clock import utcnow
from .currency import CurrencySettings, get_currency

SETTINGS_KEY = "attribution"
CHUNK = 2_000  # events per set-based round: a few thousand bound rows, a few MB of touches
# Ids below the mark looked at again: more than the events that commit within one transaction's lifetime
# of an API ingest (a few ms at thousands of events/s); a 50,000-event import batch can exceed it.
RESCAN_IDS = 1_000
# The kind of each touch in the model. A delivery is the ledger's ``sent`` row (the worker's ``received``
# engagement is written with it and says the same) or a provider's ``delivered`` receipt.
_TOUCH_KIND = {"clicked": "click", "opened": "open", "delivered": "delivery", "sent": "delivery"}

# Per chunk: each converting contact's spans of interest, from its first event less the longest window of
# each touch kind to its last event. No primary key on purpose: with one, SQLite's planner (no statistics
# on a scratch table) scans all of ``engagements`` and looks each row up here; without, it reads this
# table and seeks each contact's range in the (contact_id, action, occurred_at) index: 0.05 s instead of
# 0.33 s for 2,000 contacts among 312,000 engagements, and the scan grows with the table.
_scratch = MetaData()
_windows = Table("clarion_attribution_windows", _scratch, Column("contact_id", Id, nullable=False),
                 Column("until", UtcDateTime, nullable=False), Column("since_click", UtcDateTime, nullable=False),
                 Column("since_open", UtcDateTime, nullable=False),
                 Column("since_delivery", UtcDateTime, nullable=False), prefixes=["TEMPORARY"])


@dataclass
class Tally:
    examined: int = 0  # goal events above the mark not credited yet
    credited: int = 0
    revenue: float = 0.0  # of the credited conversions, in the workspace currency
    no_rate: int = 0  # credited conversions whose currency had no rate (revenue unknown)


class AttributionService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def run(self, conn: Connection, limit: int | None = None) -> dict[str, Any]:
        """Credit the goal events that arrived since the last run (at most ``limit`` of them; None: all).

        Needs a write transaction. Returns examined, credited, revenue, no_rate, event_mark and ``more``
        (True when ``limit`` stopped it before the newest event)."""
        mark, top = _peek(conn)
        if top <= mark:
            return _summary(Tally(), mark, more=False)
        mark = _lock_mark(conn)  # another run may have moved it while this one waited
        goals = campaign_goals(conn)
        if top <= mark or not goals:
            _save_mark(conn, max(mark, top))
            return _summary(Tally(), max(mark, top), more=False)
        crediting = _Crediting(conn, goals, get_currency(conn))
        crediting.credit(crediting.events(max(mark - RESCAN_IDS, 0), mark))  # stragglers (not "examined")
        tally, cursor = crediting.new_events(mark, top, limit)
        crediting.finish()
        _save_mark(conn, cursor)
        return _summary(tally, cursor, more=cursor < top)

    @staticmethod
    def rewind(conn: Connection, mark: int = 0) -> None:
        """Examine every event above ``mark`` again on the next run (after a goal changed, for example)."""
        _lock_mark(conn)
        _save_mark(conn, max(int(mark), 0))

    @staticmethod
    def mark(conn: Connection) -> int:
        return _peek(conn)[0]


def campaign_goals(conn: Connection) -> dict[int, ConversionGoal]:
    """The goal of every marketing campaign that has started (only those have touches). Transactional sends
    (receipts, codes) answer something the person did: crediting them would count their next order twice."""
    rows = conn.execute(select(campaigns.c.id, campaigns.c.settings).where(
        campaigns.c.started_at.is_not(None), campaigns.c.marketing.is_(True)))
    return {row.id: ConversionGoal.model_validate((row.settings or {}).get("goal") or {}) for row in rows}


class _Crediting:
    """One run's work: reads chunks of events with their touches, writes the conversions."""

    def __init__(self, conn: Connection, goals: Mapping[int, ConversionGoal], currency: CurrencySettings) -> None:
        self.conn = conn
        self.goals = goals
        self.currency = currency
        self.names = sorted({goal.event for goal in goals.values()})
        # How far back each kind of touch can lie: its longest window among the goals.
        self.reach = {kind: longest_window(goals.values(), kind) for kind in TOUCH_KINDS}
        self.tally = Tally()
        self._windows_made = False  # the scratch table, made when a chunk first has events to credit

    def new_events(self, mark: int, top: int, limit: int | None) -> tuple[Tally, int]:
        """Chunks of events in (mark, top], up to ``limit``; returns the tally and the new mark."""
        cursor = mark
        while cursor < top and (limit is None or self.tally.examined < limit):
            size = CHUNK if limit is None else min(CHUNK, limit - self.tally.examined)
            rows = self.events(cursor, top, size)
            self.tally.examined += len(rows)
            cursor = top if len(rows) < size else rows[-1].id  # a short chunk: nothing else up to top
            self.credit(rows)
        return self.tally, cursor

    def finish(self) -> None:
        """Drop the scratch table (after an error the rolled-back transaction takes it along)."""
        if self._windows_made:
            _windows.drop(self.conn)
            self._windows_made = False

    def events(self, after: int, upto: int, size: int | None = None) -> Sequence[Any]:
        """Goal-named events in (after, upto] not credited yet, by id."""
        e = events.c
        query = (select(e.id, e.contact_id, e.name, e.occurred_at, e.properties, e.revenue, e.currency)
                 .where(e.id > after, e.id <= upto, e.name.in_(self.names),
                        ~exists().where(engagements.c.event_id == e.id))
                 .order_by(e.id))
        return self.conn.execute(query if size is None else query.limit(size)).all()

    def credit(self, rows: Sequence[Any]) -> None:
        if not rows:
            return
        touches = self._touches(rows)
        pending = []
        for row in rows:
            conversion = Conversion(row.contact_id, row.occurred_at, row.name, row.properties or {})
            touch = credit(conversion, touches.get(row.contact_id, ()))
            if touch is not None:
                pending.append(self._conversion(row, touch))
        _record_conversions(self.conn, pending)

    def _conversion(self, row: Any, touch: CandidateTouch) -> tuple[recorded.Touch, datetime, dict[str, Any]]:
        """The engagement crediting ``row`` to ``touch``: (its delivery, time, details), tallied."""
        amount, currency = event_revenue(row)
        converted = self.currency.convert(amount, currency)
        reason = f"no_rate:{converted.missing_rate[:32]}" if converted.missing_rate else None
        self.tally.credited += 1
        self.tally.revenue += converted.amount or 0.0
        self.tally.no_rate += reason is not None
        target = recorded.Touch(touch.delivery_id, row.contact_id, touch.campaign_id, touch.step, touch.channel, None)
        return target, row.occurred_at, {"event_id": row.id, "revenue": converted.amount, "reason": reason}

    def _touches(self, rows: Sequence[Any]) -> dict[int, list[CandidateTouch]]:
        """The rows' contacts' touches that could be credited: each kind within its longest window."""
        self._fill_windows(rows)
        by_contact: dict[int, list[CandidateTouch]] = defaultdict(list)
        for touch in self.conn.execute(_touch_query()):
            goal = self.goals.get(touch.campaign_id)
            if goal is not None:
                by_contact[touch.contact_id].append(CandidateTouch(
                    touch.delivery_id, touch.campaign_id, touch.step, touch.channel, _TOUCH_KIND[touch.action],
                    touch.at, goal))
        return by_contact

    def _fill_windows(self, rows: Iterable[Any]) -> None:
        spans: dict[int, tuple[datetime, datetime]] = {}
        for row in rows:
            first, last = spans.get(row.contact_id, (row.occurred_at, row.occurred_at))
            spans[row.contact_id] = (min(first, row.occurred_at), max(last, row.occurred_at))
        if not self._windows_made:
            _windows.drop(self.conn, checkfirst=True)  # a run that failed leaves none (DDL rolls back), but be sure
            _windows.create(self.conn)
            self._windows_made = True
        self.conn.execute(delete(_windows))
        self.conn.execute(_windows.insert(), [
            {"contact_id": contact_id, "until": last, **{f"since_{kind}": first - reach
                                                         for kind, reach in self.reach.items()}}
            for contact_id, (first, last) in spans.items()])


def _record_conversions(conn: Connection, pending: Iterable[tuple[recorded.Touch, datetime, dict[str, Any]]]) -> None:
    """One ``converted`` engagement each, in one executemany (a catch-up over thousands of conversions)."""
    recorded.record_many(conn, [(touch, "converted", at, details) for touch, at, details in pending])


def _touch_query():
    """Human clicks, opens and receipts, and sent ledger rows, each kind within its own span."""
    w = _windows.c
    parts = [_engaged("clicked", w.since_click), _engaged("opened", w.since_open),
             _engaged("delivered", w.since_delivery)]
    d = deliveries.c
    parts.append(select(d.contact_id, d.id.label("delivery_id"), d.campaign_id, d.step, d.channel,
                        literal("sent").label("action"), d.sent_at.label("at"))
                 .select_from(_windows)
                 .join(deliveries, and_(d.contact_id == w.contact_id, d.sent_at >= w.since_delivery,
                                        d.sent_at <= w.until))
                 .where(d.status == "sent"))
    return union_all(*parts)


def _engaged(action: str, since: Any):
    e, w = engagements.c, _windows.c
    return (select(e.contact_id, e.delivery_id, e.campaign_id, e.step, e.channel, e.action, e.occurred_at.label("at"))
            .select_from(_windows)
            .join(engagements, and_(e.contact_id == w.contact_id, e.action == action, e.occurred_at >= since,
                                    e.occurred_at <= w.until))
            .where(e.machine.is_(False), e.delivery_id.is_not(None)))


def event_revenue(row: Any) -> tuple[float | None, str | None]:
    """(amount, currency) of an event: the revenue column (Order Completed), else its ``revenue`` property."""
    if row.revenue is not None:
        return row.revenue, row.currency
    properties = row.properties or {}
    amount = _finite(properties.get("revenue"))
    currency = properties.get("currency")
    if amount is None or not isinstance(currency, str) or not currency.strip():
        return amount, None
    return amount, currency.strip().upper()


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


# -- the mark ---------------------------------------------------------------------------------
def _peek(conn: Connection) -> tuple[int, int]:
    """(mark, highest event id) in one query: all a run with nothing new costs."""
    document = select(workspace_settings.c.document).where(workspace_settings.c.key == SETTINGS_KEY)
    top = select(func.max(events.c.id))
    row = conn.execute(select(document.scalar_subquery().label("document"),
                              top.scalar_subquery().label("top"))).one()
    return _mark_of(row.document), row.top or 0


def _lock_mark(conn: Connection) -> int:
    """The mark, its row locked until the transaction ends (PostgreSQL; SQLite writers are serial)."""
    conn.execute(insert_for(conn, workspace_settings).values(
        key=SETTINGS_KEY, document={"event_mark": 0}, updated_at=utcnow()).on_conflict_do_nothing(
        index_elements=["key"]))
    return _mark_of(read_document(conn, SETTINGS_KEY, lock=True))


def _save_mark(conn: Connection, mark: int) -> None:
    write_document(conn, SETTINGS_KEY, {"event_mark": mark}, utcnow())


def _mark_of(document: Any) -> int:
    return int(document.get("event_mark", 0)) if isinstance(document, dict) else 0


def _summary(tally: Tally, mark: int, *, more: bool) -> dict[str, Any]:
    return {"examined": tally.examined, "credited": tally.credited, "revenue": round(tally.revenue, 2),
            "no_rate": tally.no_rate, "event_mark": mark, "more": more}

"""The send ledger: leasing due deliveries, recording decisions and checkpointing results.

Leasing takes due rows of one campaign with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so workers on
many machines never take the same row; on SQLite the write transaction (``BEGIN IMMEDIATE``) makes
one writer at a time. A leased row's ``due_at`` is its lease expiry: if the worker dies, the row is due
again then and another worker takes it. A row becomes ``sent`` only after the channel confirmed the
send (the checkpoint), never when it was fetched: a crash between the two sends the message again
(at-least-once), with the same Message-ID and idempotency key, and loses nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, or_, select, update

from ..store.schema_delivery import deliveries, delivery_log

# Work is picked oldest state first: expired leases (a dead worker's rows), then retries, then new rows.
LEASABLE = ("leased", "deferred", "queued")
OPEN_STATES = ("queued", "leased", "deferred")


@dataclass(frozen=True)
class LogEntry:
    delivery_id: int
    campaign_id: int
    attempt: int
    outcome: str
    reason: str | None = None
    code: str | None = None
    provider_id: str | None = None
    detail: str | None = None


def due_rows(conn: Connection, campaign_id: int, now: datetime, limit: int) -> list[Any]:
    """Up to ``limit`` due deliveries of one campaign, locked for this transaction."""
    rows: list[Any] = []
    for status in LEASABLE:
        if len(rows) >= limit:
            break
        query = (select(deliveries).where(deliveries.c.campaign_id == campaign_id, deliveries.c.status == status,
                                          deliveries.c.due_at <= now)
                 .order_by(deliveries.c.due_at).limit(limit - len(rows)))
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows.extend(conn.execute(query).all())
    return rows


def lease(conn: Connection, rows: Sequence[Any], worker: str, now: datetime, lease_for: timedelta) -> None:
    """Marks ``rows`` leased by ``worker`` until ``now + lease_for``; each lease is one attempt."""
    if not rows:
        return
    # One statement for the batch: every row gets the same values.
    conn.execute(update(deliveries).where(deliveries.c.id.in_([row.id for row in rows])).values(
        status="leased", lease_owner=worker, due_at=now + lease_for, attempts=deliveries.c.attempts + 1,
        first_attempt_at=func.coalesce(deliveries.c.first_attempt_at, now), reason=None, detail=None))


def settle(conn: Connection, changes: Iterable[dict[str, Any]]) -> None:
    """Applies final or deferred states: each change has ``b_id``, ``status``, ``reason``, ``detail``,
    ``due_at``, ``sent_at``, ``finished_at``, ``provider_id``, ``message_id``."""
    changes = list(changes)
    if not changes:
        return
    # A final state is never overwritten (OR instead of IN: expanding IN cannot be used with executemany).
    still_open = or_(*(deliveries.c.status == state for state in OPEN_STATES))
    conn.execute(update(deliveries).where(deliveries.c.id == bindparam("b_id"), still_open).values(
        status=bindparam("status"), reason=bindparam("reason"), detail=bindparam("detail"),
        due_at=bindparam("due_at"), sent_at=bindparam("sent_at"), finished_at=bindparam("finished_at"),
        provider_id=bindparam("provider_id"), message_id=bindparam("message_id"), lease_owner=None), changes)


def change(row: Any, status: str, *, reason: str | None = None, detail: str | None = None,
           due_at: datetime | None = None, sent_at: datetime | None = None, finished_at: datetime | None = None,
           provider_id: str | None = None, message_id: str | None = None) -> dict[str, Any]:
    return {"b_id": row.id, "status": status, "reason": reason, "detail": (detail or None) and detail[:2000],
            "due_at": due_at or row.due_at, "sent_at": sent_at, "finished_at": finished_at,
            "provider_id": provider_id, "message_id": message_id or row.message_id}


def release(conn: Connection, ids: Sequence[int], now: datetime) -> None:
    """Gives leased rows back untouched (the campaign paused while they were in hand): not an attempt."""
    if ids:
        conn.execute(update(deliveries).where(deliveries.c.id.in_(ids), deliveries.c.status == "leased").values(
            status="queued", lease_owner=None, due_at=now, attempts=deliveries.c.attempts - 1))


def write_log(conn: Connection, entries: Iterable[LogEntry], now: datetime, worker: str | None) -> None:
    rows = [{"delivery_id": e.delivery_id, "campaign_id": e.campaign_id, "at": now, "attempt": e.attempt,
             "outcome": e.outcome, "reason": e.reason, "code": e.code and e.code[:40],
             "provider_id": e.provider_id, "detail": e.detail and e.detail[:2000], "worker": worker}
            for e in entries]
    if rows:
        conn.execute(delivery_log.insert(), rows)


def by_message_id(conn: Connection, message_id: str) -> Any:
    """The delivery whose Clarion message id ("<delivery id>.<key>", echoed back by a provider) this is, or
    None: looked up by primary key, and the whole id must match, so a guessed id finds nothing."""
    prefix = message_id.split(".", 1)[0]
    if not (prefix.isascii() and prefix.isdecimal()):
        return None
    return conn.execute(select(deliveries).where(deliveries.c.id == int(prefix),
                                                 deliveries.c.message_id == message_id[:250])).first()


def counts(conn: Connection, campaign_id: int) -> dict[str, int]:
    """Deliveries per state, from the ledger (never from what a worker fetched)."""
    rows = conn.execute(select(deliveries.c.status, func.count()).where(deliveries.c.campaign_id == campaign_id)
                        .group_by(deliveries.c.status))
    found = {status: 0 for status in ("queued", "leased", "deferred", "sent", "failed", "skipped", "cancelled")}
    found.update({status: count for status, count in rows})
    return found


def reasons(conn: Connection, campaign_id: int) -> list[dict[str, Any]]:
    """(state, reason, count) for the campaign's skipped, deferred and failed deliveries."""
    d = deliveries.c
    rows = conn.execute(select(d.status, d.reason, func.count().label("count"))
                        .where(d.campaign_id == campaign_id, d.reason.is_not(None))
                        .group_by(d.status, d.reason).order_by(d.status, func.count().desc()))
    return [dict(row._mapping) for row in rows]


def has_open(conn: Connection, campaign_id: int) -> bool:
    d = deliveries.c
    return conn.execute(select(d.id).where(d.campaign_id == campaign_id, d.status.in_(OPEN_STATES))
                        .limit(1)).first() is not None


def recent_error_rate(conn: Connection, campaign_id: int, window: int) -> tuple[int, float]:
    """Among the campaign's latest ``window`` final send outcomes, how many there were and the failed share.

    Temporary errors (greylisting, a busy server) are not counted: they are retried and usually succeed.
    Bad addresses are: a list full of them is what ruins a sender's reputation."""
    log = delivery_log.c
    latest = (select(log.outcome).where(log.campaign_id == campaign_id,
                                        log.outcome.in_(("sent", "bad_address", "failed")))
              .order_by(log.id.desc()).limit(window).subquery())
    outcomes = list(conn.execute(select(latest.c.outcome)).scalars())
    if not outcomes:
        return 0, 0.0
    return len(outcomes), sum(1 for o in outcomes if o != "sent") / len(outcomes)

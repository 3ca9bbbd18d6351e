"""Rate limits that hold across every worker, kept in the database they already share.

* :func:`take_tokens`: a token bucket per key (the channel: ``email``) refilled at
  ``rate`` messages per second up to ``burst``. A worker takes tokens in the same transaction in which
  it leases rows, and leases no more rows than it got tokens, so N workers together stay under the rate.
* :func:`claim_slots`: at most ``limit`` concurrent connections per key. A worker holds slots with an
  expiry it renews while it runs; a dead worker's slots expire and go to the others.

On PostgreSQL the bucket row is locked (``FOR UPDATE``) while it is read and written; on SQLite the
write transaction already makes one writer at a time.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, case, or_, select, update

from ..store.schema_delivery import throttle_buckets, throttle_slots
from ..store.sql import insert_for


def take_tokens(conn: Connection, key: str, wanted: int, rate: float, burst: float, now: datetime) -> int:
    """Takes up to ``wanted`` tokens; returns how many were granted (0 when the bucket is empty).

    ``rate <= 0`` means unlimited. Tokens not used afterwards can be returned with :func:`give_back`.
    """
    if rate <= 0 or wanted <= 0:
        return max(wanted, 0)
    burst = max(burst, 1.0)
    conn.execute(insert_for(conn, throttle_buckets).values(key=key, tokens=burst, updated_at=now)
                 .on_conflict_do_nothing(index_elements=["key"]))
    query = select(throttle_buckets.c.tokens, throttle_buckets.c.updated_at).where(throttle_buckets.c.key == key)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).one()
    elapsed = max((now - row.updated_at).total_seconds(), 0.0)
    available = min(burst, row.tokens + elapsed * rate)
    granted = min(wanted, math.floor(available))
    conn.execute(update(throttle_buckets).where(throttle_buckets.c.key == key)
                 .values(tokens=available - granted, updated_at=max(now, row.updated_at)))
    return granted


def give_back(conn: Connection, key: str, tokens: int, burst: float) -> None:
    if tokens > 0:
        column = throttle_buckets.c.tokens
        conn.execute(update(throttle_buckets).where(throttle_buckets.c.key == key)
                     .values(tokens=_at_most(column + tokens, max(burst, 1.0))))


def _at_most(expression, bound: float):
    return case((expression > bound, bound), else_=expression)


def claim_slots(conn: Connection, key: str, holder: str, want: int, limit: int, now: datetime,
                hold_for: timedelta) -> int:
    """Claims (or renews) up to ``want`` of the ``limit`` slots of ``key``; returns how many ``holder`` has."""
    if limit <= 0:
        return want
    conn.execute(insert_for(conn, throttle_slots).values(
        [{"key": key, "slot": slot, "holder": None, "expires_at": None} for slot in range(limit)])
        .on_conflict_do_nothing(index_elements=["key", "slot"]))
    s = throttle_slots.c
    mine_or_free = or_(s.holder == holder, s.holder.is_(None), s.expires_at < now)
    query = select(s.slot, s.holder).where(s.key == key, s.slot < limit, mine_or_free).order_by(s.slot)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = conn.execute(query).all()
    ordered = sorted(rows, key=lambda r: (r.holder != holder, r.slot))  # keep the slots already held
    chosen = [row.slot for row in ordered[:want]]
    dropped = [row.slot for row in ordered[want:] if row.holder == holder]
    if chosen:
        conn.execute(update(throttle_slots).where(s.key == key, s.slot.in_(chosen))
                     .values(holder=holder, expires_at=now + hold_for))
    if dropped:
        conn.execute(update(throttle_slots).where(s.key == key, s.slot.in_(dropped))
                     .values(holder=None, expires_at=None))
    return len(chosen)


def release_slots(conn: Connection, key: str, holder: str) -> None:
    s = throttle_slots.c
    conn.execute(update(throttle_slots).where(and_(s.key == key, s.holder == holder))
                 .values(holder=None, expires_at=None))

"""The engagement stream ("Currents"): which engagements go out next, what became of each batch, the
dead-letter list. The HTTP side is :mod:`clarion.runners.currents`; the format is docs/webhooks-out.md.

The cursor is one document, ``workspace_settings`` key ``currents``::

    {"mark": 1200,            engagements.id up to here were delivered (or dead-lettered)
     "horizon": 1450,         ids up to here are committed: nothing below them can still appear
     "pending": {...},        PostgreSQL: a horizon waiting for the writers it saw to finish
     "batch": {"first": 1201, "last": 1700}, "attempts": 2, "next_at": ...,   the batch being retried
     "lease": {"owner": "...", "until": ...}, "last_error": "...", "delivered_at": ...}

**Commit order.** PostgreSQL hands out ids when a row is inserted, not when it commits: a click's row
1201 may become visible after row 1202. A cursor that moved past 1202 would never send 1201. So the
stream only reads up to a *horizon*: the largest id seen while no transaction that could still insert
below it was open. Such a transaction holds a RowExclusiveLock on ``engagements`` from before its
``nextval`` until after its commit became visible, so the transactions holding that lock (``pg_locks``,
this database only) are the ones to wait for: a horizon taken with none open is final at once; one taken
with some open becomes final at a later push, when all of those have ended. A long transaction that
writes engagements (a large import crediting conversions) holds the stream back until it commits. SQLite
has one writer at a time, so its horizon is the largest id.

**Concurrency.** Any number of workers may push: a batch is claimed with a lease in the cursor (long
enough for one request), so one batch is in flight at a time and batches go out in id order. Delivery
is at least once: a receiver that loses our answer gets the batch again; ``id`` deduplicates.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson
from pydantic import BaseModel
from sqlalchemy import Connection, delete, func, select, text, update

from ..domain.errors import NotFound
from ..domain.sending_time import retry_delay
from ..store.schema_scores import engagements, workspace_settings
from ..store.schema_webhooks import webhook_dead_letters
from ..store.workspace import read_document, write_document
from .timeline import engagement_query, wire_item

SETTINGS_KEY = "currents"
MAX_ERROR = 500  # characters of the last error kept in the cursor and a dead letter
LEASE_MARGIN = timedelta(seconds=60)  # beyond the request's timeout: resolving, signing, the checkpoint
CONFIG_PAUSE = timedelta(seconds=60)  # a wrong URL: look again in a minute, not on every worker cycle
Format = Literal["json", "jsonl"]
CONTENT_TYPES = {"json": "application/json", "jsonl": "application/x-ndjson"}

# Transactions of this database that hold a lock for writing engagements right now (see the module notes).
_WRITERS = text(
    "SELECT DISTINCT virtualtransaction FROM pg_locks WHERE locktype = 'relation' AND granted"
    " AND mode = 'RowExclusiveLock' AND relation = to_regclass('engagements')"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")


@dataclass(frozen=True)
class CurrentsConfig:
    """Where and how the stream goes (CLARION_EVENTS_WEBHOOK_*); ``url`` empty: the stream is off."""

    url: str = ""
    secret: str = ""
    format: Format = "json"
    batch_size: int = 500  # engagements per request
    max_attempts: int = 8  # then the batch is dead-lettered
    # Full-jitter backoff: retry n waits up to base * 2**n, capped (8 attempts: at most ~21 minutes in all).
    retry_base_seconds: float = 10.0
    retry_cap_seconds: float = 1800.0
    timeout_seconds: float = 10.0
    allow_private: bool = False  # tests only, as CLARION_WEBHOOK_ALLOW_PRIVATE_URLS
    ca_file: str | None = None  # tests: trust a local https receiver's authority

    def __post_init__(self) -> None:
        if self.url and not self.secret:
            raise ValueError("CLARION_EVENTS_WEBHOOK_SECRET is required: the stream is never sent unsigned")
        if self.format not in CONTENT_TYPES:
            raise ValueError(f"events webhook format is json or jsonl, not {self.format!r}")
        if self.batch_size < 1 or self.max_attempts < 1 or self.timeout_seconds <= 0:
            raise ValueError("events webhook batch size, attempts and timeout must be positive")

    @classmethod
    def from_settings(cls, settings: Any) -> CurrentsConfig:
        """From :class:`clarion.config.Settings`."""
        return cls(url=settings.events_webhook_url, secret=settings.events_webhook_secret,
                   format=settings.events_webhook_format, batch_size=settings.events_webhook_batch_size,
                   max_attempts=settings.events_webhook_max_attempts,
                   retry_base_seconds=settings.events_webhook_retry_base_seconds,
                   retry_cap_seconds=settings.events_webhook_retry_cap_seconds,
                   timeout_seconds=settings.webhook_timeout_seconds,
                   allow_private=settings.webhook_allow_private_urls)

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.timeout_seconds) + LEASE_MARGIN


class Pending(BaseModel):
    max_id: int
    writers: list[str]


class Span(BaseModel):
    first: int
    last: int


class Lease(BaseModel):
    owner: str
    until: datetime


class Cursor(BaseModel):
    mark: int = 0
    horizon: int = 0
    pending: Pending | None = None
    batch: Span | None = None
    attempts: int = 0
    next_at: datetime | None = None
    lease: Lease | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True)
class Claim:
    """A batch this pusher holds the lease for: engagements ``first``..``last`` (ids, inclusive)."""

    owner: str
    first: int
    last: int
    payload: dict[str, Any]  # {"events": [...]}, JSON-ready
    attempts: int  # made before this one


@dataclass(frozen=True)
class Idle:
    status: Literal["idle", "busy", "waiting"]
    next_at: datetime | None = None


@dataclass(frozen=True)
class Answer:
    """What the receiver said: ``ok``; else ``error`` and ``retry_after`` (seconds); ``config``: the URL
    itself is wrong (not a URL, not https, not a public address), so nothing is counted against the batch."""

    ok: bool
    error: str = ""
    retry_after: float | None = None
    config: bool = False


# -- the cursor --------------------------------------------------------------------------------------

def read_cursor(conn: Connection, *, lock: bool = False) -> Cursor:
    document = read_document(conn, SETTINGS_KEY, lock=lock)
    return Cursor() if document is None else Cursor.model_validate(document)


def write_cursor(conn: Connection, cursor: Cursor, now: datetime) -> None:
    write_document(conn, SETTINGS_KEY, cursor.model_dump(mode="json"), now)


def _lock_cursor(conn: Connection, now: datetime) -> Cursor:
    """The cursor, locked for this transaction (PostgreSQL: the row; SQLite: the write transaction)."""
    if conn.execute(select(workspace_settings.c.key).where(workspace_settings.c.key == SETTINGS_KEY)).first() is None:
        write_cursor(conn, Cursor(), now)  # the row must exist to be locked
    return read_cursor(conn, lock=True)


def advance_horizon(conn: Connection, cursor: Cursor) -> None:
    """Move ``cursor.horizon`` as far as commit order allows (see the module notes)."""
    top = conn.execute(select(func.coalesce(func.max(engagements.c.id), 0))).scalar_one()
    # The newest rows were erased: SQLite hands the largest ids out again (its rowid is max + 1, there is no
    # AUTOINCREMENT), so the cursor steps back to the largest id that remains.
    if top < cursor.mark:
        cursor.mark = cursor.horizon = top
        cursor.pending = None
    if cursor.batch is not None and cursor.batch.last > top:
        cursor.batch.last = max(top, cursor.mark)
    if conn.dialect.name != "postgresql":
        cursor.horizon = max(cursor.horizon, top)
        return
    writers = set(conn.execute(_WRITERS).scalars())
    if cursor.pending is not None and not writers.intersection(cursor.pending.writers):
        cursor.horizon = max(cursor.horizon, cursor.pending.max_id)
        cursor.pending = None
    if not writers:
        cursor.horizon, cursor.pending = max(cursor.horizon, top), None
    elif cursor.pending is None and top > cursor.horizon:
        cursor.pending = Pending(max_id=top, writers=sorted(writers))


def skip_history(conn: Connection, now: datetime) -> int:
    """Start the stream at the newest engagement: what happened before is not sent (export it instead)."""
    cursor = _lock_cursor(conn, now)
    advance_horizon(conn, cursor)
    cursor.mark = cursor.horizon
    cursor.batch, cursor.attempts, cursor.next_at, cursor.last_error = None, 0, None, None
    write_cursor(conn, cursor, now)
    return cursor.mark


# -- one batch ---------------------------------------------------------------------------------------

def claim(conn: Connection, config: CurrentsConfig, owner: str, now: datetime) -> Claim | Idle:
    """The next batch to send, leased to ``owner``; or why there is none right now."""
    cursor = _lock_cursor(conn, now)
    if cursor.lease is not None and cursor.lease.until > now:
        return Idle("busy", cursor.lease.until)
    if cursor.next_at is not None and cursor.next_at > now:
        return Idle("waiting", cursor.next_at)
    advance_horizon(conn, cursor)
    if cursor.batch is None:
        ids = (select(engagements.c.id).where(engagements.c.id > cursor.mark, engagements.c.id <= cursor.horizon)
               .order_by(engagements.c.id).limit(config.batch_size).subquery())
        last = conn.execute(select(func.max(ids.c.id))).scalar()
        cursor.batch = Span(first=cursor.mark + 1, last=last) if last is not None else None
    items = _items(conn, cursor.mark, cursor.batch.last) if cursor.batch is not None else []
    if not items:  # nothing new, or a retried batch whose contacts were all erased meanwhile
        if cursor.batch is not None:
            _moved_on(cursor, cursor.batch.last)
        write_cursor(conn, cursor, now)
        return Idle("idle")
    cursor.lease = Lease(owner=owner, until=now + config.lease)
    write_cursor(conn, cursor, now)
    return Claim(owner, items[0]["id"], cursor.batch.last, {"events": items}, cursor.attempts)


def _items(conn: Connection, after: int, last: int) -> list[dict[str, Any]]:
    rows = conn.execute(engagement_query().where(engagements.c.id > after, engagements.c.id <= last)
                        .order_by(engagements.c.id))
    return [wire_item(row) for row in rows]


def settle(conn: Connection, config: CurrentsConfig, held: Claim, answer: Answer, now: datetime,
           rng: random.Random | None = None) -> str:
    """Record what became of a claimed batch: ``delivered``, ``retry``, ``dead_letter``, ``config_error``,
    or ``lost`` (the lease ran out and another pusher took the batch over)."""
    cursor = _lock_cursor(conn, now)
    if cursor.lease is None or cursor.lease.owner != held.owner:
        return "lost"
    cursor.lease = None
    if answer.ok:
        _moved_on(cursor, held.last)
        cursor.delivered_at = now
        outcome = "delivered"
    elif answer.config:
        cursor.last_error, cursor.next_at = answer.error[:MAX_ERROR], now + CONFIG_PAUSE
        outcome = "config_error"
    elif held.attempts + 1 >= config.max_attempts:
        conn.execute(webhook_dead_letters.insert().values(
            created_at=now, first_engagement_id=held.first, last_engagement_id=held.last,
            attempts=held.attempts + 1, last_error=answer.error[:MAX_ERROR], payload=held.payload))
        _moved_on(cursor, held.last)
        outcome = "dead_letter"
    else:
        delay = retry_delay(held.attempts, base=config.retry_base_seconds, cap=config.retry_cap_seconds,
                            rng=rng or random.Random(), retry_after=answer.retry_after)
        cursor.attempts, cursor.next_at = held.attempts + 1, now + timedelta(seconds=delay)
        cursor.last_error = answer.error[:MAX_ERROR]
        outcome = "retry"
    write_cursor(conn, cursor, now)
    return outcome


def _moved_on(cursor: Cursor, last: int) -> None:
    cursor.mark = max(cursor.mark, last)
    cursor.batch, cursor.attempts, cursor.next_at, cursor.last_error = None, 0, None, None


def release(conn: Connection, owner: str, now: datetime) -> None:
    """Give a lease back without an answer (the pusher is stopping): the batch goes out again at once."""
    cursor = _lock_cursor(conn, now)
    if cursor.lease is not None and cursor.lease.owner == owner:
        cursor.lease = None
        write_cursor(conn, cursor, now)


def encode(payload: dict[str, Any], fmt: Format) -> tuple[bytes, str]:
    """The request body and its content type: the envelope, or one event per line (JSON Lines)."""
    if fmt == "jsonl":
        return b"".join(orjson.dumps(item) + b"\n" for item in payload["events"]), CONTENT_TYPES[fmt]
    return orjson.dumps(payload), CONTENT_TYPES[fmt]


def status(conn: Connection) -> dict[str, Any]:
    """The cursor, how many engagements wait behind it, and the dead letters' count."""
    cursor = read_cursor(conn)
    backlog = conn.execute(select(func.count()).where(engagements.c.id > cursor.mark)).scalar_one()
    dead = conn.execute(select(func.count()).select_from(webhook_dead_letters)).scalar_one()
    return {**cursor.model_dump(mode="json"), "backlog": backlog, "dead_letters": dead}


# -- dead letters ------------------------------------------------------------------------------------

_d = webhook_dead_letters.c
_LISTED = (_d.id, _d.created_at, _d.first_engagement_id, _d.last_engagement_id, _d.attempts, _d.last_error)


def dead_letters(conn: Connection, *, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(select(*_LISTED).order_by(webhook_dead_letters.c.id).limit(min(max(limit, 1), 1000)))
    return [dict(row._mapping) for row in rows]


def dead_letter(conn: Connection, letter_id: int) -> dict[str, Any]:
    row = conn.execute(select(webhook_dead_letters).where(webhook_dead_letters.c.id == letter_id)).first()
    if row is None:
        raise NotFound("dead letter", letter_id)
    return dict(row._mapping)


def drop_dead_letter(conn: Connection, letter_id: int) -> None:
    if conn.execute(delete(webhook_dead_letters).where(webhook_dead_letters.c.id == letter_id)).rowcount == 0:
        raise NotFound("dead letter", letter_id)


def dead_letter_retried(conn: Connection, letter_id: int, answer: Answer) -> None:
    """A delivered dead letter is removed; a refused one counts the attempt and keeps the error."""
    if answer.ok:
        conn.execute(delete(webhook_dead_letters).where(webhook_dead_letters.c.id == letter_id))
        return
    conn.execute(update(webhook_dead_letters).where(webhook_dead_letters.c.id == letter_id).values(
        attempts=webhook_dead_letters.c.attempts + 1, last_error=answer.error[:MAX_ERROR]))


def forget_contact(conn: Connection, contact_ids: Sequence[int]) -> int:
    """GDPR erasure: the contacts' engagements leave the dead letters (a letter left empty is removed).
    Returns how many letters changed."""
    wanted, changed = set(contact_ids), 0
    for row in conn.execute(select(webhook_dead_letters.c.id, webhook_dead_letters.c.payload)).all():
        kept = [item for item in row.payload["events"] if item.get("contact_id") not in wanted]
        if len(kept) == len(row.payload["events"]):
            continue
        changed += 1
        letter = webhook_dead_letters.c.id == row.id
        conn.execute(update(webhook_dead_letters).where(letter).values(payload={"events": kept}) if kept
                     else delete(webhook_dead_letters).where(letter))
    return changed

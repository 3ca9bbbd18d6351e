"""Set-based SQL for the event importer: stage events, insert the new ones, fold them into the aggregates.

Events go through a temporary staging table on both stores (PostgreSQL: filled with COPY; SQLite:
``executemany``). PostgreSQL then runs one statement: ``INSERT INTO events SELECT ... ON CONFLICT
(message_id) DO NOTHING RETURNING ...`` feeding the aggregate upserts, so only new events count.
SQLite first drops staged rows whose message id is stored, then inserts and aggregates the rest.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime

import orjson
from sqlalchemy import Connection

from ..domain.events import ORDER_COMPLETED
from ..store.schema import events
from .import_mappings import ParsedEvent

# Page cache of an importing SQLite connection: the event indexes take random inserts (by contact),
# and the default 2 MB cache turns each into a read. Counted in the importer's memory budget.
SQLITE_CACHE_KIB = 192 * 1024

_STAGE = "clarion_import_events"
_NULL = "\\N"  # COPY's NULL
_EVENT_COLUMNS = "contact_id, name, message_id, occurred_at, received_at, properties, order_id, revenue, currency"


def insert_events(conn: Connection, items: Sequence[tuple[int, ParsedEvent]], received_at: datetime) -> int:
    """Stage (contact_id, event) pairs, insert the new ones and fold them into the aggregates.

    Returns how many were new. The aggregate upserts are the set-based twin of
    ``aggregates.apply_increments`` (same rules; the tests compare with ``aggregates.rebuild``).
    """
    if not items:
        return 0
    if conn.dialect.name == "postgresql":
        return _insert_postgres(conn, items, received_at)
    return _insert_sqlite(conn, items, received_at)


def _aggregate_sql(source: str, least: str, greatest: str) -> tuple[str, str]:
    is_order = f"name = '{ORDER_COMPLETED}'"
    order_at = f"CASE WHEN {is_order} THEN occurred_at END"
    orders = f"sum(CASE WHEN {is_order} THEN 1 ELSE 0 END)"
    revenue = f"sum(CASE WHEN {is_order} THEN coalesce(revenue, 0.0) ELSE 0.0 END)"
    a, x = "contact_aggregates", "excluded"
    new_orders, new_revenue = f"{a}.order_count + {x}.order_count", f"{a}.revenue_total + {x}.revenue_total"
    contact_sql = (
        "INSERT INTO contact_aggregates (contact_id, first_seen_at, last_seen_at, event_count, order_count, "
        "revenue_total, first_order_at, last_order_at, avg_order_value) "
        f"SELECT contact_id, min(occurred_at), max(occurred_at), count(*), {orders}, {revenue}, "
        f"min({order_at}), max({order_at}), CASE WHEN {orders} > 0 THEN {revenue} / {orders} END "
        f"FROM {source} WHERE true GROUP BY contact_id ORDER BY contact_id "
        "ON CONFLICT (contact_id) DO UPDATE SET "
        f"first_seen_at = {least(f'{a}.first_seen_at', f'{x}.first_seen_at')}, "
        f"last_seen_at = {greatest(f'{a}.last_seen_at', f'{x}.last_seen_at')}, "
        f"event_count = {a}.event_count + {x}.event_count, order_count = {new_orders}, "
        f"revenue_total = {new_revenue}, "
        f"first_order_at = {least(f'{a}.first_order_at', f'{x}.first_order_at')}, "
        f"last_order_at = {greatest(f'{a}.last_order_at', f'{x}.last_order_at')}, "
        f"avg_order_value = CASE WHEN {new_orders} > 0 THEN ({new_revenue}) / ({new_orders}) END")
    s = "contact_event_stats"
    stats_sql = (
        f"INSERT INTO {s} (contact_id, name, count, first_at, last_at) "
        f"SELECT contact_id, name, count(*), min(occurred_at), max(occurred_at) FROM {source} WHERE true "
        "GROUP BY contact_id, name ORDER BY contact_id, name "
        f"ON CONFLICT (contact_id, name) DO UPDATE SET count = {s}.count + {x}.count, "
        f"first_at = {least(f'{s}.first_at', f'{x}.first_at')}, last_at = {greatest(f'{s}.last_at', f'{x}.last_at')}")
    return contact_sql, stats_sql


def _sqlite_least(a: str, b: str) -> str:
    return f"min(coalesce({a}, {b}), coalesce({b}, {a}))"


def _sqlite_greatest(a: str, b: str) -> str:
    return f"max(coalesce({a}, {b}), coalesce({b}, {a}))"


def _insert_sqlite(conn: Connection, items: Sequence[tuple[int, ParsedEvent]], received_at: datetime) -> int:
    """Stage, drop what is already stored, insert the rest, aggregate from the stage.

    Race-free because a SQLite write transaction (BEGIN IMMEDIATE) holds the database lock.
    """
    conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    conn.exec_driver_sql("PRAGMA wal_autocheckpoint=25000")
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (contact_id INTEGER, name TEXT, message_id TEXT, "
        "occurred_at TEXT, received_at TEXT, properties TEXT, order_id TEXT, revenue REAL, currency TEXT)")
    to_text = events.c.occurred_at.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    texts: dict[datetime, str] = {}
    received = to_text(received_at)
    dumps = orjson.dumps
    rows = []
    for contact_id, ev in items:
        when = texts.get(ev.occurred_at)
        if when is None:
            when = texts[ev.occurred_at] = to_text(ev.occurred_at)
        rows.append((contact_id, ev.name, ev.message_id, when, received, dumps(ev.properties).decode(),
                     ev.order_id, ev.revenue, ev.currency))
    conn.exec_driver_sql(f"INSERT INTO temp.{_STAGE} ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.exec_driver_sql(f"DELETE FROM temp.{_STAGE} WHERE EXISTS "
                         f"(SELECT 1 FROM main.events e WHERE e.message_id = {_STAGE}.message_id)")
    inserted = conn.exec_driver_sql(
        f"INSERT INTO events ({_EVENT_COLUMNS}) SELECT {_EVENT_COLUMNS} FROM temp.{_STAGE} WHERE true "
        "ON CONFLICT (message_id) DO NOTHING").rowcount
    if inserted:
        for sql in _aggregate_sql(f"temp.{_STAGE}", _sqlite_least, _sqlite_greatest):
            conn.exec_driver_sql(sql)
    conn.exec_driver_sql(f"DELETE FROM temp.{_STAGE}")
    return inserted


def _insert_postgres(conn: Connection, items: Sequence[tuple[int, ParsedEvent]], received_at: datetime) -> int:
    """COPY into a staging table, then one statement: insert the new events and fold them in."""
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (contact_id bigint, name text, message_id text, "
        "occurred_at timestamptz, received_at timestamptz, properties jsonb, order_id text, "
        "revenue double precision, currency text) ON COMMIT DELETE ROWS")
    buffer = io.StringIO()
    write = buffer.write
    stamps: dict[datetime, str] = {}
    received = received_at.isoformat()
    dumps = orjson.dumps
    for contact_id, ev in items:
        when = stamps.get(ev.occurred_at)
        if when is None:
            when = stamps[ev.occurred_at] = ev.occurred_at.isoformat()
        write(f"{contact_id}\t{_copy_text(ev.name)}\t{_copy_text(ev.message_id)}\t{when}\t{received}\t"
              f"{_copy_text(dumps(ev.properties).decode())}\t{_copy_optional(ev.order_id)}\t"
              f"{_NULL if ev.revenue is None else repr(ev.revenue)}\t{_copy_optional(ev.currency)}\n")
    driver = conn.connection.driver_connection
    with driver.cursor() as cursor, cursor.copy(f"COPY {_STAGE} ({_EVENT_COLUMNS}) FROM STDIN") as copy:
        copy.write(buffer.getvalue())
    contact_sql, stats_sql = _aggregate_sql("ins", lambda a, b: f"LEAST({a}, {b})",
                                            lambda a, b: f"GREATEST({a}, {b})")
    inserted = conn.exec_driver_sql(
        f"WITH ins AS (INSERT INTO events ({_EVENT_COLUMNS}) SELECT {_EVENT_COLUMNS} FROM {_STAGE} "
        "ON CONFLICT (message_id) DO NOTHING RETURNING contact_id, name, occurred_at, revenue), "
        f"agg AS ({contact_sql} RETURNING 1), stats AS ({stats_sql} RETURNING 1) "
        "SELECT count(*) FROM ins").scalar_one()
    conn.exec_driver_sql(f"TRUNCATE {_STAGE}")
    return inserted

def _copy_text(value: str) -> str:
    """Escape a value for COPY's text format."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def _copy_optional(value: str | None) -> str:
    return _NULL if value is None else _copy_text(value)

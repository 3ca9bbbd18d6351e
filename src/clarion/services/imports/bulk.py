"""Set-based SQL for the event importer: stage events, insert the new ones, fold them into the aggregates.

Events go through a temporary staging table on both stores (PostgreSQL: filled with COPY; SQLite:
``executemany``). PostgreSQL then runs one statement: ``INSERT INTO events SELECT ... ON CONFLICT
(message_id) DO NOTHING RETURNING ...`` feeding the aggregate upserts, so only new events count.
SQLite first drops staged rows whose message id is stored, then inserts and aggregates the rest.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection

from ...domain.events import ORDER_COMPLETED
from .staging import (
    CURRENCY,
    MESSAGE_ID,
    NAME,
    OCCURRED_AT,
    ORDER_ID,
    PROPERTIES,
    REVENUE,
    Staged,
    stamp_text,
)

# Page cache of an importing SQLite connection: the event indexes take random inserts (by contact),
# and the default 2 MB cache turns each into a read. Counted in the importer's memory budget
# (peak RSS <= 500 MB with three 50,000-event batches in flight). In bulk-load mode only the
# message-id index and the identities take random probes, and the final index builds sort within
# this budget too, so a smaller cache does as well.
SQLITE_CACHE_KIB = 160 * 1024
SQLITE_BULK_LOAD_CACHE_KIB = 64 * 1024
SQLITE_TEMP_CACHE_KIB = 32 * 1024

_STAGE = "clarion_import_events"
_NULL = "\\N"  # COPY's NULL
# The stage's columns from one element of a JSON array of rows (->> since SQLite 3.38: ~30% faster).
_ELEMENT = "value ->> {}" if sqlite3.sqlite_version_info >= (3, 38) else "json_extract(value, '$[{}]')"
_FROM_JSON = ", ".join(_ELEMENT.format(index) for index in range(9))
_EVENT_COLUMNS = "contact_id, name, message_id, occurred_at, received_at, properties, order_id, revenue, currency"


def insert_events(conn: Connection, contact_ids: Sequence[int], staged: Sequence[Staged],
                  received_at: datetime, *, bulk: bool = False, aggregate: bool = True) -> int:
    """Stage the events (``contact_ids[i]`` sent ``staged[i]``), insert the new ones, fold them in.

    The one incremental path for the aggregates, used by the importers and the tracking API:
    it follows the rules of ``aggregates.rebuild``, and the tests compare the two. Message ids must
    be unique within ``staged``. ``bulk`` gives a SQLite connection the large page caches of an
    import (kept by the pooled connection, so not for the API server). ``aggregate=False`` only in
    bulk-load mode, where the aggregates are rebuilt at the end. Returns how many were new.
    """
    if not staged:
        return 0
    if conn.dialect.name == "postgresql":
        return _insert_postgres(conn, contact_ids, staged, received_at, aggregate)
    return _insert_sqlite(conn, contact_ids, staged, received_at, bulk, aggregate)


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


def _insert_sqlite(conn: Connection, contact_ids: Sequence[int], staged: Sequence[Staged],
                   received_at: datetime, bulk: bool, aggregate: bool) -> int:
    """Stage, drop what is already stored, insert the rest, aggregate from the stage.

    Race-free because a SQLite write transaction (BEGIN IMMEDIATE) holds the database lock. The
    batch is staged from one JSON array in one statement, not with ``executemany``: sqlite3 gives
    up the GIL around every step, and with the reader thread parsing the next batch each row then
    waited up to the 5 ms switch interval to get it back (a 50,000-row executemany took seconds).
    """
    cursor = conn.connection.driver_connection.cursor()
    try:
        _prepare_sqlite(cursor, bulk)
        received = stamp_text(received_at)
        rows = orjson.dumps([(cid, s[NAME], s[MESSAGE_ID], s[OCCURRED_AT], received, s[PROPERTIES], s[ORDER_ID],
                              s[REVENUE], s[CURRENCY]) for cid, s in zip(contact_ids, staged, strict=True)])
        cursor.execute(f"INSERT INTO temp.{_STAGE} ({_EVENT_COLUMNS}) SELECT {_FROM_JSON} FROM json_each(?)",
                       (rows.decode(),))
        cursor.execute(f"DELETE FROM temp.{_STAGE} WHERE EXISTS "
                       f"(SELECT 1 FROM main.events e WHERE e.message_id = {_STAGE}.message_id)")
        # In index order: the (contact_id, name, occurred_at) index takes its entries as a merge,
        # not as random inserts (~15% faster with 50,000-event batches).
        cursor.execute(
            f"INSERT INTO events ({_EVENT_COLUMNS}) SELECT {_EVENT_COLUMNS} FROM temp.{_STAGE} WHERE true "
            "ORDER BY contact_id, name, occurred_at ON CONFLICT (message_id) DO NOTHING")
        inserted = cursor.rowcount
        if inserted and aggregate:
            for sql in _aggregate_sql(f"temp.{_STAGE}", _sqlite_least, _sqlite_greatest):
                cursor.execute(sql)
        cursor.execute(f"DELETE FROM temp.{_STAGE}")
    finally:
        cursor.close()
    return inserted


def prepare_bulk_connection(conn: Connection, cache_kib: int = SQLITE_CACHE_KIB) -> None:
    """SQLite: a large page cache and fewer WAL checkpoints for this (importing) connection.

    Imports probe and insert into indexes in random order (emails, contacts); with the default
    2 MB cache nearly every probe is a read and every commit rewrites pages evicted meanwhile.
    """
    if conn.dialect.name != "sqlite":
        return
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
        cursor.execute("PRAGMA wal_autocheckpoint=25000")  # pages (4 KiB): ~100 MB of WAL between checkpoints
    finally:
        cursor.close()


def _prepare_sqlite(cursor: Any, bulk: bool) -> None:
    """The stage; for a bulk import, a temporary-database cache that holds a batch."""
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (contact_id INTEGER, name TEXT, message_id TEXT, "
        "occurred_at TEXT, received_at TEXT, properties TEXT, order_id TEXT, revenue REAL, currency TEXT)")
    # The stage and the GROUP BY sorts live in the temporary database: a cache that holds a whole
    # batch (~12 MB per 50,000 events) keeps them off the disk (temp_store cannot change mid-transaction).
    if bulk:
        cursor.execute(f"PRAGMA temp.cache_size=-{SQLITE_TEMP_CACHE_KIB}")


def _insert_postgres(conn: Connection, contact_ids: Sequence[int], staged: Sequence[Staged],
                     received_at: datetime, aggregate: bool) -> int:
    """COPY into a staging table, then one statement: insert the new events and fold them in."""
    # The statement's sorts and hash aggregates hold a batch (~8 MB per 50,000 events); at the
    # default 4 MB they spill to disk (~3% of the statement's time). Ends with the transaction.
    conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (contact_id bigint, name text, message_id text, "
        "occurred_at timestamptz, received_at timestamptz, properties jsonb, order_id text, "
        "revenue double precision, currency text) ON COMMIT DELETE ROWS")
    driver = conn.connection.driver_connection
    with driver.cursor() as cursor, cursor.copy(f"COPY {_STAGE} ({_EVENT_COLUMNS}) FROM STDIN") as copy:
        copy.write(_copy_lines(contact_ids, staged, stamp_text(received_at)))
    contact_sql, stats_sql = _aggregate_sql("ins", lambda a, b: f"LEAST({a}, {b})",
                                            lambda a, b: f"GREATEST({a}, {b})")
    folded = f", agg AS ({contact_sql} RETURNING 1), stats AS ({stats_sql} RETURNING 1)" if aggregate else ""
    inserted = conn.exec_driver_sql(
        f"WITH ins AS (INSERT INTO events ({_EVENT_COLUMNS}) SELECT {_EVENT_COLUMNS} FROM {_STAGE} "
        "ORDER BY contact_id, name, occurred_at ON CONFLICT (message_id) DO NOTHING "
        f"RETURNING contact_id, name, occurred_at, revenue){folded} "
        "SELECT count(*) FROM ins").scalar_one()
    conn.exec_driver_sql(f"TRUNCATE {_STAGE}")
    return inserted


def _copy_lines(contact_ids: Sequence[int], staged: Sequence[Staged], received: str) -> str:
    """COPY text format rows; times are the naive UTC texts, so ``+00`` makes them timestamptz."""
    lines = []
    append = lines.append
    for cid, s in zip(contact_ids, staged, strict=True):
        order_id, revenue, currency = s[ORDER_ID], s[REVENUE], s[CURRENCY]
        texts = f"{s[NAME]}{s[MESSAGE_ID]}{s[PROPERTIES]}{order_id or ''}{currency or ''}"
        if "\\" in texts or "\t" in texts or "\n" in texts or "\r" in texts:
            append(_escaped_line(cid, s, received))  # rare: escape each text field
            continue
        append(f"{cid}\t{s[NAME]}\t{s[MESSAGE_ID]}\t{s[OCCURRED_AT]}+00\t{received}+00\t{s[PROPERTIES]}\t"
               f"{_NULL if order_id is None else order_id}\t{_NULL if revenue is None else repr(revenue)}\t"
               f"{_NULL if currency is None else currency}")
    append("")
    return "\n".join(lines)


def _escaped_line(cid: int, s: Staged, received: str) -> str:
    revenue = s[REVENUE]
    return (f"{cid}\t{_copy_text(s[NAME])}\t{_copy_text(s[MESSAGE_ID])}\t{s[OCCURRED_AT]}+00\t{received}+00\t"
            f"{_copy_text(s[PROPERTIES])}\t{_copy_optional(s[ORDER_ID])}\t"
            f"{_NULL if revenue is None else repr(revenue)}\t{_copy_optional(s[CURRENCY])}")


def _copy_text(value: str) -> str:
    """Escape a value for COPY's text format."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def _copy_optional(value: str | None) -> str:
    return _NULL if value is None else _copy_text(value)

"""Set-based identity work shared by the importers and the tracking API: find owners of many
identifiers at once, check erasure tombstones in bulk, and create many contacts in one statement."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select

from ..store.schema import contacts, erasure_tombstones, identities
from .hashing import identity_hash

IN_CHUNK = 900  # values per IN list: SQLite allows 999 bound parameters per statement by default

_CONTACT_COLUMNS = ("external_id", "email", "phone", "first_name", "last_name", "locale", "timezone",
                    "timezone_source", "country", "region", "city", "latitude", "longitude", "birthday",
                    "anniversary", "custom_dates", "attributes", "created_at", "updated_at")

@contextmanager
def unprepared(conn: Connection) -> Iterator[None]:
    """No server-side prepared statements (psycopg prepares after 5 runs) while importing.

    A generic plan made while the tables were small (a sequential scan of ``identities``) would
    otherwise stick while the import makes them large.
    """
    driver = conn.connection.driver_connection
    if conn.dialect.name != "postgresql" or not hasattr(driver, "prepare_threshold"):
        yield
        return
    before = driver.prepare_threshold
    driver.prepare_threshold = None
    try:
        yield
    finally:
        driver.prepare_threshold = before


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def owners_by_value(conn: Connection, kind: str, values: Iterable[str]) -> dict[str, int]:
    """{value: contact_id} for the identifiers of one kind that are already known.

    One statement whatever the count: PostgreSQL takes an array parameter, SQLite a JSON array
    read by ``json_each`` (each value is then one probe of the unique (kind, value) index; ~2 µs)
    and answers with one JSON object.
    """
    distinct = sorted(set(values))
    if not distinct:
        return {}
    if conn.dialect.name == "postgresql":
        sql = "SELECT value, contact_id FROM identities WHERE kind = %(kind)s AND value = ANY(%(values)s)"
        return dict(conn.exec_driver_sql(sql, {"kind": kind, "values": distinct}).all())
    cursor = conn.connection.driver_connection.cursor()
    try:  # one result row (a JSON object): sqlite3 would give up and retake the GIL for every row
        found = cursor.execute("SELECT json_group_object(value, contact_id) FROM identities WHERE kind = ? "
                               "AND value IN (SELECT value FROM json_each(?))",
                               (kind, orjson.dumps(distinct).decode())).fetchone()[0]
    finally:
        cursor.close()
    return orjson.loads(found)


def erased_pairs(conn: Connection, salt: str, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (kind, value) pairs that belong to an erased contact (matched by salted hash)."""
    by_hash = {identity_hash(salt, kind, value): (kind, value) for kind, value in set(pairs)}
    hits: set[tuple[str, str]] = set()
    for chunk in chunks(sorted(by_hash)):
        rows = conn.execute(select(erasure_tombstones.c.identity_hash)
                            .where(erasure_tombstones.c.identity_hash.in_(chunk)))
        hits.update(by_hash[h] for (h,) in rows)
    return hits


def create_contacts(conn: Connection, rows: list[dict[str, Any]], pairs: list[list[tuple[str, str]]],
                    now: datetime) -> list[int]:
    """Insert contacts (column dicts) and their identifiers; the new ids, in the rows' order.

    Ids are allocated up front (PostgreSQL: from the sequence; SQLite: after the largest id, safe
    because a write transaction holds the database lock), so a plain executemany suffices.
    """
    if not rows:
        return []
    ids = _allocate_ids(conn, len(rows))
    full = [{column: row.get(column) for column in _CONTACT_COLUMNS} for row in rows]
    for contact_id, row in zip(ids, full, strict=True):
        row["id"] = contact_id
        row["attributes"] = row["attributes"] or {}
        row["custom_dates"] = row["custom_dates"] or {}
        row["created_at"] = row["updated_at"] = now
    conn.execute(contacts.insert(), full)
    identity_rows = [{"contact_id": contact_id, "kind": kind, "value": value, "created_at": now}
                     for contact_id, row_pairs in zip(ids, pairs, strict=True) for kind, value in row_pairs]
    if identity_rows:
        conn.execute(identities.insert(), identity_rows)
    return ids


def _allocate_ids(conn: Connection, count: int) -> list[int]:
    if conn.dialect.name == "postgresql":
        return list(conn.exec_driver_sql(
            "SELECT nextval(pg_get_serial_sequence('contacts', 'id')) FROM generate_series(1, %(n)s)",
            {"n": count}).scalars())
    start = conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM contacts").scalar_one() + 1
    return list(range(start, start + count))

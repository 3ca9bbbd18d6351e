"""Bulk-load mode for large event imports: secondary indexes dropped, aggregates computed once at the end.

Events arrive in file order, but their secondary indexes are keyed by contact and by event name
and time, and each batch's aggregate upserts touch tens of thousands of contacts spread over the
whole aggregate tables. With 10 million events and a million contacts that random work was most
of an import's time (and, on SQLite, the commits that write those pages). Building an index once
from sorted data, and computing the aggregates once with a GROUP BY, is far cheaper, so an import
that will at least double the events table works this way, as ``pg_restore`` does.

- :func:`begin` drops the non-unique indexes of ``events`` and ``contact_event_stats``. The unique
  message-id index stays (it makes a re-import idempotent), and so do the primary keys.
- While they are missing, the importer inserts events without touching the aggregates; queries
  keep working, only slower. Events ingested meanwhile by the API still update the aggregates,
  and the final rebuild recomputes everything from the events anyway.
- :func:`finish` creates the event indexes, rebuilds every aggregate from the events and creates
  the rest. It runs at the end of the import, also after a failure. The missing indexes are the
  durable mark of an unfinished bulk load: if the process dies before :func:`finish`, the next
  import or ``clarion db upgrade`` finds them missing and finishes the job.
"""

from __future__ import annotations

from sqlalchemy import Connection, Index, inspect

from ...store.schema import contact_event_stats, events
from .. import aggregates

# Rebuilding costs about as much as the rows already stored; below this many new rows it never pays.
MIN_ROWS_FOR_BULK = 500_000
# PostgreSQL memory for this transaction's index builds and aggregate sorts (defaults: 64 MB and
# 4 MB, which spill 10 million keys to disk).
PG_MAINTENANCE_WORK_MEM = "256MB"
PG_WORK_MEM = "128MB"


def droppable() -> list[Index]:
    return [index for table in (events, contact_event_stats) for index in sorted(table.indexes, key=_name)
            if not index.unique]


def worth_it(expected_new_rows: int, stored_rows: int) -> bool:
    """Bulk-load when the import is large and at least as big as what is stored."""
    return expected_new_rows >= MIN_ROWS_FOR_BULK and expected_new_rows >= stored_rows


def stored_events(conn: Connection) -> int:
    """About how many events are stored: the highest id (an index look-up, unlike ``count(*)``)."""
    return conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM events").scalar_one()


def missing(conn: Connection) -> list[Index]:
    present = {ix["name"] for table in ("events", "contact_event_stats")
               for ix in inspect(conn).get_indexes(table)}
    return [index for index in droppable() if index.name not in present]


def begin(conn: Connection) -> list[str]:
    """Drop the secondary indexes; returns their names."""
    dropped = []
    for index in droppable():
        index.drop(conn, checkfirst=True)
        dropped.append(str(index.name))
    return dropped


def finish(conn: Connection) -> list[str]:
    """If a bulk load is unfinished (indexes missing): indexes back and aggregates rebuilt; the names created."""
    todo = missing(conn)
    if not todo:
        return []
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SET LOCAL maintenance_work_mem = '{PG_MAINTENANCE_WORK_MEM}'")
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{PG_WORK_MEM}'")
    # The events' (contact_id, name, occurred_at) index first: it lets the rebuild group per contact
    # without sorting the whole table. The stats index last, so the rebuild does not maintain it.
    first = [index for index in todo if index.table is events]
    for index in first:
        index.create(conn)
    aggregates.rebuild(conn)
    for index in todo:
        if index not in first:
            index.create(conn)
    return [str(index.name) for index in todo]


def _name(index: Index) -> str:
    return str(index.name)

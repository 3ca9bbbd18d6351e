"""Bulk-load mode: a large event import drops the secondary indexes and computes the aggregates at the end.

Every test runs on SQLite and PostgreSQL (the ``app`` fixture).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, inspect, select

from clarion.services import aggregates
from clarion.services.imports import bulk_load
from clarion.services.imports.importer import Importer, ImportOptions, _estimated_rows
from clarion.services.imports.source import ImportFileError
from clarion.store.schema import contact_aggregates, contact_event_stats

SECONDARY = {"ix_events_contact_id_name_occurred_at", "ix_events_name_occurred_at_contact_id",
             "ix_contact_event_stats_name_last_at"}


def _importer(app) -> Importer:
    return Importer(app.settings, app.store, app.contacts)


def _indexes(app) -> set[str]:
    with app.store.read() as conn:
        return {ix["name"] for table in ("events", "contact_event_stats") for ix in inspect(conn).get_indexes(table)}


def _events_file(path: Path, rows: int) -> Path:
    names = ["Product Viewed", "Product Added", "Order Completed"]
    lines = ["message_id,external_id,event,timestamp,revenue"]
    for i in range(rows):
        name = names[i % 3]
        revenue = f"{i % 50 + 0.5}" if name == "Order Completed" else ""
        lines.append(f"m{i},c{i % 37},{name},2026-0{i % 9 + 1}-1{i % 10}T0{i % 10}:00:00Z,{revenue}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _snapshot(app) -> tuple[list, list]:
    with app.store.read() as conn:
        totals = conn.execute(select(contact_aggregates).order_by(contact_aggregates.c.contact_id)).all()
        stats = conn.execute(select(contact_event_stats).order_by(
            contact_event_stats.c.contact_id, contact_event_stats.c.name)).all()
    return totals, stats


def test_bulk_load_restores_the_indexes_and_computes_exact_aggregates(app, tmp_path):
    # given some events already ingested (so the bulk load must add to them)
    _importer(app).import_events(_events_file(tmp_path / "first.csv", 100), ImportOptions(rebuild_indexes=False))
    # when a file is imported in bulk-load mode (indexes dropped, aggregates computed at the end)
    result = _importer(app).import_events(_events_file(tmp_path / "e.csv", 900),
                                          ImportOptions(rebuild_indexes=True, batch_size=200))
    # then every new row is in, the indexes were rebuilt and exist again
    assert (result.imported, result.unchanged, result.rejected) == (800, 100, 0)
    assert set(result.indexes_rebuilt) == SECONDARY
    assert SECONDARY <= _indexes(app)
    # and the incremental aggregates equal a rebuild from the events
    incremental = _snapshot(app)
    with app.store.write() as conn:
        aggregates.rebuild(conn)
    assert _snapshot(app) == incremental


def test_small_import_keeps_the_indexes(app, tmp_path):
    # given a file far below the rebuild threshold, when it is imported with the default option
    result = _importer(app).import_events(_events_file(tmp_path / "e.csv", 30), ImportOptions())
    # then no index was touched
    assert result.indexes_rebuilt == [] and result.imported == 30
    assert SECONDARY <= _indexes(app)


def test_failed_import_still_rebuilds_the_indexes(app, tmp_path):
    # given a file whose header is broken (repeated column names)
    bad = tmp_path / "bad.csv"
    bad.write_text("message_id,message_id,event\nm1,m1,Signed Up\n")
    # when an index-rebuilding import of it fails
    with pytest.raises(ImportFileError):
        _importer(app).import_events(bad, ImportOptions(rebuild_indexes=True))
    # then the indexes are there all the same
    assert SECONDARY <= _indexes(app)


def test_a_bulk_load_that_died_is_finished_by_db_upgrade_and_by_the_next_import(app, tmp_path):
    # given events with their aggregates, then a bulk load that died after dropping the indexes
    # and inserting events without aggregating them (simulated: the aggregates are wiped)
    importer = _importer(app)
    importer.import_events(_events_file(tmp_path / "e.csv", 300), ImportOptions(rebuild_indexes=False))
    expected = _snapshot(app)
    with app.store.write() as conn:
        bulk_load.begin(conn)
        conn.execute(delete(contact_aggregates))
        conn.execute(delete(contact_event_stats))
    assert not SECONDARY & _indexes(app)
    # when the schema is upgraded (clarion db upgrade)
    app.migrate()
    # then the indexes are back and the aggregates recomputed from the events
    assert SECONDARY <= _indexes(app)
    assert _snapshot(app) == expected
    # and the next import also finishes an unfinished bulk load before it starts
    with app.store.write() as conn:
        bulk_load.begin(conn)
        conn.execute(delete(contact_aggregates))
    importer.import_events(_events_file(tmp_path / "e.csv", 300), ImportOptions(rebuild_indexes=False))
    assert SECONDARY <= _indexes(app)
    assert _snapshot(app) == expected


def test_rebuild_pays_only_for_large_imports_at_least_as_big_as_the_table():
    threshold = bulk_load.MIN_ROWS_FOR_BULK
    assert bulk_load.worth_it(threshold, 0)
    assert bulk_load.worth_it(threshold * 2, threshold * 2)
    assert not bulk_load.worth_it(threshold - 1, 0)
    assert not bulk_load.worth_it(threshold * 2, threshold * 2 + 1)


def test_row_estimate_follows_the_line_length(tmp_path):
    # given files of 10,000 lines of 10 bytes, and an empty one
    path = tmp_path / "rows.csv"
    path.write_bytes(b"123456789\n" * 10_000)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    # then the estimate is exact for uniform lines, from a sample smaller than the file too
    assert _estimated_rows(path) == 10_000
    assert _estimated_rows(path, sample_bytes=1_000) == 10_000
    assert _estimated_rows(empty) == 0 and _estimated_rows(tmp_path / "missing.csv") == 0

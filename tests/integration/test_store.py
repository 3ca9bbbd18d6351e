"""The store: migrations produce exactly the schema, and both dialects behave alike."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select

from clarion.store.migrate import alembic_config, current_revision
from clarion.store.schema import contacts, metadata

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_migrations_create_exactly_the_schema(app):
    with app.store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []
    assert current_revision(app.store.engine) == HEAD


def test_migrating_twice_is_a_no_op(app):
    app.migrate()
    app.migrate()
    assert current_revision(app.store.engine) == HEAD


def test_the_segments_migration_goes_down_and_up_again(app):
    # given the latest schema, when migrated down to the foundation's and up again
    command.downgrade(alembic_config(app.store.engine), "0001")
    assert "segments" not in inspect(app.store.engine).get_table_names()
    app.migrate()
    # then the schema is the latest again
    assert current_revision(app.store.engine) == HEAD
    assert {"segments", "contact_scores", "engagements"} <= set(inspect(app.store.engine).get_table_names())


def test_times_come_back_aware_and_in_utc(app):
    given = datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    with app.store.write() as conn:
        conn.execute(contacts.insert().values(created_at=given, updated_at=given, attributes={}, custom_dates={}))
    with app.store.read() as conn:
        stored = conn.execute(select(contacts.c.created_at)).scalar_one()
    assert stored == given and stored.tzinfo == UTC


def test_naive_times_are_refused(app):
    with pytest.raises(Exception, match="naive datetime"):
        with app.store.write() as conn:
            conn.execute(contacts.insert().values(created_at=datetime(2026, 1, 1), updated_at=datetime(2026, 1, 1),
                                                  attributes={}, custom_dates={}))


def test_a_failed_write_rolls_back(app):
    now = datetime.now(UTC)
    with pytest.raises(RuntimeError):
        with app.store.write() as conn:
            conn.execute(contacts.insert().values(created_at=now, updated_at=now, attributes={}, custom_dates={}))
            raise RuntimeError("boom")
    with app.store.read() as conn:
        assert conn.execute(select(contacts.c.id)).first() is None


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(app):
    if app.store.dialect != "sqlite":
        pytest.skip("SQLite only")
    with app.store.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1

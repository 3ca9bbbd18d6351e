"""Fixtures: every store-backed test runs on SQLite and on the local PostgreSQL server.

PostgreSQL: each pytest worker creates its own database (``clarion_test_<random>``), migrates it
once, empties it between tests and drops it at the end. SQLite: a migrated template file is copied
for each test. ``CLARION_TEST_STORES=sqlite`` narrows a local run to one store; CI runs both.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from clarion.bootstrap import Clarion
from clarion.config import Settings
from clarion.store.engine import make_engine
from clarion.store.migrate import upgrade
from clarion.store.schema import metadata

PG_ADMIN_URL = os.environ.get("CLARION_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
STORES = [s.strip() for s in os.environ.get("CLARION_TEST_STORES", "sqlite,postgresql").split(",") if s.strip()]
TEST_SALT = "test-salt"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CDNOW_DIR = SHARED / "data" / "cdnow"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database for this worker, dropped afterwards."""
    name = f"clarion_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _empty_postgres(url: str) -> None:
    engine = create_engine(url)
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=STORES)
def database_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "clarion.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    _empty_postgres(url)


@pytest.fixture
def settings(database_url) -> Settings:
    return Settings(database_url=database_url, hash_salt=TEST_SALT, default_timezone="UTC",
                    default_phone_region="US", _env_file=None)


@pytest.fixture
def app(settings) -> Iterator[Clarion]:
    clarion = Clarion.from_settings(settings)
    yield clarion
    clarion.close()


@pytest.fixture
def cdnow_dir() -> Path:
    if not (CDNOW_DIR / "CDNOW_master.txt").exists():
        pytest.fail(f"the CDNOW data is expected in {CDNOW_DIR} (../shared beside the checkout)")
    return CDNOW_DIR

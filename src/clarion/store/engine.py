"""The engine and transaction helpers.

SQLite runs in WAL mode with a busy timeout, and write transactions start with ``BEGIN IMMEDIATE``
so a writer takes the lock up front instead of failing with "database is locked" when it first
writes inside a read transaction. PostgreSQL needs none of this.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from .sqlite_math import register_sqlite_math


def make_engine(database_url: str, *, sqlite_busy_timeout_ms: int = 30_000, echo: bool = False) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(database_url, sqlite_busy_timeout_ms, echo)
    return create_engine(database_url, echo=echo, pool_pre_ping=True, future=True)


def _sqlite_engine(database_url: str, busy_timeout_ms: int, echo: bool) -> Engine:
    engine = create_engine(database_url, echo=echo, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN, instead of pysqlite's implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # With WAL, NORMAL loses no committed transaction on a crash, only on power loss.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        # Segments' "near" needs sin/cos, missing from SQLite builds without SQLITE_ENABLE_MATH_FUNCTIONS.
        register_sqlite_math(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


class Store:
    """The database: ``read()`` and ``write()`` give a connection inside one transaction.

    On SQLite, writers of this process also queue on a lock: a thread waiting for SQLite's own
    lock sleeps in its busy handler's growing steps and wakes late, while a lock hands over at
    once. Writers in other processes still meet SQLite's lock and its busy timeout.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on an exception."""
        with self._writer, self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self.engine.dispose()

"""Math functions for SQLite builds without them: sin and cos (segments' near), exp (lead score decay)."""

from __future__ import annotations

import math
import sqlite3


def _nullable(function):
    return lambda value: None if value is None else function(value)


def register_sqlite_math(dbapi_connection: sqlite3.Connection, *, force: bool = False) -> bool:
    """Give a SQLite connection ``sin``, ``cos`` and ``exp`` if it lacks them; True when Python ones were added.

    Called from the engine's "connect" event (``store.engine._sqlite_engine``). ``force`` registers them
    even when SQLite has its own (an application function overrides a built-in), for tests.
    """
    if not force:
        try:
            dbapi_connection.execute("SELECT sin(0.5), cos(0.5), exp(0.5)").fetchone()
            return False
        except sqlite3.OperationalError:
            pass
    for name, function in (("sin", math.sin), ("cos", math.cos), ("exp", math.exp)):
        dbapi_connection.create_function(name, 1, _nullable(function), deterministic=True)
    return True

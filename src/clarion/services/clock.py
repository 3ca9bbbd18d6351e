"""The one place services read the time, so tests can move it (time-machine patches datetime.now)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time


def utcnow() -> datetime:
    return datetime.now(UTC)


def end_of_day(day: date) -> datetime:
    """The last moment of ``day`` in UTC: what an "as of" date means for scores and predictions."""
    return datetime.combine(day, time(23, 59, 59, 999999), UTC)

"""``in next N days`` on birthdays, anniversaries and custom dates: across the year end, 29 February in
leap and other years, and "today" taken in the workspace's default zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from segment_world import World

from clarion.segments.compiler import CompileContext
from clarion.segments.predicates import anniversary_days


def at(year: int, month: int, day: int, hour: int = 12, minute: int = 0, zone: str = "UTC") -> CompileContext:
    return CompileContext(now=datetime(year, month, day, hour, minute, tzinfo=UTC), default_timezone=zone)


def people(world: World) -> None:
    for name, born in {"dec30": date(1990, 12, 30), "dec31": date(1990, 12, 31), "jan01": date(1991, 1, 1),
                       "jan02": date(1991, 1, 2), "jan05": date(1991, 1, 5), "dec27": date(1991, 12, 27),
                       "leap": date(2000, 2, 29), "feb28": date(1999, 2, 28)}.items():
        world.contact(name, birthday=born, anniversary=born, custom_dates={"renewal": born.isoformat()})
    world.contact("none")


CASES = [
    # across the year end: 28 December + 7 days reaches 4 January
    (at(2026, 12, 28), "birthday in next 7 days", {"dec30", "dec31", "jan01", "jan02"}),
    (at(2026, 12, 28), "custom_dates.renewal in next 7 days", {"dec30", "dec31", "jan01", "jan02"}),
    (at(2026, 12, 28), "not anniversary in next 7 days", {"jan05", "dec27", "leap", "feb28", "none"}),
    # 2027 has no 29 February: it counts on the 28th
    (at(2027, 2, 27), "birthday in next 1 days", {"leap", "feb28"}),
    (at(2027, 2, 28), "custom_dates.renewal in next 1 days", {"leap", "feb28"}),
    (at(2027, 2, 25), "birthday in next 2 days", set()),
    # 2028 has one
    (at(2028, 2, 27), "birthday in next 1 days", {"feb28"}),
    (at(2028, 2, 27), "custom_dates.renewal in next 2 days", {"feb28", "leap"}),
    (at(2028, 3, 1), "birthday in next 30 days", set()),
    # today is the date in the default zone: 31 December 23:30 UTC is already 1 January in Tokyo
    (at(2026, 12, 31, 23, 30), "birthday in next 1 days", {"dec31", "jan01"}),
    (at(2026, 12, 31, 23, 30, zone="Asia/Tokyo"), "birthday in next 1 days", {"jan01", "jan02"}),
    (at(2026, 6, 1), "birthday in next 400 days", {"dec30", "dec31", "jan01", "jan02", "jan05", "dec27", "leap",
                                                   "feb28"}),
]


def test_anniversaries_fall_in_the_next_days(app):
    with app.store.write() as conn:
        # given
        world = World(app, conn)
        people(world)
        # when
        found = [(context.now, text, expected, world.members(text, context)) for context, text, expected in CASES]
        # then
        assert [case for case in found if case[2] != case[3]] == []


@pytest.mark.parametrize(("today", "days", "expected"), [
    (date(2026, 12, 30), 3, {"1230", "1231", "0101", "0102"}),
    (date(2027, 2, 28), 0, {"0228", "0229"}),
    (date(2028, 2, 28), 1, {"0228", "0229"}),
])
def test_the_window_of_month_days(today, days, expected):
    assert anniversary_days(today, days) == expected

"""Quiet hours, local send times and local days across DST gaps, folds and skipped days (pure, no store)."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clarion.domain.sending_time import (
    QuietHours,
    local_day_start,
    local_instant,
    next_local_day_start,
    next_local_time,
)

NEW_YORK = ZoneInfo("America/New_York")
APIA = ZoneInfo("Pacific/Apia")
TICK = timedelta(microseconds=1)
# Bound on a quiet stretch in 1970-2037: a 23:59 window whose one allowed minute a gap swallows (Jerusalem
# 1975-04-20, 00:00 -> 01:00) runs into the next day's window; add Antarctica/Vostok's 7-hour fall-back (1994).
MAX_QUIET_SPAN = timedelta(hours=2 * 24 + 8)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def wall(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


# --- parsing -----------------------------------------------------------------------------------------


def test_quiet_hours_round_trip_through_text():
    window = QuietHours.parse(" 21:00 - 08:00 ")
    assert window == QuietHours(time(21), time(8))
    assert window.to_text() == "21:00-08:00"
    assert QuietHours.parse("9:05\u201317:30:15").to_text() == "09:05-17:30:15"


@pytest.mark.parametrize(("text", "message"), [
    ("21:00", "expected 'HH:MM-HH:MM'"),
    ("21:00-08:00-09:00", "expected 'HH:MM-HH:MM'"),
    ("-08:00", "expected 'HH:MM-HH:MM'"),
    ("9pm-8am", "'9pm' is not a time"),
    ("21:00-24:00", "write midnight as '00:00'"),
    ("25:00-08:00", "out of range"),
    ("21:60-08:00", "out of range"),
])
def test_bad_quiet_hours_text_says_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        QuietHours.parse(text)


def test_quiet_hours_are_wall_clock_times():
    with pytest.raises(ValueError, match="drop its tzinfo"):
        QuietHours(time(21, tzinfo=UTC), time(8))


# --- contains ----------------------------------------------------------------------------------------


def test_window_is_half_open_and_may_cross_midnight():
    # given 21:00-08:00 in New York (EST in January, UTC-5)
    window = QuietHours.parse("21:00-08:00")
    # then 21:00 and 07:59 are quiet, 08:00 and 20:59 are not
    assert window.contains(utc(2026, 1, 6, 2, 0), NEW_YORK)
    assert window.contains(utc(2026, 1, 6, 12, 59), NEW_YORK)
    assert not window.contains(utc(2026, 1, 6, 13, 0), NEW_YORK)
    assert not window.contains(utc(2026, 1, 6, 1, 59), NEW_YORK)


def test_equal_start_and_end_means_no_quiet_hours():
    window = QuietHours.parse("08:00-08:00")
    assert window.is_empty
    moment = utc(2026, 1, 6, 13, 0)
    assert not window.contains(moment, NEW_YORK)
    assert window.next_allowed(moment, NEW_YORK) == moment


def test_naive_moments_are_refused():
    with pytest.raises(ValueError, match="naive"):
        QuietHours.parse("21:00-08:00").contains(datetime(2026, 1, 6, 13), NEW_YORK)


# --- next_allowed: concrete DST cases ----------------------------------------------------------------

NEXT_ALLOWED_CASES = [
    # zone, window, moment, expected: why
    ("America/New_York", "22:00-02:30", utc(2026, 3, 8, 4), utc(2026, 3, 8, 7)),  # end in the gap -> 03:00 EDT
    ("America/New_York", "01:00-03:30", utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 7, 30)),  # 03:30 EDT
    ("America/New_York", "02:00-02:30", utc(2026, 3, 8, 6, 59, 59), utc(2026, 3, 8, 6, 59, 59)),  # never shown
    ("America/New_York", "00:00-01:30", utc(2026, 11, 1, 4, 30), utc(2026, 11, 1, 5, 30)),  # first 01:30 (EDT)
    ("America/New_York", "00:00-01:30", utc(2026, 11, 1, 5, 40), utc(2026, 11, 1, 5, 40)),  # 01:40 EDT allowed
    ("America/New_York", "00:00-01:30", utc(2026, 11, 1, 6, 0), utc(2026, 11, 1, 6, 30)),  # repeated 01:00 quiet
    ("America/New_York", "01:00-02:00", utc(2026, 11, 1, 5, 0), utc(2026, 11, 1, 7, 0)),  # 02:00 EDT never shown
    ("Europe/London", "00:00-01:30", utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 0)),  # 02:00 BST
    ("Europe/London", "23:00-01:30", utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 0, 30)),  # 01:30 BST
    ("Europe/London", "23:00-01:30", utc(2026, 10, 25, 1, 0), utc(2026, 10, 25, 1, 30)),  # 01:30 GMT
    ("Australia/Lord_Howe", "01:00-02:15", utc(2026, 10, 3, 15, 0), utc(2026, 10, 3, 15, 30)),  # 02:00->02:30
    ("Australia/Lord_Howe", "00:00-01:45", utc(2026, 4, 4, 13, 30), utc(2026, 4, 4, 14, 45)),  # 01:45 +11
    ("Australia/Lord_Howe", "00:00-01:45", utc(2026, 4, 4, 15, 0), utc(2026, 4, 4, 15, 15)),  # 01:45 +10:30
    ("Pacific/Apia", "21:00-08:00", utc(2011, 12, 30, 9), utc(2011, 12, 30, 18)),  # 12-29 23:00 -> 12-31 08:00
    ("Pacific/Kiritimati", "21:00-08:00", utc(2026, 6, 1, 10), utc(2026, 6, 1, 18)),  # UTC+14: 08:00 on 06-02
    # the one allowed minute, 00:00, falls in the midnight gap of 1975-04-20: allowed only the day after
    ("Asia/Jerusalem", "00:01-00:00", utc(1975, 4, 19, 13), utc(1975, 4, 20, 21)),
]


@pytest.mark.parametrize(("zone", "text", "moment", "expected"), NEXT_ALLOWED_CASES)
def test_next_allowed_across_dst(zone, text, moment, expected):
    # given a window and a moment in a zone, when asking for the next allowed instant
    window, tz = QuietHours.parse(text), ZoneInfo(zone)
    result = window.next_allowed(moment, tz)
    # then it is the expected instant, allowed, and the instant before it was quiet (or it is the moment)
    assert result == expected
    assert result.utcoffset() == timedelta(0)
    assert not window.contains(result, tz)
    assert result == moment or window.contains(result - TICK, tz)


def test_next_allowed_accepts_any_aware_moment_and_answers_in_utc():
    window = QuietHours.parse("21:00-08:00")
    moment = datetime(2026, 1, 6, 23, 0, tzinfo=NEW_YORK)
    assert window.next_allowed(moment, NEW_YORK) == utc(2026, 1, 7, 13, 0)
    assert window.next_allowed(moment, NEW_YORK).tzinfo is UTC


# --- next_allowed: property over every zone ----------------------------------------------------------

ZONES = sorted(available_timezones())
EPOCH = utc(1970, 1, 1)
SECONDS_1970_2037 = int((utc(2038, 1, 1) - EPOCH).total_seconds())


def offset_change_after(zone: ZoneInfo, start: datetime, days: int = 400) -> datetime | None:
    """Test oracle, independent of the module: daily probes then bisection to the second."""
    before = start.astimezone(zone).utcoffset()
    for day in range(1, days + 1):
        high = start + timedelta(days=day)
        if high.astimezone(zone).utcoffset() != before:
            low = high - timedelta(days=1)
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) // 2
                low, high = (middle, high) if middle.astimezone(zone).utcoffset() == before else (low, middle)
            return high
    return None


@st.composite
def zoned_instants(draw):
    """A zone and an instant in 1970-2037, half the time within 3 or 30 hours of an offset change.

    Most zones keep one offset for years, so a few zones are tried before settling for a plain instant.
    """
    near = draw(st.booleans())
    for _ in range(4 if near else 1):
        zone = ZoneInfo(draw(st.sampled_from(ZONES)))  # ZoneInfo caches instances by key
        moment = EPOCH + timedelta(seconds=draw(st.integers(0, SECONDS_1970_2037)))
        change = offset_change_after(zone, moment) if near else None
        if change is not None and change < utc(2038, 1, 1):
            hours = draw(st.sampled_from([3, 30]))
            return zone, change + timedelta(seconds=draw(st.integers(-hours * 3600, hours * 3600)))
    return zone, moment


minutes_of_day = st.integers(0, 24 * 60 - 1).map(lambda m: time(m // 60, m % 60))


def shifted(clock: datetime, minutes: int) -> time:
    return (clock.replace(second=0, microsecond=0) + timedelta(minutes=minutes)).time()


@st.composite
def quiet_cases(draw):
    """(zone, moment, window): random, or quiet at the moment with the window end around an offset change."""
    zone, moment = draw(zoned_instants())
    window = QuietHours(draw(minutes_of_day), draw(minutes_of_day))
    change = offset_change_after(zone, moment - timedelta(hours=30), days=3)
    if change is None or draw(st.integers(0, 3)) == 0:
        if draw(st.booleans()):  # quiet at the moment unless the end falls before it
            window = QuietHours(shifted(wall(moment, zone), -draw(st.integers(0, 600))), window.end)
        return zone, moment, window
    # the moment up to 3 hours before the jump, quiet since up to 10 hours before it
    moment = change - timedelta(seconds=draw(st.integers(1, 3 * 3600)))
    start = shifted(wall(moment, zone), -draw(st.integers(0, 600)))
    # the end within 90 minutes of the wall time shown just before or just after the jump
    seen = wall(change - TICK, zone) if draw(st.booleans()) else wall(change, zone)
    return zone, moment, QuietHours(start, shifted(seen, draw(st.integers(-90, 90))))


# ~2.5 ms an example; 20 000 examples passed once, locally.
@settings(max_examples=1000, deadline=None)
@given(case=quiet_cases())
def test_next_allowed_is_the_earliest_allowed_instant(case):
    # given any zone, instant and window
    zone, moment, window = case
    # when asking for the next allowed instant
    result = window.next_allowed(moment, zone)
    # then it is allowed, not before the moment, and nothing in between is allowed
    assert result >= moment
    assert not window.contains(result, zone)
    if result > moment:
        assert window.contains(result - TICK, zone)
        assert result - moment <= MAX_QUIET_SPAN
        # every minute boundary from the moment up to the result is quiet (the window is minute-aligned)
        probe = moment.replace(second=0) + timedelta(minutes=1)
        assert window.contains(moment, zone)
        while probe < result:
            assert window.contains(probe, zone), probe
            probe += timedelta(minutes=1)


# --- local_instant and next_local_time ---------------------------------------------------------------

LOCAL_INSTANT_CASES = [
    ("America/New_York", date(2026, 6, 1), time(10), utc(2026, 6, 1, 14)),
    ("America/New_York", date(2026, 3, 8), time(2, 30), utc(2026, 3, 8, 7, 30)),  # gap -> 03:30 EDT
    ("America/New_York", date(2026, 11, 1), time(1, 30), utc(2026, 11, 1, 5, 30)),  # fold -> first (EDT)
    ("Europe/London", date(2026, 3, 29), time(1, 30), utc(2026, 3, 29, 1, 30)),  # gap -> 02:30 BST
    ("Australia/Lord_Howe", date(2026, 10, 4), time(2, 15), utc(2026, 10, 3, 15, 45)),  # gap -> 02:45 +11
    ("Australia/Lord_Howe", date(2026, 4, 5), time(1, 40), utc(2026, 4, 4, 14, 40)),  # fold -> first (+11)
    ("Pacific/Apia", date(2011, 12, 30), time(10), utc(2011, 12, 30, 20)),  # skipped day -> 12-31 10:00
    ("Pacific/Kiritimati", date(2026, 6, 2), time(10), utc(2026, 6, 1, 20)),  # UTC+14
]


@pytest.mark.parametrize(("zone", "day", "at", "expected"), LOCAL_INSTANT_CASES)
def test_local_instant(zone, day, at, expected):
    assert local_instant(day, at, ZoneInfo(zone)) == expected


def test_next_local_time_is_strictly_after():
    # given 10:00 EDT on Sunday 2026-03-08, the first day of DST
    sunday_ten = utc(2026, 3, 8, 14)
    # then the occurrence is found from the day before, and asking again from it gives the next day
    assert next_local_time(utc(2026, 3, 7, 15), time(10), NEW_YORK) == sunday_ten
    assert next_local_time(sunday_ten, time(10), NEW_YORK) == utc(2026, 3, 9, 14)


def test_next_local_time_on_weekdays():
    # given Wednesday 2026-03-04, when asking for Tuesday 10:00, then it is the 10th, in EDT
    assert next_local_time(utc(2026, 3, 4, 12), time(10), NEW_YORK, frozenset({1})) == utc(2026, 3, 10, 14)


def test_next_local_time_across_the_gap_and_the_fold():
    # a daily 02:30 is 03:30 EDT on the spring-forward day, then 02:30 EDT again
    first = next_local_time(utc(2026, 3, 7, 8), time(2, 30), NEW_YORK)
    assert first == utc(2026, 3, 8, 7, 30)
    assert next_local_time(first, time(2, 30), NEW_YORK) == utc(2026, 3, 9, 6, 30)
    # a daily 01:30 fires once on the fall-back night: the repeated 01:30 EST is skipped
    assert next_local_time(utc(2026, 11, 1, 5, 30), time(1, 30), NEW_YORK) == utc(2026, 11, 2, 6, 30)


def test_next_local_time_across_apias_skipped_day():
    # given 11:00 on Thursday 2011-12-29 in Apia (UTC-10), the last day before the jump to UTC+14
    thursday = utc(2011, 12, 29, 21)
    # then the daily 10:00 is Saturday 12-31 10:00 (+14), then Sunday 2012-01-01 10:00
    saturday = next_local_time(thursday, time(10), APIA)
    assert saturday == utc(2011, 12, 30, 20)
    assert next_local_time(saturday, time(10), APIA) == utc(2011, 12, 31, 20)
    # and "Friday 10:00" is not lost with the skipped Friday: it is shifted to Saturday like any gap
    assert next_local_time(thursday, time(10), APIA, frozenset({4})) == saturday


@pytest.mark.parametrize("weekdays", [frozenset(), frozenset({7}), frozenset({-1, 2})])
def test_next_local_time_refuses_bad_weekdays(weekdays):
    with pytest.raises(ValueError, match="weekdays"):
        next_local_time(utc(2026, 1, 1), time(10), NEW_YORK, weekdays)


@settings(max_examples=300, deadline=None)
@given(case=zoned_instants(), at=minutes_of_day,
       weekdays=st.none() | st.frozensets(st.integers(0, 6), min_size=1))
def test_next_local_time_is_the_first_occurrence_after(case, at, weekdays):
    zone, after = case
    result = next_local_time(after, at, zone, weekdays)
    assert result > after
    # no occurrence on any allowed date falls strictly between `after` and the result
    first_day = wall(after, zone).date() - timedelta(days=2)
    for offset in range((wall(result, zone).date() - first_day).days + 2):
        day = first_day + timedelta(days=offset)
        if weekdays is None or day.weekday() in weekdays:
            occurrence = local_instant(day, at, zone)
            assert not after < occurrence < result, day


# --- local days ----------------------------------------------------------------------------------------

LOCAL_DAY_CASES = [
    ("America/New_York", utc(2026, 3, 8, 17), utc(2026, 3, 8, 5), utc(2026, 3, 9, 4)),  # 23-hour day
    ("America/New_York", utc(2026, 11, 1, 17), utc(2026, 11, 1, 4), utc(2026, 11, 2, 5)),  # 25-hour day
    ("America/Santiago", utc(2026, 9, 6, 12), utc(2026, 9, 6, 4), utc(2026, 9, 7, 3)),  # midnight in the gap
    ("America/Santiago", utc(2026, 4, 4, 12), utc(2026, 4, 4, 3), utc(2026, 4, 5, 4)),  # 24:00 -> 23:00
    ("Asia/Beirut", utc(2022, 3, 27, 10), utc(2022, 3, 26, 22), utc(2022, 3, 27, 21)),  # midnight in the gap
    ("Pacific/Apia", utc(2011, 12, 30, 9), utc(2011, 12, 29, 10), utc(2011, 12, 30, 10)),  # next day is 12-31
    ("Pacific/Apia", utc(2011, 12, 30, 12), utc(2011, 12, 30, 10), utc(2011, 12, 31, 10)),
    ("Pacific/Kiritimati", utc(2026, 6, 1, 10), utc(2026, 6, 1, 10), utc(2026, 6, 2, 10)),  # UTC+14
]


@pytest.mark.parametrize(("zone", "moment", "start", "following"), LOCAL_DAY_CASES)
def test_local_day_bounds(zone, moment, start, following):
    tz = ZoneInfo(zone)
    assert local_day_start(moment, tz) == start
    assert next_local_day_start(moment, tz) == following


@settings(max_examples=500, deadline=None)
@given(case=zoned_instants())
def test_local_day_bounds_enclose_the_moment(case):
    # given any zone and instant, when taking its local day
    zone, moment = case
    day = wall(moment, zone).date()
    start, following = local_day_start(moment, zone), next_local_day_start(moment, zone)
    # then the day holds the moment, starts on its date and ends where the next date begins
    assert start <= moment < following
    assert wall(start, zone).date() == day
    assert wall(start - TICK, zone).date() < day
    assert wall(following, zone).date() > day
    assert wall(following - TICK, zone).date() == day
    assert local_day_start(following, zone) == following

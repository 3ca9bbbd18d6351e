"""When a message may go out: quiet hours, "10:00 in each recipient's zone", local days, retry backoff.

Pure functions over aware datetimes and :class:`zoneinfo.ZoneInfo`; no I/O. Every instant returned
is an aware UTC datetime. Resolve a recipient's zone name with :func:`clarion.domain.profiles.zoneinfo`
(unknown or missing name -> the workspace default); it is not duplicated here.

Local-time rules, decided once and used everywhere in this module:

* **Wall clock decides.** An instant is quiet when the local wall-clock time it shows lies in the
  window. After a fall-back the repeated hour shows the same wall times again, so a window that
  covers them is quiet twice (00:00-01:30 on a fall-back night at 02:00 -> quiet, allowed at the
  first 01:30, quiet again when the clock shows 01:00 for the second time, allowed at the second
  01:30).
* **Gaps shift forward.** A wall time that does not exist (spring-forward, Apia's skipped
  2011-12-30) is read with the offset in force before the jump (PEP 495, ``fold=0``), i.e. pushed
  later by the size of the gap: 02:30 on 2026-03-08 in New York is 03:30 EDT.
* **Folds take the first occurrence** when a wall time is turned into an instant (``fold=0``).

Finding offset changes: ``zoneinfo`` does not publish its transition table, so changes are found by
probing the UTC offset every :data:`_PROBE` and bisecting to the microsecond. That cannot miss a change
unless the offset changes and changes back within one probe step; in tzdata 2026f the closest two
offset changes of any zone between 1969 and 2040 are 6.9 days apart (America/Boa_Vista,
2000-10-08 and 2000-10-15, measured over the raw transition tables), so a 6-hour probe is safe with a
wide margin.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_PROBE = timedelta(hours=6)
_RESOLUTION = timedelta(microseconds=1)
# A local day or quiet window spans at most a handful of offset changes; this only stops a runaway loop.
_MAX_PIECES = 64
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


# --- quiet hours -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuietHours:
    """A daily window of local wall-clock time during which nothing is sent.

    The window is half-open, ``[start, end)`` in local wall time: ``start`` is quiet, ``end`` is
    allowed. It crosses midnight when ``start > end`` (21:00-08:00). ``start == end`` means no quiet
    hours at all (never quiet), not "quiet all day".
    """

    start: time
    end: time

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, time):
                raise TypeError(f"quiet hours {name} must be a datetime.time, not {type(value).__name__}")
            if value.tzinfo is not None:
                raise ValueError(f"quiet hours {name} is a local wall-clock time; drop its tzinfo")
            # fold only means something for a full datetime; keep equal windows equal.
            object.__setattr__(self, name, value.replace(fold=0))

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """``"21:00-08:00"`` (24-hour clock, seconds optional, an en dash accepted)."""
        raw = str(text).strip()
        parts = [p.strip() for p in raw.replace("\u2013", "-").split("-")]
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"quiet hours {raw!r}: expected 'HH:MM-HH:MM', for example '21:00-08:00'")
        return cls(_parse_clock(parts[0], raw), _parse_clock(parts[1], raw))

    def to_text(self) -> str:
        return f"{_format_clock(self.start)}-{_format_clock(self.end)}"

    @property
    def is_empty(self) -> bool:
        return self.start == self.end

    def quiet_at(self, wall: time) -> bool:
        """Is this local wall-clock time of day inside the window?"""
        if self.start <= self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end

    def contains(self, moment_utc: datetime, zone: ZoneInfo) -> bool:
        """Is this instant quiet, judged by the wall clock in ``zone``?"""
        return self.quiet_at(_wall(moment_utc, zone).time())

    def next_allowed(self, moment_utc: datetime, zone: ZoneInfo) -> datetime:
        """The earliest instant >= ``moment_utc`` that is not quiet (the moment itself when allowed).

        Usually the end of the window on the right local date; when the clock jumps over the end
        (spring-forward to 03:00 with the window ending 02:30) it is the first instant after the
        jump; when it jumps back into the window the search goes on from there.
        """
        _require_aware(moment_utc)
        return _first_instant(moment_utc, zone, self._wall_of_end)

    def _wall_of_end(self, wall: datetime) -> datetime | None:
        """None when ``wall`` is allowed, else the next wall datetime showing ``end``."""
        if not self.quiet_at(wall.time()):
            return None
        end = datetime.combine(wall.date(), self.end)
        # wall is quiet, so it does not show `end`: the next `end` is later today or tomorrow.
        return end if end > wall else end + timedelta(days=1)


def _parse_clock(text: str, whole: str) -> time:
    match = _CLOCK.fullmatch(text)
    if not match:
        raise ValueError(f"quiet hours {whole!r}: {text!r} is not a time such as '21:00'")
    hour, minute = int(match[1]), int(match[2])
    second = int(match[3] or 0)
    if hour == 24 and minute == 0 and second == 0:
        raise ValueError(f"quiet hours {whole!r}: write midnight as '00:00', not '24:00'")
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"quiet hours {whole!r}: {text!r} is out of range (00:00 to 23:59)")
    return time(hour, minute, second)


def _format_clock(value: time) -> str:
    if value.second or value.microsecond:
        return value.isoformat()
    return value.strftime("%H:%M")


# --- wall time -> instant --------------------------------------------------------------------------


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of wall time ``at`` on local date ``day`` ("10:00 in each recipient's zone").

    Gap (the wall time does not exist): shifted forward by the gap, 02:30 -> 03:30 EDT on a
    spring-forward night in New York; 10:00 on Apia's skipped 2011-12-30 -> 10:00 on 12-31.
    Fold (it exists twice): the first occurrence.
    """
    if at.tzinfo is not None:
        raise ValueError("`at` is a local wall-clock time; drop its tzinfo")
    # fold=0 reads a gap with the pre-jump offset, which is exactly "pushed later by the gap".
    local = datetime.combine(day, at.replace(fold=0), tzinfo=zone)
    return local.astimezone(UTC)


def next_local_time(
    after_utc: datetime, at: time, zone: ZoneInfo, weekdays: frozenset[int] | None = None
) -> datetime:
    """The first occurrence of ``at`` local time strictly after ``after_utc``, on one of ``weekdays``.

    ``weekdays`` uses Monday=0 ... Sunday=6; ``None`` means every day. The occurrence on date D is
    ``local_instant(D, at, zone)`` and D's weekday is the one tested, so a Friday 10:00 falling in
    Apia's skipped Friday is sent on Saturday 10:00, shifted like any gap, rather than lost.
    Strictly after, so feeding a result back in yields the following occurrence.
    """
    if weekdays is not None and (not weekdays or not weekdays <= frozenset(range(7))):
        raise ValueError(f"weekdays must be a non-empty set of 0 (Monday) to 6 (Sunday), got {sorted(weekdays)}")
    # Start a day early: a gap shift can move the previous date's occurrence past `after_utc`.
    day = _wall(after_utc, zone).date() - timedelta(days=1)
    for _ in range(16):  # 9 days always contain an allowed weekday; the rest is margin for skipped days
        if weekdays is None or day.weekday() in weekdays:
            candidate = local_instant(day, at, zone)
            if candidate > after_utc:
                return candidate
        day += timedelta(days=1)
    raise AssertionError(f"no {at} in {zone.key} within 16 days after {after_utc}")  # pragma: no cover


# --- local calendar days -----------------------------------------------------------------------------


def local_day_start(moment_utc: datetime, zone: ZoneInfo) -> datetime:
    """The first instant of the local date that contains ``moment_utc``.

    Local midnight (its first occurrence) when it exists; when midnight falls in a gap
    (America/Santiago, Asia/Beirut: 00:00 -> 01:00) the instant of the jump, whose wall time is 01:00.
    """
    day = _wall(moment_utc, zone).date()
    probe = moment_utc - timedelta(days=1)
    while _wall(probe, zone).date() >= day:  # a fall-back day is longer than 24 hours
        probe -= timedelta(days=1)
    return _first_instant(probe, zone, _until_date(day))


def next_local_day_start(moment_utc: datetime, zone: ZoneInfo) -> datetime:
    """The first instant of the next local date after the one containing ``moment_utc``.

    ``[local_day_start(m), next_local_day_start(m))`` is the local calendar day of ``m``, the
    period of a "per day" frequency cap. A skipped date (Apia 2011-12-30) is simply not a day.
    """
    day = _wall(moment_utc, zone).date()
    return _first_instant(moment_utc, zone, _until_date(day + timedelta(days=1)))


def _until_date(day: date) -> Callable[[datetime], datetime | None]:
    midnight = datetime.combine(day, time())

    def wall_of_day(wall: datetime) -> datetime | None:
        return midnight if wall < midnight else None

    return wall_of_day


# --- retry backoff -----------------------------------------------------------------------------------


def retry_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random, retry_after: float | None = None
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 = the first retry, after the first failure).

    "Full jitter" (M. Brooker, AWS Architecture Blog, "Exponential Backoff And Jitter", 2015):
    uniform in ``[0, min(cap, base * 2**attempt)]``, so attempt 0 waits up to ``base``.

    A provider's ``retry_after`` (seconds, from a Retry-After header or a rate-limit reply) is a
    floor: the delay is uniform in ``[retry_after, ceiling]`` when that range is not empty, else
    exactly ``retry_after`` even above ``cap`` - the provider knows when it will take the message,
    and retrying earlier only earns another refusal. Drawing above the floor, rather than
    ``max(jitter, retry_after)``, avoids piling every throttled send onto the same instant.
    ``retry_after <= 0`` (a Retry-After date already past) imposes nothing.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    for name, value in (("base", base), ("cap", cap)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value}")
    if retry_after is not None and not math.isfinite(retry_after):
        raise ValueError(f"retry_after must be a finite number of seconds, got {retry_after}")
    # 2.0**1023 is the largest finite power of two; past it the ceiling is the cap anyway (base > 0),
    # and a float product that overflows becomes inf, which min() turns into the cap.
    ceiling = min(cap, base * 2.0 ** min(attempt, 1023))
    floor = max(retry_after or 0.0, 0.0)
    if floor >= ceiling:
        return floor
    # uniform() may round to a hair past its upper bound.
    return min(rng.uniform(floor, ceiling), ceiling)


# --- internals ---------------------------------------------------------------------------------------


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} is naive; pass an aware datetime (UTC)")


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    _require_aware(moment)
    return moment.astimezone(zone).replace(tzinfo=None)


def _first_instant(
    start: datetime, zone: ZoneInfo, target: Callable[[datetime], datetime | None]
) -> datetime:
    """The earliest instant >= ``start`` whose wall time ``target`` accepts.

    ``target(wall)`` returns None when ``wall`` is acceptable, else the next wall datetime at which
    it becomes acceptable if the clock just runs (every wall time before it is unacceptable).
    Between offset changes wall time runs with UTC, so the answer is either that wall datetime
    under the current offset or, if the offset changes first, found again from the change.
    """
    moment = start.astimezone(UTC)
    for _ in range(_MAX_PIECES):
        local = moment.astimezone(zone)
        wall = target(local.replace(tzinfo=None))
        if wall is None:
            return moment
        reached = (wall - local.utcoffset()).replace(tzinfo=UTC)
        change = _next_offset_change(zone, moment, reached)
        if change is None:
            return reached
        moment = change
    raise AssertionError(f"more than {_MAX_PIECES} offset changes in {zone.key} after {start}")  # pragma: no cover


def _next_offset_change(zone: ZoneInfo, after: datetime, limit: datetime) -> datetime | None:
    """The first instant in ``(after, limit]`` whose UTC offset differs from the one at ``after``."""
    offset = after.astimezone(zone).utcoffset()
    low = after
    while low < limit:
        high = min(low + _PROBE, limit)
        if high.astimezone(zone).utcoffset() != offset:
            # Invariant: the offset at `low` is the old one, at `high` a new one.
            while high - low > _RESOLUTION:
                middle = low + (high - low) // 2
                if middle.astimezone(zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            return high
        low = high
    return None

"""Countries (ISO 3166-1 alpha-2) and their time zones, from the IANA tables that tzdata ships."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo

from .errors import FieldError

# Common names and codes that are not the ISO name in iso3166.tab.
_ALIASES = {"UK": "GB", "UNITED KINGDOM": "GB", "BRITAIN": "GB", "GREAT BRITAIN": "GB", "USA": "US",
            "UNITED STATES OF AMERICA": "US", "ENGLAND": "GB", "SCOTLAND": "GB", "WALES": "GB", "HOLLAND": "NL",
            "SOUTH KOREA": "KR",
            "RUSSIA": "RU", "VIETNAM": "VN", "IRAN": "IR", "SYRIA": "SY", "CZECHIA": "CZ"}


def _tab(name: str) -> list[list[str]]:
    text = resources.files("tzdata").joinpath("zoneinfo", name).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]


@lru_cache(maxsize=1)
def country_names() -> dict[str, str]:
    return {row[0]: row[1] for row in _tab("iso3166.tab")}


@lru_cache(maxsize=1)
def _names_to_codes() -> dict[str, str]:
    table = {name.upper(): code for code, name in country_names().items()}
    table.update(_ALIASES)
    return table


@lru_cache(maxsize=1)
def zones_by_country() -> dict[str, tuple[str, ...]]:
    zones: dict[str, list[str]] = {}
    for row in _tab("zone.tab"):  # code, coordinates, zone[, comment]
        zones.setdefault(row[0], []).append(row[2])
    return {code: tuple(names) for code, names in zones.items()}


def normalize_country(raw: str) -> str:
    """An alpha-2 code from a code (any case) or an English name ("France", "United Kingdom")."""
    text = str(raw).strip().upper()
    if text in country_names():
        return text
    code = _names_to_codes().get(text)
    if code is None:
        raise FieldError("country", f"{raw!r} is not an ISO 3166-1 country code or name")
    return code


@lru_cache(maxsize=512)
def single_zone_of_country(code: str) -> str | None:
    """The country's zone when all its zones keep the same clock (Germany: Berlin and Büsingen)."""
    return common_zone(zones_by_country().get(code.upper(), ()), code)


def common_zone(zones: Iterable[str], country: str) -> str | None:
    """One zone for ``zones`` when they all keep the same clock, else ``None`` (also for no zones).

    Zones count as one when their UTC offsets agree in mid-January and mid-July of this year,
    so both standard and summer time match. Of equal zones, the one the country lists first in
    zone.tab is returned: it is the principal one ("most of Germany", "Eastern (most areas)").
    """
    distinct = set(zones)
    if not distinct or len({clock_of(zone) for zone in distinct}) != 1:
        return None
    order = {zone: rank for rank, zone in enumerate(zones_by_country().get(country.upper(), ()))}
    return min(distinct, key=lambda zone: (order.get(zone, len(order)), zone))


@lru_cache(maxsize=1024)
def clock_of(zone: str) -> tuple[timedelta | None, ...]:
    """The zone's UTC offsets in mid-January and mid-July of this year."""
    year = datetime.now(UTC).year
    instants = (datetime(year, 1, 15, 12, tzinfo=UTC), datetime(year, 7, 15, 12, tzinfo=UTC))
    return tuple(instant.astimezone(ZoneInfo(zone)).utcoffset() for instant in instants)

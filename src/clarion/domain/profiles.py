"""Profile attributes: parsing and normalisation rules, with no I/O.

Emails are normalised by email-validator without DNS look-ups; phones become E.164 with
phonenumbers; time zones are IANA names resolved in a fixed order (:func:`resolve_timezone`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import timezone as phone_timezones

from .countries import normalize_country, single_zone_of_country
from .errors import FieldError

if TYPE_CHECKING:
    from .gazetteer import CityZone

# Profile fields stored in their own columns; anything else is a custom attribute.
STANDARD_FIELDS = (
    "external_id", "email", "phone", "first_name", "last_name", "locale", "timezone", "country",
    "region", "city", "latitude", "longitude", "birthday", "anniversary",
)
MAX_TEXT = 200  # characters, the width of the name and city columns


@dataclass
class ProfilePatch:
    """A partial profile: ``None`` means "not given, leave as is"."""

    external_id: str | None = None
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    locale: str | None = None
    timezone: str | None = None
    country: str | None = None
    region: str | None = None
    city: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    birthday: date | None = None
    anniversary: date | None = None
    custom_dates: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        """The given standard fields, as column values."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name in STANDARD_FIELDS and getattr(self, f.name) is not None}


def normalize_email(raw: str) -> str:
    try:
        result = validate_email(str(raw).strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise FieldError("email", str(exc)) from None
    return result.normalized.lower()


def normalize_phone(raw: str, default_region: str) -> str:
    text = str(raw).strip()
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise FieldError("phone", f"cannot parse {text!r}: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise FieldError("phone", f"{text!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_timezone(raw: str) -> str:
    name = str(raw).strip()
    if name not in _zones():
        raise FieldError("timezone", f"unknown IANA time zone {name!r}")
    return name


# Names the system zone database may list that are not zones of a place: "localtime" is whatever the
# machine is set to, "posixrules" and "Factory" are tzdata internals.
NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones()) - NOT_ZONES


def parse_date(raw: Any, field_name: str) -> date:
    """ISO dates (``1990-02-28``), compact ``19900228``, or a datetime's date part."""
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    text = str(raw).strip()
    for candidate in (text, text[:10]):
        try:
            return date.fromisoformat(candidate)
        except ValueError:
            continue
    raise FieldError(field_name, f"{text!r} is not a date (expected YYYY-MM-DD)")


def parse_coordinate(raw: Any, field_name: str, limit: float) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise FieldError(field_name, f"{raw!r} is not a number") from None
    if not -limit <= value <= limit:
        raise FieldError(field_name, f"{value} is outside -{limit}..{limit}")
    return value


def parse_locale(raw: Any) -> str:
    """BCP 47 tag, normalised like ``pt-BR``; underscores accepted."""
    text = str(raw).strip().replace("_", "-")
    parts = text.split("-")
    if not parts[0].isalpha() or not 2 <= len(parts[0]) <= 3 or not all(p.isalnum() for p in parts):
        raise FieldError("locale", f"{text!r} is not a language tag such as 'en' or 'pt-BR'")
    head = parts[0].lower()
    rest = [p.upper() if len(p) == 2 else p.title() if len(p) == 4 else p for p in parts[1:]]
    return "-".join([head, *rest])


def clean_text(raw: Any, field_name: str, limit: int = MAX_TEXT) -> str | None:
    text = str(raw).strip()
    if len(text) > limit:
        raise FieldError(field_name, f"longer than {limit} characters")
    return text or None


@dataclass(frozen=True)
class ZoneInputs:
    explicit: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    phone: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2
    city: str | None = None
    region: str | None = None  # state or province: a code ("TX") or, in the US, a name ("Texas")


# timezone_source when the city named places in different zones and nothing later decided: the zone
# is the workspace default, and giving the region (or coordinates) would settle it.
CITY_AMBIGUOUS = "city_ambiguous"


def resolve_timezone(inputs: ZoneInputs, default_zone: str) -> tuple[str, str]:
    """(zone, source), trying in order: explicit, coordinates, city, phone, single-zone country, default.

    A city counts only with its country (names repeat across countries) and only when every place
    of that name there, in the region when given, keeps the same clock (:mod:`.gazetteer`).
    """
    if inputs.explicit:
        return inputs.explicit, "explicit"
    if inputs.latitude is not None and inputs.longitude is not None:
        zone = zone_at(inputs.latitude, inputs.longitude)
        if zone:
            return zone, "coordinates"
    city = _zone_of_city(inputs)
    if city and city.zone:
        return city.zone, "city"
    if inputs.phone:
        zone = _zone_of_phone(inputs.phone)
        if zone:
            return zone, "phone"
    if inputs.country:
        zone = single_zone_of_country(inputs.country)
        if zone:
            return zone, "country"
    return default_zone, CITY_AMBIGUOUS if city is not None else "default"


def _zone_of_city(inputs: ZoneInputs) -> CityZone | None:
    if not (inputs.city and inputs.country):
        return None
    # Imported on first use, like timezonefinder below: the CLI's start-up never needs the gazetteer.
    from .gazetteer import zone_of_city

    return zone_of_city(inputs.city, inputs.region, inputs.country)


def zone_at(latitude: float, longitude: float) -> str | None:
    return _finder().timezone_at(lat=latitude, lng=longitude)


@lru_cache(maxsize=1)
def _finder():
    # Imported lazily: loading its polygon data takes a moment and is needed only for coordinates.
    from timezonefinder import TimezoneFinder

    return TimezoneFinder()


def _zone_of_phone(e164: str) -> str | None:
    """The number's zone when its prefix has exactly one (e.g. +33 → Europe/Paris; not +1 212 ...)."""
    try:
        number = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return None
    zones = [z for z in phone_timezones.time_zones_for_number(number) if z in _zones()]
    return zones[0] if len(zones) == 1 else None


def zoneinfo(name: str | None, default_zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or default_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default_zone)


__all__ = [
    "CITY_AMBIGUOUS", "FieldError", "ProfilePatch", "ZoneInputs", "clean_text", "normalize_country", "normalize_email",
    "normalize_phone", "normalize_timezone", "parse_coordinate", "parse_date", "parse_locale",
    "resolve_timezone",
]

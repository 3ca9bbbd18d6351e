"""Turn loosely shaped input (Segment traits, CSV rows, API bodies) into a :class:`ProfilePatch`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from .custom_values import KB, CustomLimits, check_names, to_json
from .errors import FieldError
from .profiles import (
    ProfilePatch,
    clean_text,
    normalize_country,
    normalize_email,
    normalize_phone,
    normalize_timezone,
    parse_coordinate,
    parse_date,
    parse_locale,
)

# Segment's reserved trait names (camelCase) and common spellings, mapped to our fields.
_ALIASES = {
    "userId": "external_id", "user_id": "external_id", "id": "external_id",
    "firstName": "first_name", "lastName": "last_name", "first": "first_name", "last": "last_name",
    "tz": "timezone", "time_zone": "timezone", "state": "region", "lat": "latitude",
    "lng": "longitude", "lon": "longitude", "date_of_birth": "birthday", "dob": "birthday",
    "phone_number": "phone", "mobile": "phone", "language": "locale",
}
_TEXT_FIELDS = {"external_id": 255, "first_name": 200, "last_name": 200, "region": 100, "city": 200}
MAX_CUSTOM_KEY = 100  # characters
# Custom attributes and custom dates of one contact, after a change is merged into what is stored (numbers:
# see custom_values). Clarion's bounds: a profile is read whole for every message rendered, and 64 KB of
# JSON is room for hundreds of attributes (500 custom dates take ~60 KB).
ATTRIBUTE_LIMITS = CustomLimits("attributes", "attribute", max_keys=500, max_key_chars=MAX_CUSTOM_KEY,
                                max_bytes=64 * KB, why="Clarion's bound for one contact's attributes")
DATE_LIMITS = CustomLimits("custom_dates", "custom date", max_keys=500, max_key_chars=MAX_CUSTOM_KEY,
                           max_bytes=64 * KB, why="Clarion's bound for one contact's custom dates")


def _parse_value(name: str, raw: Any, default_region: str) -> Any:
    if name in _TEXT_FIELDS:
        return clean_text(raw, name, _TEXT_FIELDS[name])
    parsers = {
        "email": normalize_email,
        "phone": lambda v: normalize_phone(v, default_region),
        "timezone": normalize_timezone,
        "country": normalize_country,
        "locale": parse_locale,
        "latitude": lambda v: parse_coordinate(v, "latitude", 90.0),
        "longitude": lambda v: parse_coordinate(v, "longitude", 180.0),
        "birthday": lambda v: parse_date(v, "birthday"),
        "anniversary": lambda v: parse_date(v, "anniversary"),
    }
    return parsers[name](raw)


def _is_blank(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def parse_traits(
    traits: Mapping[str, Any],
    *,
    default_region: str,
    keep_unknown: bool = True,
    date_attributes: frozenset[str] = frozenset(),
) -> ProfilePatch:
    """Parse one profile. Blank values are "not given". Raises :class:`FieldError` on the first bad field.

    ``keep_unknown`` puts unrecognised keys into custom attributes (the API does; the importer only
    when asked). Keys named in ``date_attributes``, or ending in ``_date``, become custom dates.
    """
    patch = ProfilePatch()
    flat = dict(traits)
    address = flat.pop("address", None)
    if isinstance(address, Mapping):  # Segment: traits.address.{city,country,state,...}
        for key in ("city", "country", "state", "region"):
            if key in address and key not in flat:
                flat[key] = address[key]
    for key, raw in flat.items():
        name = _ALIASES.get(key, key)
        if name in ("custom_dates", "attributes") and isinstance(raw, Mapping):
            _merge_custom(patch, raw, name == "custom_dates", date_attributes)
        elif hasattr(patch, name) and name not in ("custom_dates", "attributes"):
            if not _is_blank(raw):
                setattr(patch, name, _parse_value(name, raw, default_region))
        elif keep_unknown:
            _merge_custom(patch, {key: raw}, False, date_attributes)
    patch.attributes = check_attributes(patch.attributes)
    check_custom_dates(patch.custom_dates)
    return patch


def check_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Custom attributes as stored (integers beyond 64 bits as doubles); raises past :data:`ATTRIBUTE_LIMITS`.

    Checked on each change and again on the profile it makes, so attributes cannot pile up change by change."""
    return to_json(attributes, ATTRIBUTE_LIMITS)[0] if attributes else {}


def check_custom_dates(custom_dates: Mapping[str, Any]) -> None:
    """Raises past :data:`DATE_LIMITS`, like :func:`check_attributes`."""
    if custom_dates:
        to_json(custom_dates, DATE_LIMITS)


def _merge_custom(patch: ProfilePatch, values: Mapping[str, Any], as_dates: bool,
                  date_attributes: frozenset[str]) -> None:
    check_names(values, DATE_LIMITS if as_dates else ATTRIBUTE_LIMITS)  # before walking 90,000 of them
    for key, raw in values.items():
        if as_dates or key in date_attributes or key.endswith("_date"):
            if not _is_blank(raw):
                patch.custom_dates[key] = parse_date(raw, key).isoformat()
        else:
            patch.attributes[key] = _json_safe(raw, key)


def _json_safe(raw: Any, key: str) -> Any:
    if isinstance(raw, datetime | date):
        return raw.isoformat()
    if isinstance(raw, float) and raw != raw:  # NaN is not JSON
        raise FieldError(key, "NaN is not a valid value")
    return raw

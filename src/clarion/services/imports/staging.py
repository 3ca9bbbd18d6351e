"""Import rows -> staged events: plain tuples already in the stored formats, ready for the bulk SQL.

The event importer's hot path (about 1 µs of Python per CSV row instead of ~40): no per-row dicts
or dataclasses, the column plan compiled once into positions, timestamps checked by the C
``datetime.fromisoformat`` and turned straight into the text SQLite stores, properties serialised
once with orjson. The rules are those of :func:`import_mappings.generic_event` (same checks, in
the same order, so a bad row gets the same reason); JSON Lines and CDNOW rows still go through
:class:`ParsedEvent` and are converted with :func:`staged_from`.

A staged event is the tuple ``(line, raw, key, name, message_id, occurred_at, properties,
order_id, revenue, currency)``: ``key`` is ``("external_id", value)`` or ``("email", value)``,
``occurred_at`` the naive UTC text ``YYYY-MM-DD HH:MM:SS.ffffff`` (what SQLAlchemy's SQLite
``DateTime`` stores for a :class:`UtcDateTime`, byte for byte, so text comparisons keep working),
``properties`` the JSON text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from ...domain.errors import FieldError
from ...domain.events import MAX_EVENT_NAME, ORDER_COMPLETED, parse_timestamp, properties_json, purchase_of
from ...domain.profiles import normalize_email
from .mappings import (
    _NUMERIC_PROPERTIES,
    MAX_MESSAGE_ID,
    ColumnPlan,
    ParsedEvent,
    _number_if_numeric,
    derived_message_id,
)

Staged = tuple[Any, ...]
LINE, RAW, KEY, NAME, MESSAGE_ID, OCCURRED_AT, PROPERTIES, ORDER_ID, REVENUE, CURRENCY = range(10)
MAX_EXTERNAL_ID = 255  # characters, the identities.value column allows more but contacts.external_id not
EMAIL_CACHE = 200_000  # normalised addresses remembered per import (~150 bytes each: ~30 MB at most)

_fromisoformat = datetime.fromisoformat
_dumps = properties_json  # orjson, with the property limits every entry point applies (~0.3 µs)


def stamp_text(value: datetime) -> str:
    """An aware datetime as SQLite stores a ``UtcDateTime``: naive UTC, always six fraction digits."""
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # without "+00:00" (replace() costs ~1 µs)


def timestamp_text(raw: str) -> str:
    """:func:`parse_timestamp` then :func:`stamp_text`; the C parser first (it takes ``Z`` since 3.11)."""
    try:
        value = _fromisoformat(raw)
    except ValueError:  # blanks around it, a lower-case z, or not a time (FieldError from here)
        value = parse_timestamp(raw)
    if len(raw) == 20 and raw[19] == "Z" and raw[10] == "T" and raw[13] == ":" and raw[16] == ":" \
            and raw[7] == "-":
        # "YYYY-MM-DDTHH:MM:SSZ", checked by the parser above: rearranged, not formatted (~3x faster)
        return f"{raw[:10]} {raw[11:19]}.000000"
    return stamp_text(value)


def staged_from(event: ParsedEvent) -> Staged:
    key = ("external_id", event.external_id) if event.external_id else ("email", event.email)
    return (event.line, event.raw, key, event.name, event.message_id, stamp_text(event.occurred_at),
            _dumps(event.properties).decode(), event.order_id, event.revenue, event.currency)


def _json_properties(text: str) -> dict[str, Any]:
    """The ``properties`` column of a CSV row, as :func:`import_mappings._properties` reads it."""
    if text == "":
        return {}
    props: Any = text
    if text.strip():
        try:
            props = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise FieldError("properties", "not a JSON object") from None
    if not isinstance(props, dict):
        raise FieldError("properties", "must be a JSON object")
    return props


class _Emails(dict):
    """Bounded memo of :func:`normalize_email` (email_validator costs ~20 µs per address)."""

    def __missing__(self, raw: str) -> str:
        value = normalize_email(raw)
        if len(self) < EMAIL_CACHE:
            self[raw] = value
        return value


def csv_event_parser(header: Sequence[str], plan: ColumnPlan, mapping_name: str
                     ) -> Callable[[int, str, list[str]], Staged]:
    """A function (line, raw text, CSV values in ``header`` order) -> staged event; raises FieldError."""
    at = plan.positions(header)
    ext_i, email_i, name_i, time_i, id_i, props_i = (
        at.get(target) for target in ("external_id", "email", "event", "timestamp", "message_id", "properties"))
    columns = tuple((target[len("properties."):], index, target[len("properties."):] in _NUMERIC_PROPERTIES)
                    for target, index in at.items() if target.startswith("properties."))
    emails = _Emails()

    def parse(line: int, raw: str, values: list[str]) -> Staged:
        props = {} if props_i is None else dict(_json_properties(values[props_i]))
        for key, index, numeric in columns:
            value = values[index]
            if value != "":
                props[key] = _number_if_numeric(key, value) if numeric else value
        key = _sender(values, ext_i, email_i, emails)
        name = "" if name_i is None else values[name_i].strip()
        _check_name(name)
        stamp = "" if time_i is None else values[time_i]
        if stamp == "":
            raise FieldError("timestamp", "a timestamp is required")
        stamp = timestamp_text(stamp)
        message_id = "" if id_i is None else values[id_i]
        message_id = message_id.strip() if message_id != "" else derived_message_id(mapping_name, line, raw)
        if len(message_id) > MAX_MESSAGE_ID:
            raise FieldError("message_id", f"longer than {MAX_MESSAGE_ID} characters")
        if name != ORDER_COMPLETED:
            return (line, raw, key, name, message_id, stamp, _dumps(props).decode(), None, None, None)
        purchase = purchase_of(name, props)
        return (line, raw, key, name, message_id, stamp, _dumps(props).decode(), purchase.order_id,
                purchase.revenue, purchase.currency)

    return parse


def _sender(values: list[str], ext_i: int | None, email_i: int | None, emails: _Emails) -> tuple[str, str]:
    external_id = "" if ext_i is None else values[ext_i]
    if external_id != "":
        external_id = external_id.strip()
        if len(external_id) > MAX_EXTERNAL_ID:
            raise FieldError("external_id", f"longer than {MAX_EXTERNAL_ID} characters")
    email = "" if email_i is None else values[email_i]
    if email != "":
        email = emails[email]
    if external_id:
        return ("external_id", external_id)
    if email:
        return ("email", email)
    raise FieldError("external_id", "a user id (external_id) or an email is required")


def _check_name(name: str) -> None:
    """:func:`domain.events.check_event_name` for an already stripped string."""
    if not name:
        raise FieldError("event", "an event name is required")
    if len(name) > MAX_EVENT_NAME:
        raise FieldError("event", f"longer than {MAX_EVENT_NAME} characters")

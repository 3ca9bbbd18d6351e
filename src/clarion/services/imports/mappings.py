"""How import columns become profile fields and event parts: ``--map``, ``--keep-unknown``, CDNOW.

Mappings are ``target=source`` (``--map email=E-mail``). Unmapped columns keep their names. For
contacts, a column is known when it is a profile field, one of the trait aliases (``firstName``,
``dob`` ...), ``attributes.<name>``, ``custom_dates.<name>`` or a consent column (``consent.email``,
see :mod:`.import_consent`); for events, when it is ``external_id``/``userId``, ``email``, ``event``,
``timestamp``, ``message_id``/``messageId``, ``properties`` (a JSON object), a common commerce
property (``revenue``, ``currency``, ``order_id`` ...), or ``properties.<name>``. Other columns are
unknown: kept (as custom attributes, or event properties) only with ``keep_unknown``, otherwise
ignored and reported once. A ``--map`` target must be known too: a typo (``externalid``) is an error
with the nearest names, and custom values are named explicitly (``attributes.tier=LoyaltyTier``,
``properties.size=Size``), so a misspelt field never silently becomes a custom attribute.

CDNOW (``mapping="cdnow"``): ``customer_id date number_of_cds dollar_value``. The customer id
becomes the external id without its leading zeros (``00042`` -> ``"42"``); each row is one
``Order Completed`` at that date 00:00 UTC with properties ``{quantity, revenue, currency: "USD"}``.
"""

from __future__ import annotations

import difflib
import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from ...domain.errors import FieldError
from ...domain.events import ORDER_COMPLETED, check_event_name, parse_timestamp, purchase_of
from ...domain.profiles import STANDARD_FIELDS, clean_text, normalize_email
from ...domain.traits import _ALIASES as TRAIT_ALIASES  # the trait spellings parse_traits accepts
from .consent import consent_column, is_consent_target

MAPPINGS = ("cdnow",)
MAX_MESSAGE_ID = 200
MAX_REPORTED_UNKNOWN = 100

_CONTACT_KNOWN = frozenset(STANDARD_FIELDS) | frozenset(TRAIT_ALIASES) | {"attributes", "custom_dates",
                                                                         "address", "traits"}
_CONTACT_PREFIXES = ("attributes.", "custom_dates.")
_EVENT_ALIASES = {
    "userId": "external_id", "user_id": "external_id", "customer_id": "external_id",
    "event_name": "event", "name": "event", "messageId": "message_id",
    "occurred_at": "timestamp", "originalTimestamp": "timestamp", "time": "timestamp", "date": "timestamp",
}
_EVENT_FIELDS = frozenset({"external_id", "email", "event", "timestamp", "message_id", "properties"})
PROPERTY_COLUMNS = frozenset({
    "revenue", "total", "currency", "order_id", "orderId", "quantity", "price", "value", "discount",
    "tax", "shipping", "coupon", "product_id", "sku", "category", "products", "subtotal",
})
_NUMERIC_PROPERTIES = frozenset({"revenue", "total", "quantity", "price", "value", "discount", "tax",
                                 "shipping", "subtotal"})


def parse_map_options(items: Iterable[str], option: str = "--map") -> dict[str, str]:
    """``["email=E-mail", ...]`` -> ``{"E-mail": "email"}`` (source column -> target)."""
    mapping: dict[str, str] = {}
    for item in items:
        target, sep, source = item.partition("=")
        if not sep or not target.strip() or not source.strip():
            raise FieldError(option, f"{item!r} is not target=source (for example email=E-mail)")
        mapping[source.strip()] = target.strip()
    return mapping


def parse_set_options(items: Iterable[str]) -> dict[str, str]:
    """``["consent.email=opted_in", ...]`` -> ``{"consent.email": "opted_in"}``: a value for every row."""
    values: dict[str, str] = {}
    for item in items:
        target, sep, value = item.partition("=")
        if not sep or not target.strip():
            raise FieldError("--set", f"{item!r} is not target=value (for example consent.email=opted_in)")
        values[target.strip()] = value.strip()
    return values


def check_target(kind: str, target: str, option: str = "--map") -> None:
    """FieldError, with the nearest names, unless ``target`` is a field an import of ``kind`` can fill."""
    if kind == "contacts":
        if target in _CONTACT_KNOWN or _named_custom(target, _CONTACT_PREFIXES):
            return
        if is_consent_target(target):
            consent_column(target)  # raises for a bad channel or part
            return
        names = sorted(_CONTACT_KNOWN) + ["attributes.<name>", "custom_dates.<name>", "consent.<channel>"]
        hint = "name custom values attributes.<name> (attributes.tier=LoyaltyTier)"
    else:
        if target in _EVENT_FIELDS or target in _EVENT_ALIASES or target in PROPERTY_COLUMNS \
                or _named_custom(target, ("properties.",)):
            return
        names = sorted(_EVENT_FIELDS | set(_EVENT_ALIASES) | PROPERTY_COLUMNS) + ["properties.<name>"]
        hint = "name custom values properties.<name> (properties.size=Size)"
    near = difflib.get_close_matches(target.lower(), names, n=3, cutoff=0.6)
    guess = f"did you mean {' or '.join(repr(n) for n in near)}? " if near else ""
    raise FieldError(option, f"unknown {kind[:-1]} field {target!r}; {guess}{hint}")


def _named_custom(target: str, prefixes: tuple[str, ...]) -> bool:
    return any(target.startswith(prefix) and len(target) > len(prefix) for prefix in prefixes)


@dataclass
class ColumnPlan:
    """Renames columns, drops unknown ones (unless kept) and remembers which were unknown."""

    kind: str  # contacts | events
    mapping: dict[str, str] = field(default_factory=dict)
    keep_unknown: bool = False
    unknown: set[str] = field(default_factory=set)
    _cache: dict[tuple[str, ...], list[tuple[str, str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for target in self.mapping.values():
            check_target(self.kind, target)

    def apply(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        keys = tuple(fields)
        plan = self._cache.get(keys)
        if plan is None:
            plan = self._plan(keys)
            if len(self._cache) < 1000:
                self._cache[keys] = plan
        return {target: fields[source] for source, target in plan}

    def positions(self, header: Sequence[str]) -> dict[str, int]:
        """{target: column index} for rows given as lists in ``header`` order (the last column wins)."""
        index = {source: i for i, source in enumerate(header)}
        positions: dict[str, int] = {}
        for source, target in self._plan(tuple(header)):
            positions[target] = index[source]
        return positions

    def _plan(self, keys: tuple[str, ...]) -> list[tuple[str, str]]:
        plan = []
        for source in keys:
            target = self._target(source)
            if target is None:
                if len(self.unknown) < MAX_REPORTED_UNKNOWN:
                    self.unknown.add(source)
                if not self.keep_unknown:
                    continue
                target = source if self.kind == "contacts" else f"properties.{source}"
            plan.append((source, target))
        return plan

    def _target(self, source: str) -> str | None:
        if source in self.mapping:
            target = self.mapping[source]
            if self.kind == "events" and target in _EVENT_ALIASES:
                return _EVENT_ALIASES[target]
            if self.kind == "events" and target in PROPERTY_COLUMNS:
                return f"properties.{target}"
            return target  # checked by check_target
        if self.kind == "contacts":
            if is_consent_target(source):
                consent_column(source)  # a misspelt consent column fails the import, not every row
                return source
            known = source in _CONTACT_KNOWN or _named_custom(source, _CONTACT_PREFIXES)
            return source if known else None
        if source in _EVENT_FIELDS:
            return source
        if source in _EVENT_ALIASES:
            return _EVENT_ALIASES[source]
        if source in PROPERTY_COLUMNS:
            return f"properties.{source}"
        return source if source.startswith("properties.") else None


def contact_traits(values: dict[str, Any]) -> dict[str, Any]:
    """Mapped columns -> the traits ``parse_traits`` takes (``attributes.x`` gathered, ``traits`` flattened)."""
    traits: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    dates: dict[str, Any] = {}
    for key, value in values.items():
        if key.startswith("attributes."):
            attributes[key[len("attributes."):]] = value
        elif key.startswith("custom_dates."):
            dates[key[len("custom_dates."):]] = value
        elif is_consent_target(key):
            continue  # read by import_consent.consent_changes
        elif key == "traits" and isinstance(value, Mapping):
            traits.update({k: v for k, v in value.items() if k not in values})
        else:
            traits[key] = value
    for name, named in (("attributes", attributes), ("custom_dates", dates)):
        if named:
            given = traits.get(name)
            traits[name] = {**(given if isinstance(given, Mapping) else {}), **named}
    return traits


@dataclass(slots=True)
class ParsedEvent:
    line: int
    raw: str
    external_id: str | None
    email: str | None
    name: str
    occurred_at: datetime
    message_id: str
    properties: dict[str, Any]
    order_id: str | None
    revenue: float | None
    currency: str | None


def derived_message_id(mapping_name: str, line: int, raw: str) -> str:
    """Deterministic id of an event row without one: ``imp-<mapping>-<line>-<SHA-1 of the row text>``.

    Built from the mapping name, the line number and the row's text (first 20 hex digits of the
    SHA-1 of all three), never from the file's name or location: importing the same file again,
    from anywhere, produces the same ids and inserts nothing twice. Identical rows on different
    lines stay distinct purchases. The line number leads so that one batch's ids sit together in
    the unique index (far fewer pages touched than with a random hash).
    """
    digest = hashlib.sha1(f"{mapping_name}\x00{line}\x00{raw}".encode()).hexdigest()
    return f"imp-{mapping_name}-{line:010d}-{digest[:20]}"


def generic_event(line: int, raw: str, values: dict[str, Any], mapping_name: str) -> ParsedEvent:
    """A mapped CSV/JSONL row -> :class:`ParsedEvent` (raises :class:`FieldError`)."""
    properties = _properties(values)
    external_id = values.get("external_id")
    external_id = clean_text(external_id, "external_id", 255) if external_id not in (None, "") else None
    email = values.get("email")
    email = normalize_email(email) if email not in (None, "") else None
    if not external_id and not email:
        raise FieldError("external_id", "a user id (external_id) or an email is required")
    name = check_event_name(values.get("event"))
    if values.get("timestamp") in (None, ""):
        raise FieldError("timestamp", "a timestamp is required")
    occurred_at = parse_timestamp(values["timestamp"])
    message_id = values.get("message_id")
    message_id = str(message_id).strip() if message_id not in (None, "") else \
        derived_message_id(mapping_name, line, raw)
    if len(message_id) > MAX_MESSAGE_ID:
        raise FieldError("message_id", f"longer than {MAX_MESSAGE_ID} characters")
    purchase = purchase_of(name, properties)
    return ParsedEvent(line, raw, external_id, email, name, occurred_at, message_id, properties,
                       purchase.order_id, purchase.revenue, purchase.currency)


def _properties(values: dict[str, Any]) -> dict[str, Any]:
    props = values.get("properties")
    if isinstance(props, str) and props.strip():
        try:
            props = orjson.loads(props)
        except orjson.JSONDecodeError:
            raise FieldError("properties", "not a JSON object") from None
    if props in (None, ""):
        props = {}
    if not isinstance(props, dict):
        raise FieldError("properties", "must be a JSON object")
    props = dict(props)
    for key, value in values.items():
        if key.startswith("properties.") and value not in (None, ""):
            name = key[len("properties."):]
            props[name] = _number_if_numeric(name, value)
    return props


def _number_if_numeric(name: str, value: Any) -> Any:
    if name not in _NUMERIC_PROPERTIES or not isinstance(value, str):
        return value
    try:
        number = float(value)
    except ValueError:
        raise FieldError(f"properties.{name}", f"{value!r} is not a number") from None
    return int(number) if number.is_integer() and "." not in value else number


# -- CDNOW ------------------------------------------------------------------------------------
_CDNOW_DATES: dict[str, datetime] = {}


def cdnow_external_id(raw: str) -> str:
    if not raw.isdecimal():
        raise FieldError("customer_id", f"{raw!r} is not a customer number")
    return str(int(raw))


def cdnow_date(raw: str) -> datetime:
    value = _CDNOW_DATES.get(raw)
    if value is not None:
        return value
    if len(raw) != 8 or not raw.isdecimal():
        raise FieldError("date", f"{raw!r} is not a date (expected YYYYMMDD)")
    try:
        value = datetime(int(raw[:4]), int(raw[4:6]), int(raw[6:]), tzinfo=UTC)
    except ValueError:
        raise FieldError("date", f"{raw!r} is not a date (expected YYYYMMDD)") from None
    if len(_CDNOW_DATES) < 100_000:
        _CDNOW_DATES[raw] = value
    return value


def cdnow_event(line: int, raw: str, values: list[str]) -> ParsedEvent:
    if len(values) != 4:
        raise FieldError("row", f"expected 4 columns, found {len(values)}")
    customer, day, cds, dollars = values
    external_id = cdnow_external_id(customer)
    occurred_at = cdnow_date(day)
    if not cds.isdecimal():
        raise FieldError("number_of_cds", f"{cds!r} is not a whole number")
    try:
        revenue = float(dollars)
    except ValueError:
        raise FieldError("dollar_value", f"{dollars!r} is not a number") from None
    if not math.isfinite(revenue):
        raise FieldError("dollar_value", "must be a finite number")
    properties = {"quantity": int(cds), "revenue": revenue, "currency": "USD"}
    return ParsedEvent(line, raw, external_id, None, ORDER_COMPLETED, occurred_at,
                       derived_message_id("cdnow", line, raw), properties, None, revenue, "USD")


def cdnow_contact(values: list[str]) -> dict[str, Any]:
    """The traits of a CDNOW row's customer: only the external id is known."""
    if len(values) != 4:
        raise FieldError("row", f"expected 4 columns, found {len(values)}")
    return {"external_id": cdnow_external_id(values[0])}

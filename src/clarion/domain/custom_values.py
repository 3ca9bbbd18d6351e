"""Custom values (contact attributes, event properties): how they are stored as JSON, and how much of them.

Every entry point (the REST API, the Segment ``/v1`` API, the importers) goes through these checks, so a
value is stored the same way whichever way it came, and a refusal is a :class:`FieldError` naming the limit.

Numbers: ``/v1`` parses JSON with orjson, which reads an integer outside the 64-bit range (below -2**63 or
above 2**64 - 1) as the nearest double, as JavaScript and the Segment SDKs do. The other entry points store
such an integer the same way, so ``{"n": 10**30}`` is ``1e30`` however it arrived; a number beyond the range
of a double (about 1.8e308) is refused. (PostgreSQL's JSONB keeps the value and gives a whole number back as
an integer; SQLite gives the double back.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import FieldError

KB = 1024
MIN_INT, MAX_INT = -(2**63), 2**64 - 1  # what orjson reads and writes as an integer


@dataclass(frozen=True)
class CustomLimits:
    """At most ``max_keys`` names of 1..``max_key_chars`` characters, and ``max_bytes`` of JSON in all."""

    field: str  # "attributes" or "properties": the FieldError's field
    noun: str  # "attribute" or "property"
    max_keys: int
    max_key_chars: int
    max_bytes: int
    why: str  # where the size comes from, shown when it is passed


def check_names(values: Mapping[str, Any], limits: CustomLimits) -> None:
    """The count of names and each name's length; cheap, so it runs before anything else is looked at."""
    if len(values) > limits.max_keys:
        raise FieldError(limits.field, f"at most {limits.max_keys:,} {limits.noun} names are allowed, "
                                       f"not {len(values):,}")
    for key in values:
        if not isinstance(key, str) or not 1 <= len(key) <= limits.max_key_chars:
            raise FieldError(limits.field, f"{limits.noun} name {shown(key)} must be 1..{limits.max_key_chars} "
                                           "characters")


def to_json(values: Mapping[str, Any], limits: CustomLimits) -> tuple[dict[str, Any], bytes]:
    """(``values`` as stored, their JSON): names checked, huge integers made doubles, the size within bounds."""
    check_names(values, limits)
    try:
        text = orjson.dumps(values)
    except TypeError:  # an integer orjson cannot write (outside 64 bits), or a value that is no JSON at all
        values = {key: json_ready(value, f"{limits.field}.{key}") for key, value in values.items()}
        try:
            text = orjson.dumps(values)
        except TypeError as exc:
            raise FieldError(limits.field, f"not JSON: {exc}") from None
    if len(text) > limits.max_bytes:
        raise FieldError(limits.field, f"{len(text):,} bytes of JSON is over the {limits.max_bytes:,} allowed "
                                       f"({limits.why})")
    return dict(values), text


def json_ready(value: Any, path: str) -> Any:
    """``value`` with every integer outside orjson's range made the nearest double (see the module's notes)."""
    if isinstance(value, bool) or not isinstance(value, (int, Mapping, list, tuple)):
        return value
    if isinstance(value, int):
        if MIN_INT <= value <= MAX_INT:
            return value
        try:
            return float(value)
        except OverflowError:
            raise FieldError(path, "the number is too large to store (beyond ±1.8e308)") from None
    if isinstance(value, Mapping):
        return {key: json_ready(item, f"{path}.{key}") for key, item in value.items()}
    return [json_ready(item, f"{path}[{index}]") for index, item in enumerate(value)]


def shown(key: Any) -> str:
    """A name for a message: its repr, cut to 40 characters."""
    text = repr(key)
    return text if len(text) <= 40 else text[:37] + "..."

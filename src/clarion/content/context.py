"""What a template sees of one recipient: ``contact``, ``campaign``, ``links``, ``data`` and ``now``.

``data`` is the message's own payload, free-form: the order of an order confirmation sent through the
transactional API (``{{ data.order.id }}``); it is empty for broadcasts.

The contact is a read-only view of the profile (the ``contacts`` columns a message may use, with the
custom ``attributes`` and ``custom_dates``); nested objects are read-only too, so a template cannot
change data another part or another message will read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

# The profile fields a template may use (the contacts table less bookkeeping: timezone_source,
# merged_into, created_at, updated_at, and the coordinates, which no message needs).
CONTACT_FIELDS = (
    "id", "external_id", "email", "phone", "first_name", "last_name", "locale", "timezone", "country",
    "region", "city", "birthday", "anniversary", "attributes", "custom_dates",
)
CAMPAIGN_FIELDS = ("id", "name")
LINK_NAMES = ("unsubscribe", "preferences", "view_in_browser")
# Free-form maps: any key below them is allowed, since the schema does not list them.
OPEN_FIELDS = ("attributes", "custom_dates")
TOP_LEVEL_NAMES = ("contact", "campaign", "links", "data", "now")


_PLAIN = frozenset({str, int, float, bool, type(None), date, datetime, Decimal})


class ReadOnlyMapping(Mapping[str, Any]):
    """A mapping that knows its path (``contact.attributes``) so undefined names can be reported in full."""

    __slots__ = ("_data", "_path")

    def __init__(self, data: Mapping[str, Any], path: str) -> None:
        self._data = data
        self._path = path

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        if type(value) in _PLAIN:  # the common case, without building a path
            return value
        return _read_only(value, f"{self._path}.{key}")

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return repr(dict(self._data))

    def path_of(self, key: Any) -> str:
        return f"{self._path}.{key}"


def _read_only(value: Any, path: str) -> Any:
    if isinstance(value, Mapping) and not isinstance(value, ReadOnlyMapping):
        return ReadOnlyMapping(value, path)
    if isinstance(value, list):
        return tuple(_read_only(item, f"{path}[{i}]") for i, item in enumerate(value))
    return value


@dataclass(frozen=True)
class RenderContext:
    """Everything one message is rendered from. ``now`` is aware UTC (``None``: the time of rendering)."""

    contact: Mapping[str, Any]
    campaign: Mapping[str, Any] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)
    now: datetime | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def variables(self) -> dict[str, Any]:
        now = self.now or datetime.now(UTC)
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        return {
            "contact": contact_view(self.contact),
            "campaign": ReadOnlyMapping(self.campaign, "campaign"),
            "links": ReadOnlyMapping(self.links, "links"),
            "data": ReadOnlyMapping(self.data, "data"),
            "now": now.astimezone(UTC),
        }

    @property
    def locale(self) -> str | None:
        return self.contact.get("locale")

    @property
    def timezone(self) -> str | None:
        return self.contact.get("timezone")


def contact_view(profile: Mapping[str, Any]) -> ReadOnlyMapping:
    """The template's ``contact`` from a profile (a ``contacts`` row or a dict with the same keys).

    Empty fields are left out rather than set to ``None``: ``{{ contact.first_name | default("friend") }}``
    then works, and the render reports the field as undefined instead of printing "None".
    """
    fields = {name: profile[name] for name in CONTACT_FIELDS
              if name not in OPEN_FIELDS and profile.get(name) is not None}
    fields["attributes"] = dict(profile.get("attributes") or {})
    fields["custom_dates"] = {key: _as_date(value) for key, value in (profile.get("custom_dates") or {}).items()}
    return ReadOnlyMapping(fields, "contact")


def _as_date(value: Any) -> Any:
    """Custom dates are stored as ISO strings; templates compare and format them as dates."""
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return value
    return value

"""A campaign's figures broken down by channel, template, locale, segment, local hour and weekday, RFM segment.

All the breakdowns asked for come from one grouped statement: the campaign's sent messages, each outer-joined
to its engagement (one row per engaged message, see figures.per_delivery) and, as the breakdowns need, to its
contact (locale, time zone) and its scores (RFM segment), grouped by every key asked for at once; Python then
sums the groups per breakdown. One pass over the messages, whatever the number of breakdowns.

The recipient's local hour and weekday at send time need each time zone's offset at that moment, which
SQLite cannot compute. The statement groups by (time zone, UTC minute of ``sent_at``) instead and Python
turns each group into a local time. Every UTC offset in use since 1972 is a whole number of minutes, so all
of a group's messages share one local hour and day. A broadcast sends over minutes to hours, and a local-time
send over a day, so there are a few thousand groups per time zone at most.

Channel, template and segment are one group each: a campaign sends one template on one channel to one
segment, so those rows are the campaign's own figures, read without a pass over its messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from ...domain.campaigns import WEEKDAYS
from ...store.schema import contacts
from ...store.schema_delivery import deliveries
from ...store.schema_scores import contact_scores
from ...store.types import UtcDateTime
from .figures import per_delivery, ratio

DIMENSIONS = ("channel", "template", "locale", "segment", "hour", "weekday", "rfm")


class utc_minute(FunctionElement):  # noqa: N801 - SQL function style
    """A ``UtcDateTime`` truncated to its minute, on both stores."""

    type = UtcDateTime()
    inherit_cache = True


@compiles(utc_minute, "sqlite")
def _utc_minute_sqlite(element, compiler, **kw) -> str:
    (value,) = (compiler.process(argument, **kw) for argument in element.clauses)
    return f"(substr({value}, 1, 16) || ':00')"  # stored as naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'


@compiles(utc_minute, "postgresql")
def _utc_minute_postgresql(element, compiler, **kw) -> str:
    (value,) = (compiler.process(argument, **kw) for argument in element.clauses)
    # In the session's time zone, which changes nothing: every offset is a whole number of minutes.
    return f"date_trunc('minute', {value})"


@dataclass
class Row:
    """One key's figures; human engagement, machine opens and clicks beside it."""

    sent: int = 0
    opens: int = 0
    clicks: int = 0
    converting: int = 0  # messages with a conversion
    conversions: int = 0
    revenue: float = 0.0
    machine_opens: int = 0
    machine_clicks: int = 0

    def add(self, other: Row) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self, key: Any, machine: bool) -> dict[str, Any]:
        result = {"key": key, "sent": self.sent, "opens": self.opens, "clicks": self.clicks,
                  "conversions": self.conversions, "converting_messages": self.converting,
                  "revenue": round(self.revenue, 2),
                  "open_rate": ratio(self.opens, self.sent), "ctr": ratio(self.clicks, self.sent),
                  "ctor": ratio(self.clicks, self.opens), "conversion_rate": ratio(self.converting, self.sent),
                  "revenue_per_message": ratio(self.revenue, self.sent)}
        if machine:
            result.update(machine_opens=self.machine_opens, machine_clicks=self.machine_clicks)
        return result


# The grouping columns each breakdown needs, by the part of the key they give.
_PARTS = {"locale": ("locale",), "rfm": ("rfm",), "hour": ("zone", "minute"), "weekday": ("zone", "minute")}
# One group per campaign: its channel, its template, its segment (journeys will have steps on several
# channels and templates; their breakdowns will read the ledger then).
CONSTANT = ("channel", "template", "segment")


def _part_columns(parts: list[str], default_zone: str) -> list:
    columns = {"locale": contacts.c.locale, "rfm": contact_scores.c.rfm_segment,
               "zone": func.coalesce(contacts.c.timezone, literal(default_zone)),
               "minute": utc_minute(deliveries.c.sent_at)}
    return [columns[part] for part in parts]


def _joined(base, parts: list[str]):
    if {"locale", "zone"} & set(parts):
        base = base.outerjoin(contacts, contacts.c.id == deliveries.c.contact_id)
    if "rfm" in parts:
        base = base.outerjoin(contact_scores, contact_scores.c.contact_id == deliveries.c.contact_id)
    return base


def _grouped(conn: Connection, campaign_id: int, parts: list[str], default_zone: str,
             machine: bool) -> dict[tuple, Row]:
    """Figures per combination of ``parts``, in one pass over the campaign's sent messages, each outer-joined
    to its engagement (one row per engaged message) and, as the parts need, its contact and scores."""
    keys = _part_columns(parts, default_zone)
    engaged = per_delivery(campaign_id, machine=machine)
    sums = [func.count(), func.coalesce(func.sum(engaged.c.opened), 0), func.coalesce(func.sum(engaged.c.clicked), 0),
            func.coalesce(func.sum(engaged.c.converted), 0), func.coalesce(func.sum(engaged.c.conversions), 0),
            func.coalesce(func.sum(engaged.c.revenue), 0.0)]
    if machine:
        sums += [func.coalesce(func.sum(engaged.c.machine_opened), 0),
                 func.coalesce(func.sum(engaged.c.machine_clicked), 0)]
    source = _joined(deliveries.outerjoin(engaged, engaged.c.delivery_id == deliveries.c.id), parts)
    query = (select(*keys, *sums).select_from(source)
             .where(deliveries.c.campaign_id == campaign_id, deliveries.c.status == "sent").group_by(*keys))
    width, rows = len(keys), {}
    for values in conn.execute(query):
        sent, opens, clicks, converting, conversions, revenue, *robots = values[width:]
        rows[tuple(values[:width])] = Row(int(sent), int(opens), int(clicks), int(converting), int(conversions),
                                          float(revenue), *(int(count) for count in robots))
    return rows


class _LocalTime:
    """The local time of (zone, UTC minute) groups, each zone and group computed once."""

    def __init__(self, default_zone: str) -> None:
        self.default_zone = default_zone
        self.zones: dict[str, ZoneInfo] = {}
        self.times: dict[tuple[str, datetime], datetime] = {}

    def __call__(self, zone: str, minute: datetime) -> datetime:
        found = self.times.get((zone, minute))
        if found is None:
            found = self.times[(zone, minute)] = minute.astimezone(self._zone(zone))
        return found

    def _zone(self, name: str) -> ZoneInfo:
        if name not in self.zones:
            try:
                self.zones[name] = ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):  # a name no longer in the tz database: the default's time
                self.zones[name] = ZoneInfo(self.default_zone)
        return self.zones[name]


def _fold(rows: dict[tuple, Row], parts: list[str], dimension: str, local: _LocalTime) -> dict[Any, Row]:
    """The combined groups summed per value of one dimension."""
    folded: dict[Any, Row] = {}
    clock = dimension in ("hour", "weekday")
    if clock:
        zone, minute = parts.index("zone"), parts.index("minute")
    for key, row in rows.items():
        if not clock:
            value = key[parts.index(dimension)]
        elif key[minute] is None:
            value = None
        else:
            moment = local(key[zone], key[minute])
            value = moment.hour if dimension == "hour" else moment.weekday()
        folded.setdefault(value, Row()).add(row)
    return folded


def by_dimensions(conn: Connection, campaign: Any, dimensions: Iterable[str], *, default_zone: str, totals: Row,
                  names: dict[str, str | None], machine: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Rows per dimension (of DIMENSIONS): by value for locale and RFM (most messages first), in clock order for
    hour and weekday, one row for channel, template and segment (``names``: the campaign's), whose figures are
    the campaign's ``totals``."""
    wanted = list(dict.fromkeys(dimensions))
    parts = list(dict.fromkeys(part for name in wanted for part in _PARTS.get(name, ())))
    rows = _grouped(conn, campaign.id, parts, default_zone, machine) if parts else {}
    local, result = _LocalTime(default_zone), {}
    for name in wanted:
        if name in CONSTANT:
            result[name] = [totals.as_dict(names[name], machine)]
            continue
        folded = _fold(rows, parts, name, local)
        if name in ("hour", "weekday"):
            result[name] = [folded[value].as_dict(WEEKDAYS[value] if name == "weekday" and value is not None
                                                  else value, machine) for value in sorted(folded, key=_none_last)]
        else:
            result[name] = [folded[value].as_dict(value, machine)
                            for value in sorted(folded, key=lambda v: (-folded[v].sent, str(v)))]
    return result


def _none_last(value: int | None) -> tuple[bool, int]:
    return (value is None, value or 0)


def totals_row(summary: dict[str, Any], machine_figures: Iterable[int]) -> Row:
    opens, clicks = summary["human"]["opens"]["unique"], summary["human"]["clicks"]["unique"]
    machine_opens, machine_clicks = machine_figures
    return Row(summary["sent"], opens, clicks, summary["converting_messages"], summary["conversions"],
               summary["revenue"], machine_opens, machine_clicks)

"""Offline exports: a segment's contacts as CSV, for direct mail, sales visits and call lists.

    with app.store.read() as conn:
        result = export_csv(conn, out, segment="vip", template="letter", settings=app.settings, channel="voice")

The segment's rule is evaluated now (not its last materialised membership), its contacts are read in
chunks (merged and erased profiles are skipped), and, when a ``channel`` is given, the same checks a
campaign on that channel makes: the address exists, is not on the suppression list, and the contact's
consent allows it (``segments.reachable.consent_allows``, for the channel and an optional topic). A call
list is ``channel="voice"``; a postal mailing has no consent channel and takes every member.

Each row is the contact's own columns, then the template's ``export`` columns, each a Jinja template
rendered for that contact (its locale variant, its time zone). A contact whose columns fail to render is
listed with the reason and left out; the file goes on. Every cell is made safe for spreadsheets (OWASP
"CSV Injection", https://owasp.org/www-community/attacks/CSV_Injection): a cell that starts with
``= + - @``, a tab or a carriage return (also after leading white space) is prefixed with ``'``, so Excel
or LibreOffice show it as text instead of running it as a formula. Plain numbers (``+14155550101``,
``-12.5``) are left as they are: they cannot carry a formula, and a call list needs its numbers intact.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import Connection, select

from ..config import Settings
from ..content.context import RenderContext
from ..content.errors import RenderError
from ..content.render import RenderSettings, Template, render
from ..content.template_store import template_from_document
from ..delivery.facts import consenting, load_contacts, suppressions_of
from ..domain.errors import FieldError, NotFound
from ..segments.compiler import compile_rule
from ..segments.reachable import PHONE_CHANNELS
from ..segments.rule_json import rule_from_json
from ..store.schema_delivery import templates
from ..store.schema_scores import segments
from .clock import utcnow
from .segments import SegmentService

# The contact's own columns, first in every file; country, region and city are the profile's address.
CONTACT_COLUMNS = ("id", "external_id", "first_name", "last_name", "email", "phone", "locale", "timezone",
                   "country", "region", "city")
CHANNELS = ("email", *PHONE_CHANNELS)  # the channels an export can be filtered for (an address to check)
CHUNK = 500  # contacts read, checked and rendered per query
MAX_ERRORS_LISTED = 1000  # render errors kept in the result (all of them are counted)
_DANGEROUS_START = frozenset("=+-@\t\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
Progress = Callable[[int, int], None]


@dataclass
class ExportResult:
    segment: str
    template: str
    channel: str | None
    columns: list[str]
    members: int = 0  # contacts in the segment when it was evaluated
    written: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count: erased, merged, no_address ...
    errors: list[dict[str, Any]] = field(default_factory=list)  # {"contact_id", "part", "reason"}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def safe_cell(value: Any) -> str:
    """The cell's text, prefixed with ``'`` when a spreadsheet would read it as a formula."""
    text = "" if value is None else str(value)
    if not text or _PLAIN_NUMBER.fullmatch(text):
        return text
    if text[0] in _DANGEROUS_START or text.lstrip()[:1] in _DANGEROUS_START:
        return "'" + text
    return text


def export_csv(conn: Connection, out: TextIO, *, segment: str, template: str, settings: Settings,
               channel: str | None = None, topic: str | None = None, now: datetime | None = None,
               progress: Progress | None = None) -> ExportResult:
    """Writes the header and one row per exportable member to ``out`` (opened with ``newline=""``)."""
    if channel is not None and channel not in CHANNELS:
        raise FieldError("channel", f"one of {', '.join(CHANNELS)}, or none for postal mail")
    if topic is not None and channel is None:
        raise FieldError("topic", "a topic needs the channel whose consent it refines")
    now = now or utcnow()
    loaded = _template(conn, template)
    extra = export_columns(loaded)
    result = ExportResult(segment, template, channel, [*CONTACT_COLUMNS, *extra])
    ids = _members(conn, settings, segment, now)
    result.members = len(ids)
    writer = csv.writer(out)
    writer.writerow([safe_cell(name) for name in result.columns])
    render_settings = RenderSettings(default_timezone=settings.default_timezone)
    view = {"id": 0, "name": f"export:{segment}"}
    skipped: dict[str, int] = defaultdict(int)
    done = 0
    for chunk in _chunks(ids, CHUNK):
        profiles = load_contacts(conn, chunk)
        refused = _refused(conn, channel, topic, profiles) if channel else {}
        for contact_id in chunk:
            profile = profiles.get(contact_id)
            reason = _skip_reason(profile, refused.get(contact_id))
            if reason is None:
                row = _row(loaded, profile, view, now, render_settings, extra, result)
                if row is not None:
                    writer.writerow(row)
                    result.written += 1
                    continue
                reason = "render_error"
            skipped[reason] += 1
        done += len(chunk)
        if progress is not None:
            progress(done, len(ids))
    result.skipped = dict(skipped)
    return result


def export_columns(template: Template) -> list[str]:
    """The template's export columns, default content first, then any a variant adds, in order."""
    names: dict[str, None] = {}
    for _, content in template.contents():
        if content.export is not None:
            names.update(dict.fromkeys(content.export.columns))
    if not names:
        raise FieldError("template", "the template has no export part (columns to write)")
    clash = [name for name in names if name in CONTACT_COLUMNS]
    if clash:
        raise FieldError("template", f"export column {clash[0]!r} repeats a contact column; rename it")
    return list(names)


def _row(template: Template, profile: dict[str, Any], view: dict[str, Any], now: datetime,
         render_settings: RenderSettings, extra: Sequence[str], result: ExportResult) -> list[str] | None:
    context = RenderContext(contact=profile, campaign=view, now=now)
    try:
        rendered = render(template, context, render_settings, channels=("export",)).export
    except RenderError as exc:
        if len(result.errors) < MAX_ERRORS_LISTED:
            result.errors.append({"contact_id": profile["id"], "part": exc.part, "reason": exc.reason})
        return None
    columns = rendered.columns if rendered is not None else {}
    return [safe_cell(profile.get(name)) for name in CONTACT_COLUMNS] + [safe_cell(columns.get(n)) for n in extra]


def _skip_reason(profile: dict[str, Any] | None, refused: str | None) -> str | None:
    if profile is None:
        return "erased"  # deleted since the segment was evaluated
    if profile["merged_into"] is not None:
        return "merged"
    return refused


def _template(conn: Connection, name: str) -> Template:
    document = conn.execute(select(templates.c.document).where(templates.c.name == name)).scalar()
    if document is None:
        raise NotFound("template", name)
    return template_from_document(document)


def _members(conn: Connection, settings: Settings, segment: str, now: datetime) -> list[int]:
    """The segment's rule evaluated now (merged profiles are never members), in id order."""
    rule = conn.execute(select(segments.c.rule).where(segments.c.name == segment)).scalar()
    if rule is None:
        raise NotFound("segment", segment)
    service = SegmentService(settings, clock=lambda: now)
    query = compile_rule(rule_from_json(rule), service.context(conn)).subquery()
    return list(conn.execute(select(query.c[0]).order_by(query.c[0])).scalars())


def _refused(conn: Connection, channel: str, topic: str | None,
             profiles: dict[int, dict[str, Any]]) -> dict[int, str]:
    """Why each contact of the chunk cannot be exported for ``channel``: no_address, suppressed, no_consent."""
    kind = "email" if channel == "email" else "phone"
    addresses = {cid: profile.get(kind) for cid, profile in profiles.items()}
    suppressed = suppressions_of(conn, channel, addresses)
    allowed = consenting(conn, channel, topic, list(profiles))
    refused: dict[int, str] = {}
    for cid, address in addresses.items():
        if not address:
            refused[cid] = "no_address"
        elif address in suppressed:
            refused[cid] = "suppressed"
        elif cid not in allowed:
            refused[cid] = "no_consent"
    return refused


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]

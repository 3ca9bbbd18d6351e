"""``clarion segments create|update|delete|list|show|count|preview|explain|refresh|members|changes``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from ..domain.errors import FieldError
from .output import JSON_OPTION, app_of, console, emit, key_values, table
from .params import ID_RANGE, MINUTES_RANGE, OFFSET_RANGE

if TYPE_CHECKING:
    from ..services.segments import SegmentService

segments_app = typer.Typer(no_args_is_help=True, help="Segments: rules over contacts, materialised and explained.")

NAME = typer.Argument(..., help="The segment's name.")
RULE = typer.Option(None, "--rule", help='The rule in the text form, e.g. \'country = "US" and orders.count >= 2\'.')
RULE_FILE = typer.Option(None, "--rule-file", help="A file holding the rule: text form, or JSON (.json).")


def _service(ctx: typer.Context) -> SegmentService:
    from ..services.segments import SegmentService

    return SegmentService(app_of(ctx).settings)


def _rule_input(rule: str | None, rule_file: Path | None) -> str | dict | None:
    if rule is not None and rule_file is not None:
        raise FieldError("--rule", "give --rule or --rule-file, not both")
    if rule_file is None:
        return rule
    text = rule_file.read_text(encoding="utf-8")
    if rule_file.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise FieldError("--rule-file", f"{rule_file.name} is not JSON: {exc}") from None
    return text


def _warn(data: dict) -> None:
    """The rule's warnings (events never seen, topics that do not exist) as ``warning: ...`` lines on stderr,
    seen even when stdout is --json for a script (which finds them under "warnings")."""
    from .output import err_console

    for warning in data.get("warnings", ()):
        err_console.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)


def _show(data: dict) -> None:
    console.print(key_values(f"Segment {data['name']}", {
        "rule": data["text"], "members": f"{data['member_count']:,}", "refreshed": data["refreshed_at"] or "never",
        "refresh every": f"{data['refresh_minutes']} min" if data["refresh_minutes"] else "on demand",
        "description": data["description"] or ""}))


@segments_app.command("create")
def create(ctx: typer.Context, name: str = NAME, rule: str | None = RULE, rule_file: Path | None = RULE_FILE,
           description: str | None = typer.Option(None, "--description"),
           refresh_minutes: int | None = typer.Option(None, "--refresh-minutes", min=1, **MINUTES_RANGE,
                                                      help="Refresh fully on this schedule (segments refresh --due)."),
           as_json: bool = JSON_OPTION) -> None:
    """Create a segment (the rule is checked: fields, operators, referenced segments, cycles)."""
    given = _rule_input(rule, rule_file)
    if given is None:
        raise FieldError("--rule", "a rule is required (--rule or --rule-file)")
    with app_of(ctx).store.write() as conn:
        data = _service(ctx).create(conn, name, given, description=description, refresh_minutes=refresh_minutes)
    _warn(data)
    emit(data, as_json, lambda: _show(data))


@segments_app.command("update")
def update(ctx: typer.Context, name: str = NAME, rule: str | None = RULE, rule_file: Path | None = RULE_FILE,
           description: str | None = typer.Option(None, "--description"),
           refresh_minutes: int | None = typer.Option(None, "--refresh-minutes", min=0, **MINUTES_RANGE,
                                                      help="0: on demand only."),
           as_json: bool = JSON_OPTION) -> None:
    """Change a segment's rule, description or schedule."""
    with app_of(ctx).store.write() as conn:
        data = _service(ctx).update(conn, name, rule=_rule_input(rule, rule_file), description=description,
                                    refresh_minutes=refresh_minutes)
    _warn(data)
    emit(data, as_json, lambda: _show(data))


@segments_app.command("delete")
def delete(ctx: typer.Context, name: str = NAME, as_json: bool = JSON_OPTION) -> None:
    """Delete a segment (refused while another segment's rule uses it)."""
    with app_of(ctx).store.write() as conn:
        _service(ctx).delete(conn, name)
    emit({"deleted": name}, as_json, lambda: console.print(f"Deleted segment {name}."))


@segments_app.command("list")
def list_(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Every segment with its rule and materialised size."""
    with app_of(ctx).store.read() as conn:
        rows = _service(ctx).list(conn)
    emit(rows, as_json, lambda: console.print(table(
        "Segments", ("name", "members", "refreshed", "rule"),
        ([r["name"], f"{r['member_count']:,}", r["refreshed_at"] or "never", r["text"]] for r in rows))))


@segments_app.command("show")
def show(ctx: typer.Context, name: str = NAME, as_json: bool = JSON_OPTION) -> None:
    """A segment's rule, schedule and size (with --json, the rule's JSON form too)."""
    with app_of(ctx).store.read() as conn:
        data = _service(ctx).get(conn, name)
    emit(data, as_json, lambda: _show(data))


@segments_app.command("count")
def count(ctx: typer.Context, name: str = NAME, as_json: bool = JSON_OPTION) -> None:
    """How many contacts match the rule now (live, not the materialised membership)."""
    with app_of(ctx).store.read() as conn:
        data = _service(ctx).count(conn, name)
    _warn(data)
    emit(data, as_json, lambda: console.print(f"{data['count']:,}"))


@segments_app.command("preview")
def preview(ctx: typer.Context, rule: str | None = RULE, rule_file: Path | None = RULE_FILE,
            sample: int = typer.Option(10, "--sample", min=0, max=1000), as_json: bool = JSON_OPTION) -> None:
    """Count and sample the contacts an unsaved rule matches."""
    given = _rule_input(rule, rule_file)
    if given is None:
        raise FieldError("--rule", "a rule is required (--rule or --rule-file)")
    with app_of(ctx).store.read() as conn:
        data = _service(ctx).preview(conn, given, sample=sample)
    _warn(data)
    emit(data, as_json, lambda: (console.print(f"{data['count']:,} contacts match"), console.print(table(
        "Sample", ("id", "external id", "email", "name", "country"),
        ([c["id"], c["external_id"], c["email"], " ".join(filter(None, (c["first_name"], c["last_name"]))),
          c["country"]] for c in data["sample"])))))


@segments_app.command("explain")
def explain(ctx: typer.Context, name: str = NAME,
            contact_id: int = typer.Argument(..., **ID_RANGE, help="A contact id."),
            as_json: bool = JSON_OPTION) -> None:
    """For one contact: which conditions hold, which do not, and the values that decided."""
    with app_of(ctx).store.read() as conn:
        data = _service(ctx).explain(conn, name, contact_id)
    emit(data, as_json, lambda: _render_explanation(data))


def _render_explanation(data: dict) -> None:
    console.print(f"Contact {data['contact_id']} {'IS' if data['holds'] else 'is NOT'} in {data['segment']}",
                  highlight=False)

    def walk(node: dict, depth: int) -> None:
        mark = "[green]✔[/green]" if node["holds"] else "[red]✘[/red]"
        values = node["values"]
        detail = f"  [dim]{escape(json.dumps(values, default=str))}[/dim]" if values else ""
        console.print(f"{'  ' * depth}{mark} {escape(node['rule'])}{detail}", highlight=False)
        for child in node["children"]:
            walk(child, depth + 1)

    walk(data, 0)


@segments_app.command("refresh")
def refresh(ctx: typer.Context, name: str | None = typer.Argument(None, help="The segment; omit with --due/--all."),
            incremental: bool = typer.Option(False, "--incremental",
                                             help="Only contacts whose data changed since the last refresh."),
            due: bool = typer.Option(False, "--due", help="Every segment whose scheduled refresh is due."),
            every: bool = typer.Option(False, "--all", help="Every segment."),
            as_json: bool = JSON_OPTION) -> None:
    """Materialise membership and record who entered and who left."""
    service = _service(ctx)
    store = app_of(ctx).store
    with store.read() as conn:
        names = service.due(conn) if due else [s["name"] for s in service.list(conn)] if every else []
    if name:
        names.append(name)
    if not names and not (due or every):
        raise FieldError("name", "name a segment, or use --due or --all")
    results = []
    for each in names:
        with store.write() as conn:
            results.append(service.refresh(conn, each, incremental=incremental).as_dict())
    emit(results, as_json, lambda: console.print(table(
        "Refreshed", ("segment", "mode", "members", "entered", "left", "examined", "seconds"),
        ([r["segment"], r["mode"], f"{r['members']:,}", r["entered"], r["left"], f"{r['examined']:,}", r["seconds"]]
         for r in results))))


@segments_app.command("members")
def members(ctx: typer.Context, name: str = NAME, limit: int = typer.Option(100, "--limit", min=1, max=100_000),
            offset: int = typer.Option(0, "--offset", **OFFSET_RANGE), as_json: bool = JSON_OPTION) -> None:
    """The materialised members' contact ids."""
    with app_of(ctx).store.read() as conn:
        ids = _service(ctx).members(conn, name, limit=limit, offset=offset)
    emit(ids, as_json, lambda: console.print(" ".join(map(str, ids)) or "(none)"))


@segments_app.command("changes")
def changes(ctx: typer.Context, name: str = NAME, after: int = typer.Option(0, "--after", **OFFSET_RANGE,
                                                                             help="Only changes past this id."),
            limit: int = typer.Option(100, "--limit", min=1, max=100_000), as_json: bool = JSON_OPTION) -> None:
    """Who entered and who left, oldest first."""
    with app_of(ctx).store.read() as conn:
        rows = _service(ctx).changes(conn, name, after_id=after, limit=limit)
    emit(rows, as_json, lambda: console.print(table(
        f"Changes of {name}", ("id", "contact", "change", "at"),
        ([r["id"], r["contact_id"], r["change"], r["at"]] for r in rows))))

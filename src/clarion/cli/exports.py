"""``clarion export``: a segment's contacts as CSV for direct mail, sales visits and call lists."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from .output import JSON_OPTION, app_of, console, emit, err_console, key_values, table

if TYPE_CHECKING:
    from ..services.export import ExportResult

ERRORS_SHOWN = 20  # render errors printed; --json lists up to services.export.MAX_ERRORS_LISTED


def export(ctx: typer.Context,
           segment: str = typer.Option(..., "--segment", help="The segment whose contacts are exported."),
           template: str = typer.Option(..., "--template", help="A template with an export part (its columns)."),
           out: Path = typer.Option(..., "--out", help="The CSV file to write (replaced when done)."),
           channel: str | None = typer.Option(None, "--channel",
                                              help="Keep only contacts reachable on it: email, sms, whatsapp or "
                                                   "voice (a call list). None: every member (postal mail)."),
           topic: str | None = typer.Option(None, "--topic", help="With --channel: consent for this topic."),
           excel: bool = typer.Option(False, "--excel", help="Start the file with a UTF-8 BOM, so Excel reads "
                                                             "accents and non-Latin names right."),
           as_json: bool = JSON_OPTION) -> None:
    """Write a segment's contacts and the template's columns to a CSV file (formula-safe cells)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..services.export import export_csv

    if not out.name or out.is_dir():
        from ..domain.errors import FieldError

        raise FieldError("--out", f"{str(out)!r} is a directory; name the CSV file to write, e.g. letters.csv")
    clarion = app_of(ctx)
    partial = out.with_name(out.name + ".partial")  # a failed export never leaves a half file under the name
    try:
        with partial.open("w", encoding="utf-8-sig" if excel else "utf-8", newline="") as handle, \
                clarion.store.read() as conn:
            if as_json:
                result = export_csv(conn, handle, segment=segment, template=template, settings=clarion.settings,
                                    channel=channel, topic=topic)
            else:
                with Progress(TextColumn(f"exporting {segment}"), BarColumn(), MofNCompleteColumn(),
                              TimeRemainingColumn(), console=err_console, transient=True) as bar:
                    task = bar.add_task(segment, total=None)
                    result = export_csv(conn, handle, segment=segment, template=template, settings=clarion.settings,
                                        channel=channel, topic=topic,
                                        progress=lambda done, total: bar.update(task, completed=done, total=total))
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    emit({**result.as_dict(), "file": str(out)}, as_json, lambda: _render(result, out))


def _render(result: ExportResult, out: Path) -> None:
    console.print(key_values(f"Exported {result.segment} with {result.template} to {out}", {
        "members": f"{result.members:,}", "written": f"{result.written:,}",
        **{f"skipped: {reason}": f"{count:,}" for reason, count in sorted(result.skipped.items())},
        "channel": result.channel or "none (every member)", "columns": ", ".join(result.columns)}))
    if result.errors:
        console.print(table(f"Render errors (first {min(len(result.errors), ERRORS_SHOWN)})",
                            ("contact", "part", "reason"),
                            ((e["contact_id"], e["part"], e["reason"]) for e in result.errors[:ERRORS_SHOWN])))

"""``import contacts FILE`` and ``import events FILE``, with a progress bar over the bytes read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from .output import JSON_OPTION, app_of, console, emit, err_console, key_values
from .params import BATCH_RANGE

if TYPE_CHECKING:
    from ..services.imports.importer import ImportOptions, ImportResult

import_app = typer.Typer(no_args_is_help=True, help="Bulk import from CSV, JSON Lines or the CDNOW files.")

FILE = typer.Argument(..., help="The file to import.")
FORMAT = typer.Option(None, "--format", help="csv, jsonl or cdnow (default: from the extension).")
MAP = typer.Option([], "--map", help="target=source, e.g. --map email=E-mail or --map attributes.tier=Tier "
                                    "(repeatable; docs/ingestion.md lists the targets).")
SET = typer.Option([], "--set", help="target=value for every row without its own, e.g. --set consent.email=opted_in "
                                    "(repeatable).")
MAPPING = typer.Option(None, "--mapping", help="A built-in mapping: cdnow.")
KEEP = typer.Option(False, "--keep-unknown", help="Keep unknown columns (attributes / event properties).")
REJECTS = typer.Option(None, "--reject-file", help="Where bad rows go (default ./<file>.<kind>.rejects.csv).")
DELIMITER = typer.Option(None, "--delimiter", help="CSV delimiter (default ','; 'whitespace' splits on blanks).")
BATCH = typer.Option(None, "--batch-size", **BATCH_RANGE, help="Rows per transaction (default: settings).")
INDEXES = typer.Option(None, "--rebuild-indexes/--keep-indexes",
                       help="Drop the secondary event indexes and build them at the end (default: when the "
                            "file holds at least 500,000 rows and as many as are stored).")


@import_app.command("contacts")
def import_contacts(ctx: typer.Context, file: Path = FILE,
                    fmt: str | None = FORMAT, maps: list[str] = MAP, mapping: str | None = MAPPING,
                    keep_unknown: bool = KEEP, reject_file: Path | None = REJECTS,
                    delimiter: str | None = DELIMITER, batch_size: int | None = BATCH, constants: list[str] = SET,
                    as_json: bool = JSON_OPTION) -> None:
    """Create or update contacts (found by external id, email or phone), with their consent columns."""
    from ..services.imports.importer import ImportOptions
    from ..services.imports.mappings import parse_map_options, parse_set_options

    options = ImportOptions(fmt, mapping, parse_map_options(maps), keep_unknown, reject_file, delimiter, batch_size,
                            constants=parse_set_options(constants))
    _run(ctx, "contacts", file, options, as_json)


@import_app.command("events")
def import_events(ctx: typer.Context, file: Path = FILE,
                  fmt: str | None = FORMAT, maps: list[str] = MAP, mapping: str | None = MAPPING,
                  keep_unknown: bool = KEEP, reject_file: Path | None = REJECTS,
                  delimiter: str | None = DELIMITER, batch_size: int | None = BATCH,
                  rebuild_indexes: bool | None = INDEXES, as_json: bool = JSON_OPTION) -> None:
    """Store events (idempotent by message id); unknown senders become contacts."""
    from ..services.imports.importer import ImportOptions
    from ..services.imports.mappings import parse_map_options

    options = ImportOptions(fmt, mapping, parse_map_options(maps), keep_unknown, reject_file, delimiter, batch_size,
                            rebuild_indexes)
    _run(ctx, "events", file, options, as_json)


def _run(ctx: typer.Context, kind: str, file: Path, options: ImportOptions, as_json: bool) -> None:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from ..services.imports.importer import Importer

    clarion = app_of(ctx)
    importer = Importer(clarion.settings, clarion.store, clarion.contacts)
    run: Callable[..., ImportResult] = importer.import_contacts if kind == "contacts" else importer.import_events
    if as_json:
        result = run(file, options)
    else:
        with Progress(TextColumn(f"importing {kind}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                      console=err_console, transient=True) as bar:
            task = bar.add_task(kind, total=file.stat().st_size if file.is_file() else None)
            result = run(file, options, lambda done, total: bar.update(task, completed=done, total=total))
    emit(result.as_dict(), as_json, lambda: _render(result))


def _render(result: ImportResult) -> None:
    if result.unknown_columns:
        err_console.print(f"warning: ignored unknown columns (use --keep-unknown to keep them): "
                          f"{', '.join(result.unknown_columns)}", markup=False, highlight=False)
    console.print(key_values(f"Imported {result.kind} from {result.file}", {
        "rows read": f"{result.rows_read:,}", "imported": f"{result.imported:,}",
        "unchanged / duplicates": f"{result.unchanged:,}", "rejected": f"{result.rejected:,}",
        "contacts created": f"{result.contacts_created:,}",
        **({"consents recorded": f"{result.consents_recorded:,}"} if result.kind == "contacts" else {}),
        **({"suppressions lifted": f"{result.suppressions_lifted:,}"} if result.suppressions_lifted else {}),
        "reject file": result.reject_file or "-",
        **({"indexes rebuilt": ", ".join(result.indexes_rebuilt)} if result.indexes_rebuilt else {}),
        "time": f"{result.seconds:.1f} s ({result.rows_per_second:,.0f} rows/s)"}))
    if result.rejected:
        err_console.print(f"{result.rejected:,} rows rejected; see {result.reject_file}", markup=False,
                          highlight=False)

"""``clarion events export|push|stream-status|dead-letters``: the engagement stream for a warehouse.

``events`` is merged into the existing ``events`` group (cli/contacts.py, ``events list``) by cli/main.py.
The format of each item is docs/webhooks-out.md's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from .output import JSON_OPTION, app_of, console, emit, err_console, table
from .params import ID_RANGE

events = typer.Typer(no_args_is_help=True, help="Events.")
dead_letters_app = typer.Typer(no_args_is_help=True, help="Batches of the events webhook that were never taken.")
events.add_typer(dead_letters_app, name="dead-letters")


@events.command("export")
def export(
    ctx: typer.Context,
    since: str = typer.Option(..., "--since", help="ISO 8601 date or time: engagements from then on."),
    until: str | None = typer.Option(None, "--until", help="ISO 8601: engagements before then."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl: one JSON object per line (the only format)."),
    out: Path | None = typer.Option(None, "--out", help="Write to this file instead of standard output."),
    machine: bool = typer.Option(True, "--machine/--human-only", help="Include machine opens and clicks."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Engagements as JSON Lines (the events webhook's items), read in chunks: any size, little memory."""
    import orjson

    from ..domain.errors import FieldError
    from ..domain.events import parse_timestamp
    from ..services.timeline import export_items

    if fmt != "jsonl":
        raise FieldError("--format", f"jsonl is the only export format, not {fmt!r}")
    start, end = parse_timestamp(since, "--since"), parse_timestamp(until, "--until") if until else None
    if end is not None and end <= start:
        raise FieldError("--until", "must be after --since")
    items = export_items(app_of(ctx).store, since=start, until=end, human_only=not machine)
    target = out.open("w", encoding="utf-8", newline="\n") if out is not None else sys.stdout
    written = 0
    try:
        for item in items:
            target.write(orjson.dumps(item).decode() + "\n")
            written += 1
    finally:
        if out is not None:
            target.close()
    summary = {"exported": written, "out": str(out) if out is not None else None}
    if out is not None:
        emit(summary, as_json, lambda: console.print(f"Exported {written:,} engagements to {out}."))
    else:  # standard output carries the data: the count goes to standard error
        err_console.print(f"Exported {written:,} engagements.")


@events.command("push")
def push(
    ctx: typer.Context,
    until_idle: bool = typer.Option(False, "--until-idle", help="Push batches until none is left, waiting "
                                    "for retries; otherwise one batch."),
    skip_history: bool = typer.Option(False, "--skip-history", help="Start the stream at the newest engagement "
                                      "without sending the older ones (export those instead)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Send the engagement stream to CLARION_EVENTS_WEBHOOK_URL by hand (the worker does it on its own)."""
    import asyncio

    clarion = app_of(ctx)
    if skip_history:
        from ..services import currents
        from ..services.clock import utcnow

        with clarion.store.write() as conn:
            mark = currents.skip_history(conn, utcnow())
        emit({"mark": mark}, as_json, lambda: console.print(f"The stream starts after engagement {mark}."))
        return
    client = _client(clarion)

    async def go() -> Any:
        from ..runners.currents import push_once, push_until_idle

        try:
            if until_idle:
                return await push_until_idle(clarion, client, on_result=None if as_json else _progress)
            return await push_once(clarion, client)
        finally:
            await client.aclose()

    result = asyncio.run(go())
    emit(result, as_json, lambda: console.print(_said(result)))


@events.command("stream-status")
def stream_status(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Where the events webhook stands: its cursor, the backlog, the last error and the dead letters."""
    from ..services import currents

    with app_of(ctx).store.read() as conn:
        found = currents.status(conn)
    emit(found, as_json, lambda: console.print(table("Events webhook", ("field", "value"), (
        (key, found[key]) for key in ("mark", "horizon", "backlog", "attempts", "next_at", "last_error",
                                      "delivered_at", "dead_letters")))))


@dead_letters_app.command("list")
def list_dead_letters(ctx: typer.Context, limit: int = typer.Option(100, "--limit", min=1, max=1000),
                      as_json: bool = JSON_OPTION) -> None:
    """Batches dead-lettered after their last retry, oldest first."""
    from ..services import currents

    with app_of(ctx).store.read() as conn:
        letters = currents.dead_letters(conn, limit=limit)
    emit(letters, as_json, lambda: console.print(table(
        f"{len(letters):,} dead letters", ("id", "created at", "engagements", "attempts", "last error"),
        ([d["id"], d["created_at"], f"{d['first_engagement_id']}..{d['last_engagement_id']}", d["attempts"],
          d["last_error"]] for d in letters))))


@dead_letters_app.command("retry")
def retry_dead_letter(ctx: typer.Context, letter_id: int = typer.Argument(..., **ID_RANGE),
                      as_json: bool = JSON_OPTION) -> None:
    """Send a dead letter again now; delivered, it leaves the list."""
    import asyncio

    from ..runners.currents import retry_dead_letter as retry

    clarion = app_of(ctx)
    client = _client(clarion)

    async def go() -> dict[str, Any]:
        try:
            return await retry(clarion, client, letter_id)
        finally:
            await client.aclose()

    result = asyncio.run(go())
    emit(result, as_json, lambda: console.print(
        f"Dead letter {letter_id}: delivered {result['events']:,} events." if result["delivered"]
        else f"Dead letter {letter_id} was refused again: {result['error']}"))
    if not result["delivered"]:
        raise typer.Exit(1)


@dead_letters_app.command("drop")
def drop_dead_letter(ctx: typer.Context, letter_id: int = typer.Argument(..., **ID_RANGE),
                     as_json: bool = JSON_OPTION) -> None:
    """Remove a dead letter without sending it."""
    from ..services import currents

    with app_of(ctx).store.write() as conn:
        currents.drop_dead_letter(conn, letter_id)
    emit({"dropped": letter_id}, as_json, lambda: console.print(f"Dropped dead letter {letter_id}."))


def _client(clarion: Any) -> Any:
    from ..domain.errors import FieldError
    from ..runners.currents import CurrentsClient
    from ..services.currents import CurrentsConfig

    try:
        config = CurrentsConfig.from_settings(clarion.settings)
    except ValueError as exc:
        raise FieldError("settings", str(exc)) from None
    if not config.url:
        raise FieldError("CLARION_EVENTS_WEBHOOK_URL", "is not set: there is nowhere to send the events")
    return CurrentsClient(config)


def _said(result: dict[str, Any]) -> str:
    if "first" in result:
        line = f"Batch {result['first']}..{result['last']} ({result['events']:,} events): {result['status']}"
        return line + (f" ({result['error']})" if result.get("error") else "")
    if "status" in result:
        waiting = f" until {result['next_at']}" if result.get("next_at") else ""
        return f"Nothing sent: {result['status']}{waiting}."
    return ", ".join(f"{status}: {count}" for status, count in result.items())


def _progress(result: dict[str, Any]) -> None:
    if "first" in result or result["status"] == "waiting":
        err_console.print(_said(result))

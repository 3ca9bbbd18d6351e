"""``clarion attribution run``: credit the goal events that arrived since the last run (issue 12 §4).

The worker runs the same pass every few seconds and the reports run it before they read, so this command
is for catching up by hand, or for examining every event again after a campaign's goal changed.
"""

from __future__ import annotations

import typer

from .output import JSON_OPTION, app_of, console, emit, key_values

attribution_app = typer.Typer(no_args_is_help=True, help="Conversions: goal events credited to messages.")


@attribution_app.command("run")
def run(ctx: typer.Context,
        limit: int | None = typer.Option(None, "--limit", min=1, max=100_000_000,
                                         help="At most this many new goal events (default: all)."),
        rewind: bool = typer.Option(False, "--rewind",
                                    help="Examine every event again (after a goal changed); credited ones stay."),
        as_json: bool = JSON_OPTION) -> None:
    """Credit new goal events (last touch: click > open > delivery) to the messages that earned them."""
    from ..services.attribution import AttributionService

    clarion = app_of(ctx)
    service = AttributionService(clarion.settings)
    with clarion.store.write() as conn:
        if rewind:
            service.rewind(conn)
        result = service.run(conn, limit=limit)
    emit(result, as_json, lambda: console.print(key_values("Attribution", result)))

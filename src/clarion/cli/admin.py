"""Administration commands: ``db upgrade``, ``serve``, ``keys``, ``aggregates rebuild``, ``stats``."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import typer

from .output import JSON_OPTION, app_of, console, emit, key_values, table
from .params import ID_RANGE, PORT_RANGE

if TYPE_CHECKING:
    from ..services.keys import ApiKey

db_app = typer.Typer(no_args_is_help=True, help="The database schema.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys.")
aggregates_app = typer.Typer(no_args_is_help=True, help="Per-contact aggregates.")


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Create or migrate the tables to the latest schema (Alembic), and say which it did."""
    done = app_of(ctx).migrate()
    said = {"created": f"Created the schema at revision {done.revision}.",
            "migrated": f"Migrated the schema from revision {done.previous_revision} to {done.revision}.",
            "current": f"The schema is already at the latest revision, {done.revision}."}[done.status]
    emit(done.as_dict(), as_json, lambda: console.print(said, markup=False, highlight=False))


def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(None, "--host", help="Default: settings.api_host."),
    port: int | None = typer.Option(None, "--port", **PORT_RANGE, help="Default: settings.api_port."),
    upgrade: bool = typer.Option(False, "--upgrade", help="Migrate the database to the latest schema first."),
) -> None:
    """Run the HTTP API (uvicorn), refresh scheduled segments, and send (an embedded delivery worker)."""
    clarion = app_of(ctx)
    try:
        import uvicorn

        from ..api.app import create_app
    except ImportError as exc:
        raise typer.BadParameter(f"the API is not available ({exc}); install clarion[api]") from None
    from ..runners.segment_scheduler import SegmentScheduler
    from ..runners.worker import run_in_thread

    _ready_schema(clarion, upgrade)
    host, port = host or clarion.settings.api_host, port or clarion.settings.api_port
    _warn_public_url(clarion.settings, host, port)
    interval = clarion.settings.segment_scheduler_seconds
    scheduler = SegmentScheduler(clarion, interval).start() if interval > 0 else None
    stop_worker = threading.Event()
    worker = run_in_thread(clarion, stop_worker) if clarion.settings.serve_worker else None
    try:
        uvicorn.run(create_app(clarion), host=host, port=port)
    finally:
        if scheduler:
            scheduler.stop()
        stop_worker.set()
        if worker:
            worker.join(timeout=30)


def _ready_schema(clarion, upgrade: bool) -> None:
    """The schema at the latest revision before anything starts: a server on a database without it would
    answer 500 and its worker would log a traceback every second. Migrated when asked, else refused."""
    from ..domain.errors import ClarionError
    from ..store.migrate import schema_status

    status, current, head = schema_status(clarion.store.engine)
    if status == "current":
        return
    if status == "unknown":
        raise ClarionError(f"the database schema is at revision {current}, which this Clarion does not know "
                           f"(its latest is {head}); was it migrated by a newer version?")
    if upgrade:
        clarion.migrate()
        console.print(f"Migrated the database to the latest schema ({head}).")
        return
    what = ("the database has no Clarion tables" if status == "missing" else
            f"the database schema is at revision {current}, behind the latest ({head})")
    raise ClarionError(f"{what}; run `clarion db upgrade` first, or start with `clarion serve --upgrade`")


def _warn_public_url(settings, host: str, port: int) -> None:
    from ..tracking.public_url import public_url_warning
    from .output import err_console

    warning = public_url_warning(settings, (host, port))
    if warning:
        err_console.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)


def _key_dict(key: ApiKey) -> dict:
    return {"id": key.id, "name": key.name, "prefix": key.prefix, "scope": key.scope,
            "created_at": key.created_at, "last_used_at": key.last_used_at, "revoked_at": key.revoked_at}


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="What the key is for."),
    scope: str = typer.Option("ingest", "--scope", help="ingest (tracking only) or admin."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create an API key and print its secret, which is shown only this once."""
    clarion = app_of(ctx)
    with clarion.store.write() as conn:
        key, secret = clarion.keys.create(conn, name, scope)
    data = {**_key_dict(key), "secret": secret}

    def render() -> None:
        console.print(f"Created key {key.id} ({key.scope}) [bold]{key.name}[/bold]. Its secret, shown only once:")
        console.print(secret, markup=False, highlight=False, soft_wrap=True)

    emit(data, as_json, render)


@keys_app.command("list")
def keys_list(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """List API keys (never their secrets)."""
    clarion = app_of(ctx)
    with clarion.store.read() as conn:
        keys = [_key_dict(k) for k in clarion.keys.list(conn)]
    emit(keys, as_json, lambda: console.print(table(
        "API keys", ("id", "name", "prefix", "scope", "created", "last used", "revoked"),
        ([k["id"], k["name"], k["prefix"], k["scope"], k["created_at"], k["last_used_at"], k["revoked_at"]]
         for k in keys))))


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, key_id: int = typer.Argument(..., **ID_RANGE), as_json: bool = JSON_OPTION) -> None:
    """Revoke an API key; requests with it are refused from now on."""
    clarion = app_of(ctx)
    with clarion.store.write() as conn:
        key = _key_dict(clarion.keys.revoke(conn, key_id))
    emit(key, as_json, lambda: console.print(f"Revoked key {key['id']} ({key['name']})."))


@aggregates_app.command("rebuild")
def aggregates_rebuild(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Recompute every contact's aggregates from the stored events."""
    from ..services import aggregates
    from ..services import stats as stats_service

    clarion = app_of(ctx)
    with clarion.store.write() as conn:
        aggregates.rebuild(conn)
        figures = stats_service.totals(conn)
    emit({"status": "ok", **figures}, as_json,
         lambda: console.print(f"Rebuilt the aggregates from {figures['events']:,} events."))


def stats(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Counts of contacts, events and orders, and the revenue."""
    from ..services import stats as stats_service

    clarion = app_of(ctx)
    with clarion.store.read() as conn:
        figures = stats_service.totals(conn)
    emit(figures, as_json, lambda: console.print(key_values("Clarion", {
        "contacts": f"{figures['contacts']:,}", "events": f"{figures['events']:,}",
        "orders": f"{figures['orders']:,}", "revenue": f"{figures['revenue']:,.2f}"})))

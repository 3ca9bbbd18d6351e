"""The ``clarion`` command line (Typer + Rich).

Every command takes ``--json``. Expected errors (bad input, unknown ids, a database without the
Clarion tables) print one line to stderr and exit with status 1, without a traceback.

Importing this module imports no service, store or channel: each command imports what it uses when it
runs, so ``clarion --help`` and the small commands start in a fraction of a second
(tests/unit/test_cli_imports.py, docs/benchmarks.md).
"""

from __future__ import annotations

import gc

import typer

from . import (
    admin,
    attribution,
    campaigns,
    consent,
    contacts,
    currency,
    events_export,
    exports,
    imports,
    reports,
    scores,
    segments,
    startup,
    timeline,
    webpush,
)
from .output import ClarionGroup, State

app = typer.Typer(cls=ClarionGroup, no_args_is_help=True, add_completion=False,
                  help="Clarion: self-hosted push-marketing engine.")


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"clarion {installed_version()}")
        raise typer.Exit()


def installed_version() -> str:
    """The installed distribution's version (pyproject.toml), else the package's own."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("clarion")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from .. import __version__

        return __version__


@app.callback()
def main(
    ctx: typer.Context,
    database_url: str | None = typer.Option(
        None, "--database-url", envvar="CLARION_DATABASE_URL",
        help="SQLAlchemy URL (sqlite:///file.db or postgresql+psycopg://...); default from the settings."),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print Clarion's version and exit."),
) -> None:
    """Clarion: profiles, consent, events -> segments -> messages."""
    cli_state = State(database_url)
    ctx.obj = cli_state
    ctx.call_on_close(cli_state.close)


app.add_typer(admin.db_app, name="db")
app.add_typer(imports.import_app, name="import")
app.add_typer(contacts.contacts_app, name="contacts")
contacts.contacts_app.command("timeline")(timeline.timeline)
contacts.events_app.add_typer(events_export.events)  # export, push, stream-status, dead-letters beside list
app.add_typer(contacts.events_app, name="events")
app.add_typer(consent.consent_app, name="consent")
app.add_typer(consent.topics_app, name="topics")
app.add_typer(consent.suppressions_app, name="suppressions")
app.add_typer(admin.keys_app, name="keys")
app.add_typer(admin.aggregates_app, name="aggregates")
app.add_typer(segments.segments_app, name="segments")
app.add_typer(scores.rfm_app, name="rfm")
app.add_typer(scores.predictions_app, name="predictions")
app.add_typer(scores.leads_app, name="leads")
app.add_typer(campaigns.templates_app, name="templates")
app.add_typer(campaigns.campaigns_app, name="campaigns")
app.add_typer(campaigns.deliveries_app, name="deliveries")
app.add_typer(campaigns.delivery_app, name="delivery")
app.add_typer(webpush.webpush_app, name="webpush")
app.add_typer(currency.currency_app, name="currency")
app.add_typer(attribution.attribution_app, name="attribution")
app.add_typer(reports.reports_app, name="reports")
app.command("worker")(campaigns.worker)
app.command("stats")(admin.stats)
app.command("serve")(admin.serve)
app.command("export")(exports.export)


def run() -> None:
    """The ``clarion`` console script: the command, with the garbage collector paused while it starts."""
    startup.pause_collector()
    try:
        app(prog_name="clarion")
    finally:
        startup.resume_collector()
        # The command is done: the collections of interpreter shutdown would walk every object of
        # SQLAlchemy, pydantic and Rich once more (docs/benchmarks.md).
        gc.freeze()


if __name__ == "__main__":
    run()

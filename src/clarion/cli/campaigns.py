"""``clarion templates|campaigns|deliveries|worker``: content, campaigns, the ledger and the sender."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from ..domain.errors import FieldError
from .output import JSON_OPTION, app_of, console, emit, key_values, table
from .params import ID_RANGE

if TYPE_CHECKING:
    from ..services.campaigns import CampaignService

# The services are imported inside the commands: `clarion --help` and the other commands do not pay for
# them (tests/unit/test_cli_imports.py).

templates_app = typer.Typer(no_args_is_help=True, help="Message templates (validated when saved).")
campaigns_app = typer.Typer(no_args_is_help=True, help="Campaigns: create, schedule, send, pause, resume, cancel.")
deliveries_app = typer.Typer(no_args_is_help=True, help="The send ledger: why a contact did or did not get a message.")
delivery_app = typer.Typer(no_args_is_help=True, help="Workspace delivery defaults: quiet hours, caps, holdout.")
NAME = typer.Argument(..., help="The campaign's name or id.")


def _json_file(path: Path, option: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FieldError(option, f"{path.name} is not JSON: {exc}") from None


# -- templates -----------------------------------------------------------------------------------
@templates_app.command("save")
def templates_save(ctx: typer.Context, name: str = typer.Argument(...),
                   file: Path = typer.Option(..., "--file", help="The template document (JSON), see docs/delivery.md."),
                   description: str | None = typer.Option(None, "--description"), as_json: bool = JSON_OPTION) -> None:
    """Create or replace a template; every problem is listed (syntax, unknown variables, sizes)."""
    from ..services.templates import TemplateService

    with app_of(ctx).store.write() as conn:
        data = TemplateService(app_of(ctx).settings.default_timezone).save(
            conn, name, _json_file(file, "--file"), description=description)
    emit(data, as_json, lambda: console.print(f"Saved template {escape(data['name'])}."))


@templates_app.command("list")
def templates_list(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    from ..services.templates import TemplateService

    with app_of(ctx).store.read() as conn:
        rows = TemplateService().list(conn)
    emit(rows, as_json, lambda: console.print(table("Templates", ("name", "channels", "updated"), (
        (r["name"], ", ".join(r["channels"]), r["updated_at"]) for r in rows))))


@templates_app.command("preview")
def templates_preview(ctx: typer.Context, name: str = typer.Argument(...),
                      contact: int = typer.Option(..., "--contact", **ID_RANGE, help="Render for this contact id."),
                      channel: str | None = typer.Option(None, "--channel"), as_json: bool = JSON_OPTION) -> None:
    from ..services.templates import TemplateService

    with app_of(ctx).store.read() as conn:
        data = TemplateService(app_of(ctx).settings.default_timezone).preview(conn, name, contact, channel)
    emit(data, as_json)


# -- campaigns -----------------------------------------------------------------------------------
def _campaigns(ctx: typer.Context) -> CampaignService:
    from ..services.campaigns import CampaignService

    return CampaignService(app_of(ctx).settings)


def _show(data: dict) -> None:
    console.print(key_values(f"Campaign {data['name']}", {
        key: data.get(key) for key in ("id", "kind", "status", "status_reason", "channel", "topic", "schedule",
                                       "start_at", "audience_count", "started_at", "finished_at")}))


def _warn(data: dict) -> None:
    """A result's warnings on stderr, where they are seen even when stdout is --json for a script."""
    from .output import err_console

    for warning in data.get("warnings", ()):
        err_console.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)


@campaigns_app.command("create")
def campaigns_create(
    ctx: typer.Context, name: str = typer.Argument(...),
    template: str = typer.Option(..., "--template"), segment: str | None = typer.Option(None, "--segment"),
    channel: str = typer.Option("email", "--channel"), kind: str = typer.Option("broadcast", "--kind"),
    topic: str | None = typer.Option(None, "--topic", help="Consent topic (newsletter, offers ...)."),
    eligibility: str | None = typer.Option(None, "--eligibility",
                                           help="A rule every recipient must meet at send time."),
    settings_file: Path | None = typer.Option(None, "--settings",
                                              help="Campaign settings (JSON): quiet_hours, caps ..."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a draft campaign (start it with send, or schedule it)."""
    spec = {"name": name, "template": template, "segment": segment, "channel": channel, "kind": kind,
            "topic": topic, "eligibility": eligibility,
            "settings": _json_file(settings_file, "--settings") if settings_file else None}
    with app_of(ctx).store.write() as conn:
        data = _campaigns(ctx).create(conn, spec)
    _warn(data)
    emit(data, as_json, lambda: _show(data))


# The service names the fields of a schedule as the API body does; on the command line they are options.
_SCHEDULE_OPTIONS = {"schedule.at": "--at", "schedule.date": "--local-date", "schedule.weekday": "--weekday",
                     "schedule.time": "--local-time"}


@campaigns_app.command("schedule")
def campaigns_schedule(
    ctx: typer.Context, name: str = NAME,
    at: str | None = typer.Option(None, "--at", help="An instant with its offset: 2026-12-01T09:00:00+00:00."),
    local_date: str | None = typer.Option(None, "--local-date", help="With --local-time: the date in each zone "
                                          "(YYYY-MM-DD)."),
    weekday: str | None = typer.Option(None, "--weekday", help="With --local-time, instead of a date: the next "
                                       "such day (tuesday)."),
    local_time: str | None = typer.Option(None, "--local-time", help="HH:MM in each recipient's time zone (10:00)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Schedule a draft: at an instant, or at a local time in each recipient's zone (not in the past)."""
    plan = _schedule_plan(at, local_date, weekday, local_time)
    try:
        with app_of(ctx).store.write() as conn:
            data = _campaigns(ctx).schedule(conn, name, plan)
    except FieldError as exc:
        raise FieldError(_SCHEDULE_OPTIONS.get(exc.field, exc.field), exc.reason) from None
    _warn(data)
    emit(data, as_json, lambda: _show(data))


def _schedule_plan(at: str | None, local_date: str | None, weekday: str | None,
                   local_time: str | None) -> dict[str, Any]:
    """The schedule as the API takes it; its values are checked by the service (domain.campaigns.Schedule)."""
    if at is not None and (local_date or weekday or local_time):
        raise FieldError("--at", "give --at alone, or --local-time with --local-date or --weekday")
    if local_date and weekday:
        raise FieldError("--weekday", "give --local-date or --weekday, not both")
    if at is not None:
        return {"mode": "at", "at": at}
    if local_time and (local_date or weekday):
        return {"mode": "local", "time": local_time, "date": local_date, "weekday": weekday}
    raise FieldError("--at", "give --at, or --local-time with --local-date or --weekday")


def _lifecycle(action: str):
    def command(ctx: typer.Context, name: str = NAME, as_json: bool = JSON_OPTION) -> None:
        with app_of(ctx).store.write() as conn:
            data = getattr(_campaigns(ctx), action)(conn, name)
        emit(data, as_json, lambda: _show(data))

    command.__doc__ = {"send": "Start now: the audience goes into the ledger; workers send it.",
                       "pause": "Pause: workers stop taking its deliveries (those in flight finish).",
                       "resume": "Resume a paused campaign.",
                       "cancel": "Cancel: every delivery not yet sent is cancelled."}[action]
    return command


for _action in ("send", "pause", "resume", "cancel"):
    campaigns_app.command(_action)(_lifecycle(_action))


@campaigns_app.command("list")
def campaigns_list(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    with app_of(ctx).store.read() as conn:
        rows = _campaigns(ctx).list(conn)
    emit(rows, as_json, lambda: console.print(table("Campaigns", ("id", "name", "kind", "status", "channel"), (
        (r["id"], r["name"], r["kind"], r["status"], r["channel"]) for r in rows))))


@campaigns_app.command("status")
def campaigns_status(ctx: typer.Context, name: str = NAME, as_json: bool = JSON_OPTION) -> None:
    """Progress and counts per state and reason, from the ledger."""
    with app_of(ctx).store.read() as conn:
        data = _campaigns(ctx).progress(conn, name)
    emit(data, as_json, lambda: show_progress(data))


def show_progress(data: dict) -> None:
    reason = f" ({data['status_reason']})" if data["status_reason"] else ""
    console.print(f"[bold]{escape(data['campaign'])}[/bold]: {data['status']}{escape(reason)}, "
                  f"{data['done']:,} of {data['total']:,} done")
    console.print(table(None, ("state", "count"), ((k, f"{v:,}") for k, v in data["counts"].items() if v)))
    if data["reasons"]:
        console.print(table(None, ("state", "reason", "count"),
                            ((r["status"], r["reason"], f"{r['count']:,}") for r in data["reasons"])))


@campaigns_app.command("dry-run")
def campaigns_dry_run(ctx: typer.Context, name: str = NAME, limit: int = typer.Option(20, "--limit", min=1, max=10_000),
                      at: datetime | None = typer.Option(None, "--at", help="Pretend it is this instant."),
                      as_json: bool = JSON_OPTION) -> None:
    """Who would get what and when, who would be skipped and why; nothing is stored or sent."""
    from ..services.campaign_insight import CampaignInsight

    with app_of(ctx).store.read() as conn:
        data = CampaignInsight(app_of(ctx).settings).dry_run(conn, name, limit=limit, at=at)
    _warn(data)
    emit(data, as_json, lambda: _show_dry_run(data))


def _show_dry_run(data: dict) -> None:
    console.print(table(f"Dry run of {data['campaign']}", (
        "contact", "address", "zone", "action", "reason", "send at", "subject"), (
        (r["contact_id"], r["address"], r["timezone"], r["action"], r["reason"], r["send_at"], r.get("subject"))
        for r in data["recipients"])))
    console.print(f"Unsubscribe links point at {escape(data['public_url'])}.")


# -- deliveries ----------------------------------------------------------------------------------
@deliveries_app.command("why")
def deliveries_why(ctx: typer.Context, contact: int = typer.Argument(..., **ID_RANGE, help="The contact id."),
                   campaign: str = typer.Argument(..., help="The campaign's name or id."),
                   as_json: bool = JSON_OPTION) -> None:
    """Why a contact did, or did not, get a campaign: the ledger, its history, and the policies now."""
    from ..services.campaign_insight import CampaignInsight

    with app_of(ctx).store.read() as conn:
        data = CampaignInsight(app_of(ctx).settings).why(conn, contact, campaign)
    emit(data, as_json, lambda: _show_why(data))


def _show_why(data: dict) -> None:
    if not data["deliveries"]:
        console.print(f"Contact {data['contact_id']} is not in the audience of {escape(data['campaign'])}.")
    for item in data["deliveries"]:
        console.print(f"Delivery {item['id']} ({item['step']}): [bold]{item['status']}[/bold] "
                      f"{escape(item['explanation'] or '')} {escape(item['detail'] or '')}")
        for entry in item["history"]:
            said = " ".join(escape(entry[key] or "") for key in ("reason", "code", "detail"))
            console.print(f"  {entry['at']}  attempt {entry['attempt']}  {entry['outcome']}  {said}")
    verdict = data["now"]
    console.print(f"If it were sent now: {verdict['action']} {escape(verdict['explanation'] or '')} "
                  f"{escape(verdict['detail'] or '')}")


# -- workspace defaults -------------------------------------------------------------------------
@delivery_app.command("show")
def delivery_show(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    from ..services.delivery_defaults import get_defaults

    with app_of(ctx).store.read() as conn:
        data = get_defaults(conn).model_dump(mode="json")
    emit(data, as_json)


@delivery_app.command("set")
def delivery_set(ctx: typer.Context, file: Path = typer.Option(..., "--file"), as_json: bool = JSON_OPTION) -> None:
    from ..services.delivery_defaults import set_defaults

    with app_of(ctx).store.write() as conn:
        data = set_defaults(conn, _json_file(file, "--file")).model_dump(mode="json")
    emit(data, as_json)


# -- worker --------------------------------------------------------------------------------------
def worker(ctx: typer.Context,
           until_idle: bool = typer.Option(False, "--until-idle", help="Exit when nothing is due (cron, demo)."),
           worker_id: str | None = typer.Option(None, "--id", help="A name for this worker (default host:pid)."),
           quiet: bool = typer.Option(False, "--quiet", "-q", help="No start and progress lines on stderr."),
           as_json: bool = JSON_OPTION) -> None:
    """Send: start due campaigns, lease due deliveries, check policies, send, checkpoint, forever.

    Prints on stderr where it sends from, then a line per campaign as its counts change (at most every
    few seconds, and when idle or stopping)."""
    import asyncio

    from ..runners.worker import Worker
    from .worker_report import print_progress, say, start_line

    runner = Worker(app_of(ctx), worker_id=worker_id, on_progress=None if quiet else print_progress)
    if not quiet:
        say(start_line(runner))
    try:
        asyncio.run(runner.run(until_idle=until_idle))
    except KeyboardInterrupt:
        pass
    campaigns = [progress.as_dict() for progress in runner.progress.campaigns.values()]
    emit({"worker": runner.worker_id, "sent": runner.sent, "campaigns": campaigns}, as_json,
         lambda: console.print(f"Worker {runner.worker_id} stopped after sending {runner.sent:,} messages."))


@campaigns_app.command("test-send")
def campaigns_test_send(ctx: typer.Context, name: str = NAME,
                        to: str = typer.Option(..., "--to", help="An email address, a phone number, or for "
                                                                 "push the id of a contact with devices."),
                        contact: int | None = typer.Option(None, "--contact", **ID_RANGE,
                                                           help="Render for this contact id."),
                        as_json: bool = JSON_OPTION) -> None:
    """Send one message of the campaign to an address, rendered for a contact; not recorded as a delivery."""
    import asyncio

    from ..runners.trial_send import send_test

    data = asyncio.run(send_test(app_of(ctx), name, to, contact))
    said = escape(data["detail"] or "")
    emit(data, as_json, lambda: console.print(
        f"Test of {escape(data['campaign'])} to {escape(data['to'])}: {data['outcome']} {said}"))

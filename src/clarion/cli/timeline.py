"""``clarion contacts timeline ID``: a contact's events and engagements, newest first."""

from __future__ import annotations

import typer

from .output import JSON_OPTION, app_of, console, emit, table
from .params import ID_RANGE


def timeline(
    ctx: typer.Context,
    contact_id: int = typer.Argument(..., **ID_RANGE, help="The contact's id in Clarion."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    offset: int = typer.Option(0, "--offset", min=0, max=10_000),
    until: str | None = typer.Option(None, "--until", help="ISO 8601: only what happened before it."),
    human_only: bool = typer.Option(False, "--human-only", help="Leave out machine opens and clicks."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Events and engagements (Email Opened, Link Clicked ...), newest first; machine ones are marked."""
    from ..domain.events import parse_timestamp
    from ..services.timeline import TimelineService

    clarion = app_of(ctx)
    with clarion.store.read() as conn:
        page = TimelineService().timeline(conn, contact_id, limit=limit, offset=offset, human_only=human_only,
                                          until=parse_timestamp(until, "--until") if until else None)
    emit(page, as_json, lambda: console.print(table(
        f"{page['total']:,} items for contact {contact_id}", ("occurred at", "name", "machine", "details"),
        ([item["occurred_at"], item["name"], _machine(item), _details(item)] for item in page["items"]))))


def _machine(item: dict) -> str:
    if not item["machine"]:
        return ""
    return f"machine ({item['properties'].get('reason')})"


def _details(item: dict) -> str:
    """The campaign, channel and link of an engagement; the properties of an event."""
    props = item["properties"] or {}
    if item["kind"] == "event":
        shown = ", ".join(f"{key}={value}" for key, value in list(props.items())[:4])
        return f"{shown}, revenue={item['revenue']}" if item.get("revenue") is not None else shown
    parts = [f"{props.get('campaign') or props.get('campaign_id')} ({props.get('channel')})"]
    if props.get("url"):
        parts.append(f"link {props.get('link')}: {props['url']}")
    if props.get("revenue") is not None:
        parts.append(f"revenue {props['revenue']}")
    return ", ".join(parts)

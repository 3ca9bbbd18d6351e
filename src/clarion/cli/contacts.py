"""``contacts show|search|export|erase`` and ``events list``."""

from __future__ import annotations

import typer

from ..domain.errors import FieldError
from ..domain.profiles import normalize_email
from .output import JSON_OPTION, app_of, console, emit, key_values, table

contacts_app = typer.Typer(no_args_is_help=True, help="Contacts.")
events_app = typer.Typer(no_args_is_help=True, help="Events.")


@contacts_app.command("show")
def show(
    ctx: typer.Context,
    contact_id: int | None = typer.Argument(None, help="The contact's id."),
    email: str | None = typer.Option(None, "--email"),
    external_id: str | None = typer.Option(None, "--external-id"),
    as_json: bool = JSON_OPTION,
) -> None:
    """A contact's profile, identifiers and aggregates (by id, --email or --external-id)."""
    clarion = app_of(ctx)
    with clarion.store.read() as conn:
        if contact_id is None:
            if email:
                contact_id = clarion.contacts.find(conn, "email", normalize_email(email))
            elif external_id:
                contact_id = clarion.contacts.find(conn, "external_id", external_id.strip())
            else:
                raise FieldError("contact", "give an id, --email or --external-id")
        profile = clarion.contacts.get(conn, contact_id)
    emit(profile, as_json, lambda: console.print(key_values(f"Contact {contact_id}", profile)))


@contacts_app.command("search")
def search(
    ctx: typer.Context,
    query: str = typer.Argument("", help="Part of an email, external id, phone or name."),
    country: str | None = typer.Option(None, "--country"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    offset: int = typer.Option(0, "--offset", min=0),
    as_json: bool = JSON_OPTION,
) -> None:
    """Find contacts."""
    clarion = app_of(ctx)
    with clarion.store.read() as conn:
        total, page = clarion.contacts.search(conn, query, country=country, limit=limit, offset=offset)
    emit({"total": total, "contacts": page}, as_json, lambda: console.print(table(
        f"{total:,} contacts", ("id", "external id", "email", "name", "country", "time zone"),
        ([c["id"], c["external_id"], c["email"], " ".join(filter(None, (c["first_name"], c["last_name"]))),
          c["country"], c["timezone"]] for c in page))))


@contacts_app.command("export")
def export(ctx: typer.Context, contact_id: int = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """Everything held about a contact, as JSON (GDPR access and portability; always JSON)."""
    clarion = app_of(ctx)
    with clarion.store.read() as conn:
        data = clarion.gdpr.export(conn, contact_id)
    emit(data, True)


@contacts_app.command("erase")
def erase(
    ctx: typer.Context,
    contact_id: int = typer.Argument(...),
    yes: bool = typer.Option(False, "--yes", help="Confirm: erasure cannot be undone."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Erase a contact (GDPR Art. 17). Needs --yes."""
    if not yes:
        raise FieldError("--yes", "erasure cannot be undone; repeat the command with --yes")
    clarion = app_of(ctx)
    with clarion.store.write() as conn:
        summary = clarion.gdpr.erase(conn, contact_id)
    emit({"erased": contact_id, **summary}, as_json, lambda: console.print(
        f"Erased contact {contact_id}: {summary['identities']} identifiers, {summary['events']} events; "
        f"{summary['consent_records_kept']} consent records kept without personal data."))


@events_app.command("list")
def list_events(
    ctx: typer.Context,
    contact: int | None = typer.Option(None, "--contact", help="Only this contact's events."),
    name: str | None = typer.Option(None, "--name", help="Only events with this name."),
    limit: int = typer.Option(20, "--limit", min=1, max=1000),
    as_json: bool = JSON_OPTION,
) -> None:
    """The latest events, newest first."""
    clarion = app_of(ctx)
    with clarion.store.read() as conn:
        total, page = clarion.events.list(conn, contact_id=contact, name=name, limit=limit)
    emit({"total": total, "events": page}, as_json, lambda: console.print(table(
        f"{total:,} events", ("id", "contact", "name", "occurred at", "revenue", "message id"),
        ([e["id"], e["contact_id"], e["name"], e["occurred_at"], e["revenue"], e["message_id"]] for e in page))))

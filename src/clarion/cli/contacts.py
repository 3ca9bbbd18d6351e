"""``contacts show|search|export|erase`` and ``events list``."""

from __future__ import annotations

from typing import Any

import typer

from ..domain.errors import FieldError
from .output import JSON_OPTION, app_of, console, emit, key_values, table
from .params import ID_RANGE, OFFSET_RANGE

contacts_app = typer.Typer(no_args_is_help=True, help="Contacts.")
events_app = typer.Typer(no_args_is_help=True, help="Events.")


# A contact is named by Clarion's own id (the number `contacts search` shows), or by an identifier it has.
CONTACT = typer.Argument(None, **ID_RANGE,
                         help="The contact's id in Clarion (not the external id; see contacts search).")
EMAIL = typer.Option(None, "--email", help="Or: the contact's email address.")
EXTERNAL_ID = typer.Option(None, "--external-id", help="Or: the contact's id in your own systems.")


def contact_id_of(clarion: Any, conn: Any, contact_id: int | None, email: str | None,
                  external_id: str | None) -> int:
    """The contact's id from exactly one of: the id, --email or --external-id (NotFound when unknown)."""
    if sum(value is not None for value in (contact_id, email, external_id)) != 1:
        raise FieldError("contact", "give exactly one of: the contact's id, --email or --external-id")
    if email is not None:
        from ..domain.profiles import normalize_email

        return clarion.contacts.find(conn, "email", normalize_email(email))
    if external_id is not None:
        return clarion.contacts.find(conn, "external_id", external_id.strip())
    clarion.contacts.require(conn, contact_id)
    return contact_id


@contacts_app.command("show")
def show(ctx: typer.Context, contact_id: int | None = CONTACT, email: str | None = EMAIL,
         external_id: str | None = EXTERNAL_ID, as_json: bool = JSON_OPTION) -> None:
    """A contact's profile, identifiers and aggregates (by id, --email or --external-id)."""
    clarion = app_of(ctx)
    with clarion.store.read() as conn:
        contact_id = contact_id_of(clarion, conn, contact_id, email, external_id)
        profile = clarion.contacts.get(conn, contact_id)
    emit(profile, as_json, lambda: console.print(key_values(f"Contact {contact_id}", profile)))


@contacts_app.command("search")
def search(
    ctx: typer.Context,
    query: str = typer.Argument("", help="Part of an email, external id, phone or name."),
    country: str | None = typer.Option(None, "--country"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    offset: int = typer.Option(0, "--offset", **OFFSET_RANGE),
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
def export(ctx: typer.Context, contact_id: int = typer.Argument(..., **ID_RANGE), as_json: bool = JSON_OPTION) -> None:
    """Everything held about a contact, as JSON (GDPR access and portability; always JSON)."""
    clarion = app_of(ctx)
    with clarion.store.read() as conn:
        data = clarion.gdpr.export(conn, contact_id)
    emit(data, True)


@contacts_app.command("erase")
def erase(
    ctx: typer.Context,
    contact_id: int = typer.Argument(..., **ID_RANGE),
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
    contact: int | None = typer.Option(None, "--contact", **ID_RANGE, help="Only this contact's events."),
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

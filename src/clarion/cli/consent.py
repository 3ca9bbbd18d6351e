"""``clarion consent show|set``, ``clarion topics list|create``, ``clarion suppressions list|add|remove``.

The same service calls as ``/api/contacts/{id}/consent``, ``/api/topics`` and ``/api/suppressions``: a consent
set here lands in the ledger with its source and proof, exactly as one recorded through the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer
from rich.markup import escape

from ..domain.errors import FieldError
from .contacts import CONTACT, EMAIL, EXTERNAL_ID, contact_id_of
from .output import JSON_OPTION, app_of, console, emit, table
from .params import OFFSET_RANGE

consent_app = typer.Typer(no_args_is_help=True, help="Consent per contact, channel and topic, with its ledger.")
topics_app = typer.Typer(no_args_is_help=True, help="Subscription topics (newsletter, offers ...).")
suppressions_app = typer.Typer(no_args_is_help=True, help="Addresses that are never sent to.")

SUPPRESSED_EMAIL = typer.Option(None, "--email", help="An email address.")
SUPPRESSED_PHONE = typer.Option(None, "--phone", help="A phone number (E.164, or national in the default region).")


@consent_app.command("show")
def consent_show(ctx: typer.Context, contact: int | None = CONTACT, email: str | None = EMAIL,
                 external_id: str | None = EXTERNAL_ID, as_json: bool = JSON_OPTION) -> None:
    """A contact's consent per channel and topic now, and every change in the ledger with its proof."""
    clarion = app_of(ctx)
    with clarion.store.read() as conn:
        contact_id = contact_id_of(clarion, conn, contact, email, external_id)
        state = [{"channel": c, "topic": t, "status": s}
                 for (c, t), s in sorted(clarion.consent.state(conn, contact_id).items())]
        ledger = clarion.consent.ledger(conn, contact_id)
    emit({"contact_id": contact_id, "state": state, "ledger": ledger}, as_json,
         lambda: _show_consent(contact_id, state, ledger))


def _show_consent(contact_id: int, state: list[dict], ledger: list[dict]) -> None:
    if not state:
        console.print(f"Contact {contact_id} has no consent recorded: marketing messages skip it (no_consent).")
        return
    console.print(table(f"Consent of contact {contact_id}", ("channel", "topic", "status"),
                        ((s["channel"], s["topic"], s["status"]) for s in state)))
    console.print(table("Ledger", ("when", "channel", "topic", "status", "source", "proof"), (
        (e["occurred_at"], e["channel"], e["topic"], e["status"], e["source"],
         ", ".join(f"{k}={v}" for k, v in (e["proof"] or {}).items())) for e in ledger)))


@consent_app.command("set")
def consent_set(
    ctx: typer.Context, contact: int | None = CONTACT, email: str | None = EMAIL,
    external_id: str | None = EXTERNAL_ID,
    channel: str = typer.Option(..., "--channel", help="email, sms, push, webpush, whatsapp, voice, inapp."),
    status: str = typer.Option(..., "--status", help="opted_in or opted_out."),
    topic: str = typer.Option("*", "--topic", help="A topic key, or * for every topic of the channel."),
    source: str = typer.Option("cli", "--source", help="How the consent reached you (form, phone call, cli ...)."),
    proof: list[str] = typer.Option([], "--proof", help="key=value evidence, repeatable: form, text_version, "
                                                         "text, url, ip, user_agent, source."),
    at: str | None = typer.Option(None, "--at", help="When it was given (ISO 8601; default: now)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Record a consent change in the ledger (opting in to a double opt-in topic leaves it pending)."""
    from ..domain.consent import Channel, parse_enum
    from ..domain.events import parse_timestamp
    from ..services.consent import requested_status

    wanted_channel, wanted_status = parse_enum(Channel, channel, "--channel"), requested_status(status)
    occurred_at = _past_time(parse_timestamp(at, "--at")) if at else None
    evidence = _key_values(proof, "--proof")
    clarion = app_of(ctx)
    with clarion.store.write() as conn:
        contact_id = contact_id_of(clarion, conn, contact, email, external_id)
        key = clarion.consent.require_topic(conn, topic)
        result = clarion.consent.record(conn, contact_id, wanted_channel, wanted_status, topic=key,
                                        source=source, proof=evidence, occurred_at=occurred_at)
    data = {"contact_id": contact_id, **result}
    pending = " until the contact confirms it (a double opt-in topic)" if data["status"] == "pending_confirmation" \
        else ""
    emit(data, as_json, lambda: console.print(
        f"Contact {contact_id}: {escape(data['channel'])}/{escape(data['topic'])} is now {data['status']}{pending} "
        f"(ledger entry {data['ledger_id']})."))


@consent_app.command("confirm")
def consent_confirm(
    ctx: typer.Context, contact: int | None = CONTACT, email: str | None = EMAIL,
    external_id: str | None = EXTERNAL_ID,
    channel: str = typer.Option(..., "--channel", help="The channel of the pending consent."),
    topic: str = typer.Option(..., "--topic", help="The double opt-in topic."),
    source: str = typer.Option("cli", "--source", help="How the confirmation reached you."),
    proof: list[str] = typer.Option([], "--proof", help="key=value evidence of the confirmation, repeatable."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Confirm a pending double opt-in (the person confirmed by other means than the link)."""
    from ..domain.consent import Channel, parse_enum

    wanted_channel, evidence = parse_enum(Channel, channel, "--channel"), _key_values(proof, "--proof")
    clarion = app_of(ctx)
    with clarion.store.write() as conn:
        contact_id = contact_id_of(clarion, conn, contact, email, external_id)
        key = clarion.consent.require_topic(conn, topic)
        result = clarion.consent.confirm(conn, contact_id, wanted_channel, key, source=source, proof=evidence)
    data = {"contact_id": contact_id, **result}
    emit(data, as_json, lambda: console.print(
        f"Contact {contact_id}: {escape(data['channel'])}/{escape(data['topic'])} is now {data['status']}."))


def _key_values(items: list[str], option: str) -> dict[str, str]:
    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FieldError(option, f"{item!r} is not key=value (for example form=newsletter-footer)")
        values[key.strip()] = value.strip()
    return values


def _past_time(value: datetime) -> datetime:
    from ..services.clock import utcnow

    if value > utcnow():
        raise FieldError("--at", f"{value.isoformat()} is in the future; a consent is recorded once it was given")
    return value


# -- topics ------------------------------------------------------------------------------------
@topics_app.command("list")
def topics_list(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """The subscription topics."""
    clarion = app_of(ctx)
    with clarion.store.read() as conn:
        rows = clarion.consent.list_topics(conn)
    emit(rows, as_json, lambda: console.print(table("Topics", ("key", "name", "double opt-in", "description"), (
        (r["key"], r["name"], "yes" if r["double_opt_in"] else "no", r["description"]) for r in rows))))


@topics_app.command("create")
def topics_create(
    ctx: typer.Context, key: str = typer.Argument(..., help="The topic's key, used in campaigns and imports."),
    name: str = typer.Option("", "--name", help="A name to show people (default: the key)."),
    description: str | None = typer.Option(None, "--description"),
    double_opt_in: bool = typer.Option(False, "--double-opt-in", help="Consent counts only once confirmed."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a subscription topic."""
    clarion = app_of(ctx)
    with clarion.store.write() as conn:
        data = clarion.consent.create_topic(conn, key, name, description=description, double_opt_in=double_opt_in)
    emit(data, as_json, lambda: console.print(f"Created topic {escape(data['key'])}"
                                              f"{' (double opt-in)' if data['double_opt_in'] else ''}."))


# -- suppressions ------------------------------------------------------------------------------
@suppressions_app.command("list")
def suppressions_list(
    ctx: typer.Context, email: str | None = SUPPRESSED_EMAIL, phone: str | None = SUPPRESSED_PHONE,
    kind: str | None = typer.Option(None, "--kind", help="email or phone."),
    limit: int = typer.Option(100, "--limit", min=1, max=1000),
    offset: int = typer.Option(0, "--offset", **OFFSET_RANGE),
    as_json: bool = JSON_OPTION,
) -> None:
    """The suppression list, or the entry of one --email or --phone."""
    clarion = app_of(ctx)
    with clarion.store.read() as conn:
        if email or phone:
            entry = clarion.consent.suppression(conn, *_address(clarion, email, phone))
            total, items = int(entry is not None), [entry] if entry else []
        else:
            if kind is not None and kind not in ("email", "phone"):
                raise FieldError("--kind", f"{kind!r} is not email or phone")
            total, items = clarion.consent.list_suppressions(conn, kind=kind, limit=limit, offset=offset)
    emit({"total": total, "items": items}, as_json, lambda: console.print(table(
        f"{total:,} suppressed addresses", ("address", "kind", "reason", "since", "note"),
        ((i["address"] or "(erased)", i["kind"], i["reason"], i["created_at"], i["note"]) for i in items))))


@suppressions_app.command("add")
def suppressions_add(
    ctx: typer.Context, email: str | None = SUPPRESSED_EMAIL, phone: str | None = SUPPRESSED_PHONE,
    reason: str = typer.Option("manual", "--reason", help="manual, unsubscribe, hard_bounce or complaint."),
    note: str | None = typer.Option(None, "--note"), as_json: bool = JSON_OPTION,
) -> None:
    """Never send to this address again (an address already listed keeps its first reason)."""
    from ..domain.consent import SuppressionReason, parse_enum

    wanted = parse_enum(SuppressionReason, reason, "--reason")
    if wanted == SuppressionReason.ERASED:
        raise FieldError("--reason", "'erased' is set by erasure only (clarion contacts erase)")
    clarion = app_of(ctx)
    kind, address = _address(clarion, email, phone)
    with clarion.store.write() as conn:
        clarion.consent.suppress(conn, kind, address, wanted, note)
        entry = clarion.consent.suppression(conn, kind, address) or {}
    emit(entry, as_json, lambda: console.print(
        f"Suppressed {escape(address)} ({entry.get('reason')} since {entry.get('created_at')})."))


@suppressions_app.command("remove")
def suppressions_remove(ctx: typer.Context, email: str | None = SUPPRESSED_EMAIL,
                        phone: str | None = SUPPRESSED_PHONE, as_json: bool = JSON_OPTION) -> None:
    """Lift a suppression (an erased contact's cannot be lifted)."""
    from ..domain.errors import NotFound

    clarion = app_of(ctx)
    kind, address = _address(clarion, email, phone)
    with clarion.store.write() as conn:
        if not clarion.consent.unsuppress(conn, kind, address):
            raise NotFound(f"liftable suppression of {kind}", address)
    emit({"removed": address, "kind": kind}, as_json, lambda: console.print(f"Lifted the suppression of "
                                                                           f"{escape(address)}."))


def _address(clarion: Any, email: str | None, phone: str | None) -> tuple[str, str]:
    from ..services.consent import address_of

    if bool(email) == bool(phone):
        raise FieldError("--email", "give exactly one of --email or --phone")
    return address_of(email, phone, clarion.settings.default_phone_region)

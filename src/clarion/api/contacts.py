"""The native REST API for contacts (admin keys): CRUD, search, look-up and GDPR export/erase."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from ..bootstrap import Clarion
from ..domain.errors import FieldError
from ..domain.profiles import normalize_country, normalize_email, normalize_phone
from ..domain.traits import parse_traits
from ..services.contacts import MAX_QUERY
from ..services.identity import Identifiers
from .auth import ClarionDep, require_admin
from .params import ContactId, Limit, Offset

router = APIRouter(prefix="/api/contacts", tags=["Contacts"], dependencies=[Depends(require_admin)])
SearchText = Annotated[str, Query(max_length=MAX_QUERY, description="Part of an email, external id, phone or name")]


class ContactBody(BaseModel):
    """A profile or part of one. Omitted (or null) fields are left as they are."""

    model_config = ConfigDict(extra="forbid")

    external_id: str | None = None
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    locale: str | None = None
    timezone: str | None = None
    country: str | None = None
    region: str | None = None
    city: str | None = None
    latitude: float | str | None = None
    longitude: float | str | None = None
    birthday: str | None = None
    anniversary: str | None = None
    attributes: dict[str, Any] | None = None
    custom_dates: dict[str, Any] | None = None


class IdentifyBody(ContactBody):
    """As a profile, plus the anonymous id of a visitor to merge into this contact."""

    anonymous_id: str | None = Field(None, max_length=320)


def profile_patch(clarion: Clarion, body: ContactBody, exclude: set[str] | None = None):
    values = body.model_dump(exclude_none=True, exclude=exclude)
    return parse_traits(values, default_region=clarion.settings.default_phone_region, keep_unknown=False)


@router.get("/lookup", summary="Find a contact by email, phone or external id")
def lookup(clarion: ClarionDep, email: str | None = None, phone: str | None = None,
           external_id: str | None = None) -> dict[str, Any]:
    given = {k: v for k, v in (("email", email), ("phone", phone), ("external_id", external_id)) if v}
    if len(given) != 1:
        raise FieldError("email", "give exactly one of email, phone or external_id")
    kind, value = next(iter(given.items()))
    if kind == "email":
        value = normalize_email(value)
    elif kind == "phone":
        value = normalize_phone(value, clarion.settings.default_phone_region)
    with clarion.store.read() as conn:
        return clarion.contacts.get(conn, clarion.contacts.find(conn, kind, value.strip()))


@router.get("", summary="Search contacts by email, external id, phone or name")
def search(clarion: ClarionDep, q: SearchText = "", country: Annotated[str | None, Query(max_length=100)] = None,
           limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
    code = normalize_country(country) if country else None
    with clarion.store.read() as conn:
        total, items = clarion.contacts.search(conn, q, country=code, limit=limit, offset=offset)
    return {"total": total, "limit": limit, "offset": offset, "items": items}


@router.post("", summary="Identify: create or update the contact these identifiers name")
def create(clarion: ClarionDep, body: IdentifyBody) -> dict[str, Any]:
    patch = profile_patch(clarion, body, exclude={"anonymous_id"})
    anonymous = (body.anonymous_id or "").strip() or None
    if not (anonymous or patch.external_id or patch.email or patch.phone):
        raise FieldError("external_id", "one of external_id, email, phone or anonymous_id is required")
    with clarion.store.write() as conn:
        contact_id = clarion.contacts.identify(conn, Identifiers(anonymous_id=anonymous), patch)
        return clarion.contacts.get(conn, contact_id)


@router.get("/{contact_id}", summary="One contact, with identities and aggregates")
def get(clarion: ClarionDep, contact_id: ContactId) -> dict[str, Any]:
    with clarion.store.read() as conn:
        return clarion.contacts.get(conn, contact_id)


@router.patch("/{contact_id}", summary="Change some fields of a contact")
def patch(clarion: ClarionDep, contact_id: ContactId, body: ContactBody) -> dict[str, Any]:
    changes = profile_patch(clarion, body)
    with clarion.store.write() as conn:
        clarion.contacts.update(conn, contact_id, changes)
        return clarion.contacts.get(conn, contact_id)


@router.delete("/{contact_id}", status_code=204, summary="Delete a contact (no tombstone; see /erase)")
def delete(clarion: ClarionDep, contact_id: ContactId) -> Response:
    with clarion.store.write() as conn:
        clarion.contacts.delete(conn, contact_id)
    return Response(status_code=204)


@router.get("/{contact_id}/export", summary="GDPR Art. 15/20: everything held about a contact")
def export(clarion: ClarionDep, contact_id: ContactId) -> dict[str, Any]:
    with clarion.store.read() as conn:
        return clarion.gdpr.export(conn, contact_id)


@router.post("/{contact_id}/erase", summary="GDPR Art. 17: erase a contact; it may not be re-created")
def erase(clarion: ClarionDep, contact_id: ContactId) -> dict[str, Any]:
    with clarion.store.write() as conn:
        return {"erased": True, **clarion.gdpr.erase(conn, contact_id)}

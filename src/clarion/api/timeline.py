"""``GET /api/contacts/{id}/timeline`` (admin keys): the contact's events and engagements, newest first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from ..services.timeline import MAX_OFFSET, TimelineService
from .auth import ClarionDep, require_admin
from .events import time_param
from .params import ContactId, Limit

router = APIRouter(prefix="/api/contacts", tags=["Contacts"], dependencies=[Depends(require_admin)])
TimelineOffset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description=f"Items to skip, 0..{MAX_OFFSET}")]


@router.get("/{contact_id}/timeline", summary="The contact's events and engagements, newest first")
def timeline(clarion: ClarionDep, contact_id: ContactId, limit: Limit = 50, offset: TimelineOffset = 0,
             until: Annotated[str | None, Query(max_length=64, description="ISO 8601: only items before it")] = None,
             human_only: bool = False) -> dict[str, Any]:
    """Engagements appear as named events (``Email Opened``, ``Link Clicked`` ...) with their campaign,
    channel, delivery, link and revenue; machine ones are marked ``machine: true`` (``human_only`` drops them)."""
    with clarion.store.read() as conn:
        return TimelineService().timeline(conn, contact_id, limit=limit, offset=offset,
                                          until=time_param(until, "until"), human_only=human_only)

"""The in-app inbox over HTTP: the customer's app reads and marks its contact's messages; admins look in.

The app authenticates with a contact token of scope ``inbox`` (``Authorization: Bearer ct1...``), which
the business's backend gets from ``POST /api/contacts/{id}/client-token`` ``{"scope": "inbox"}`` and hands
to its signed-in user. The token names the contact, so the app never says whose inbox it reads: another
contact's message ids are simply not found (404), and a forged, expired or other-scope token is 401.

    GET    /api/inbox?unread=&before=&limit=     a page, newest first, with the unread count
    POST   /api/inbox/read  {"ids": [...]} | {"all": true}
    DELETE /api/inbox/{id}
    GET    /api/contacts/{id}/inbox               (admin key) the same page, for support
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..services import inbox as inbox_service
from ..services.clock import utcnow
from .auth import ClarionDep, contact_token_for, require_admin
from .cors import CorsRoute, add_preflight
from .params import MAX_ID, ContactId

# A web app on the business's own origin calls these: CORS (the token is a header, never a cookie).
app_router = APIRouter(prefix="/api/inbox", tags=["Inbox"], route_class=CorsRoute)
add_preflight(app_router)
admin_router = APIRouter(prefix="/api/contacts", tags=["Inbox"], dependencies=[Depends(require_admin)])

InboxContact = Annotated[int, Depends(contact_token_for("inbox"))]
MessageId = Annotated[int, Path(ge=1, le=MAX_ID, description="An inbox message's id")]
Unread = Annotated[bool, Query(description="Only messages not read yet")]
Before = Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only messages older than this id (paging: "
                                                                  "the previous page's next_before)")]
PageSize = Annotated[int, Query(ge=1, le=inbox_service.MAX_PAGE, description="Messages per page")]


class InboxMessage(BaseModel):
    id: int
    campaign_id: int | None = None
    title: str
    body: str
    url: str | None = None
    image: str | None = None
    data: dict[str, Any] | None = None
    created_at: datetime
    read_at: datetime | None = None
    expires_at: datetime | None = None


class InboxPage(BaseModel):
    messages: list[InboxMessage]
    unread: int = Field(description="Unread messages in the whole inbox, not only this page")
    next_before: int | None = Field(None, description="Pass as ?before= for the next (older) page; null at the end")


class ReadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        None, max_length=inbox_service.MAX_PAGE, description="The messages to mark read")
    all: bool = Field(False, description="Mark every message read")

    @model_validator(mode="after")
    def _one_of(self) -> ReadBody:
        if (self.ids is None) == (not self.all):
            raise ValueError('give "ids" or "all": true, not both or neither')
        return self


class ReadResult(BaseModel):
    marked: int = Field(description="Messages that were unread and are read now")


def _page(clarion: Any, contact_id: int, unread: bool, before: int | None, limit: int) -> InboxPage:
    with clarion.store.read() as conn:
        page = inbox_service.messages(conn, contact_id, utcnow(), unread_only=unread, before=before, limit=limit)
    return InboxPage.model_validate(page)


@app_router.get("", summary="The contact's inbox, newest first (contact token, scope inbox)")
def list_messages(clarion: ClarionDep, contact_id: InboxContact, unread: Unread = False, before: Before = None,
                  limit: PageSize = 50) -> InboxPage:
    return _page(clarion, contact_id, unread, before, limit)


@app_router.post("/read", summary="Mark messages read (contact token, scope inbox)")
def mark_read(clarion: ClarionDep, contact_id: InboxContact, body: ReadBody) -> ReadResult:
    with clarion.store.write() as conn:
        marked = inbox_service.mark_read(conn, contact_id, None if body.all else body.ids, utcnow())
    return ReadResult(marked=marked)


@app_router.delete("/{message_id}", status_code=204, summary="Delete a message (contact token, scope inbox)")
def delete_message(clarion: ClarionDep, contact_id: InboxContact, message_id: MessageId) -> Response:
    with clarion.store.write() as conn:
        inbox_service.remove(conn, contact_id, message_id)
    return Response(status_code=204)


@admin_router.get("/{contact_id}/inbox", summary="A contact's in-app inbox, as the app sees it (admin key)")
def contact_inbox(clarion: ClarionDep, contact_id: ContactId, unread: Unread = False, before: Before = None,
                  limit: PageSize = 50) -> InboxPage:
    return _page(clarion, contact_id, unread, before, limit)


router = APIRouter()  # what api.app registers: the app's routes and the admin's
router.include_router(app_router)
router.include_router(admin_router)

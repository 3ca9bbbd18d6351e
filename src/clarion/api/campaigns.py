"""The REST API for templates, campaigns and the ledger (admin keys), the same as ``clarion campaigns``.

An invalid template answers 422 ``invalid_template`` with every problem (part, line, message,
suggestion). Lifecycle actions that do not fit the campaign's state answer 409.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ..services.campaign_insight import CampaignInsight
from ..services.campaigns import CampaignService
from ..services.delivery_defaults import get_defaults, set_defaults
from ..services.templates import TemplateService
from .auth import ClarionDep, require_admin
from .params import ContactId

router = APIRouter(prefix="/api", tags=["Campaigns"], dependencies=[Depends(require_admin)])

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^/]*$")]
PathName = Annotated[str, Path(min_length=1, max_length=1000, description="The name (or id, for campaigns)")]


class TemplateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    document: dict[str, Any] = Field(description="default_locale, default (per channel), variants (per locale)")
    description: str | None = Field(None, max_length=10_000)


class CampaignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    template: Name
    kind: str = Field("broadcast", pattern="^(broadcast|transactional)$")
    channel: str = Field("email", max_length=16)
    segment: Name | None = None
    topic: str | None = Field(None, max_length=100)
    marketing: bool | None = Field(None, description="Obey consent, quiet hours, caps, holdout (default: broadcasts)")
    eligibility: str | dict[str, Any] | None = Field(None, description="A rule (text or JSON) checked at send time")
    settings: dict[str, Any] | None = None
    schedule: dict[str, Any] | None = None


class ScheduleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: str = Field(pattern="^(at|local)$")
    # Text, read by the service's Schedule like the CLI's --at: one rule and one message for both.
    at: str | None = Field(None, max_length=100, description="ISO 8601 with its offset: 2026-12-01T09:00:00Z")
    date: str | None = None
    weekday: str | None = None
    time: str | None = None


class TriggerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_id: int = Field(ge=1, le=2**63 - 1)
    key: str | None = Field(None, min_length=1, max_length=100, description="Idempotency key: a retry is one send")
    data: dict[str, Any] | None = Field(None, description="The message's own data, as `data` in the template")


def campaigns_service(clarion: ClarionDep) -> CampaignService:
    return CampaignService(clarion.settings)


Campaigns = Annotated[CampaignService, Depends(campaigns_service)]


@router.put("/templates", summary="Create or replace a template (validated; 422 lists every problem)")
def save_template(clarion: ClarionDep, body: TemplateBody) -> dict[str, Any]:
    with clarion.store.write() as conn:
        return TemplateService(clarion.settings.default_timezone).save(conn, body.name, body.document,
                                                                       description=body.description)


@router.get("/templates", summary="Every template")
def list_templates(clarion: ClarionDep) -> dict[str, Any]:
    with clarion.store.read() as conn:
        return {"items": TemplateService().list(conn)}


@router.get("/templates/{name}/preview/{contact_id}", summary="A template rendered for one contact")
def preview_template(clarion: ClarionDep, name: PathName, contact_id: ContactId,
                     channel: Annotated[str | None, Query(max_length=16)] = None) -> dict[str, Any]:
    with clarion.store.read() as conn:
        return TemplateService(clarion.settings.default_timezone).preview(conn, name, contact_id, channel)


@router.post("/campaigns", status_code=201, summary="Create a draft campaign")
def create_campaign(clarion: ClarionDep, campaigns: Campaigns, body: CampaignBody) -> dict[str, Any]:
    with clarion.store.write() as conn:
        return campaigns.create(conn, body.model_dump(exclude_none=True))


@router.get("/campaigns", summary="Every campaign")
def list_campaigns(clarion: ClarionDep, campaigns: Campaigns) -> dict[str, Any]:
    with clarion.store.read() as conn:
        return {"items": campaigns.list(conn)}


@router.get("/campaigns/{name}", summary="A campaign with its progress: counts per state and reason, from the ledger")
def get_campaign(clarion: ClarionDep, campaigns: Campaigns, name: PathName) -> dict[str, Any]:
    with clarion.store.read() as conn:
        return {**campaigns.get(conn, name), "progress": campaigns.progress(conn, name)}


@router.post("/campaigns/{name}/schedule", summary="Schedule at an instant or at a local time in each zone")
def schedule_campaign(clarion: ClarionDep, campaigns: Campaigns, name: PathName, body: ScheduleBody) -> dict[str, Any]:
    with clarion.store.write() as conn:
        return campaigns.schedule(conn, name, body.model_dump(mode="json", exclude_none=True))


def _action(action: str, summary: str):
    def endpoint(clarion: ClarionDep, campaigns: Campaigns, name: PathName) -> dict[str, Any]:
        with clarion.store.write() as conn:
            return getattr(campaigns, action)(conn, name)

    router.post(f"/campaigns/{{name}}/{action}", summary=summary, name=f"{action}_campaign")(endpoint)


_action("send", "Start now: the audience goes into the ledger")
_action("pause", "Pause (deliveries in flight finish)")
_action("resume", "Resume a paused campaign")
_action("cancel", "Cancel: every delivery not yet sent is cancelled")


@router.post("/campaigns/{name}/trigger", status_code=202,
             summary="Send a transactional campaign to one contact (the same key twice is one delivery)")
def trigger(clarion: ClarionDep, campaigns: Campaigns, name: PathName, body: TriggerBody) -> dict[str, Any]:
    with clarion.store.write() as conn:
        return campaigns.trigger(conn, name, body.contact_id, key=body.key, data=body.data)


@router.get("/campaigns/{name}/dry-run", summary="Who would get what and when; who is skipped and why")
def dry_run(clarion: ClarionDep, name: PathName, limit: Annotated[int, Query(ge=1, le=1000)] = 20,
            at: Annotated[datetime | None, Query(description="Pretend it is this instant")] = None) -> dict[str, Any]:
    with clarion.store.read() as conn:
        return CampaignInsight(clarion.settings).dry_run(conn, name, limit=limit, at=at)


@router.get("/campaigns/{name}/why/{contact_id}", summary="Why a contact did or did not get the campaign")
def why(clarion: ClarionDep, name: PathName, contact_id: ContactId) -> dict[str, Any]:
    with clarion.store.read() as conn:
        return CampaignInsight(clarion.settings).why(conn, contact_id, name)


@router.get("/delivery-settings", summary="Workspace defaults: quiet hours, frequency caps, holdout")
def get_delivery_settings(clarion: ClarionDep) -> dict[str, Any]:
    with clarion.store.read() as conn:
        return get_defaults(conn).model_dump(mode="json")


@router.put("/delivery-settings", summary="Replace the workspace delivery defaults")
def put_delivery_settings(clarion: ClarionDep, body: dict[str, Any]) -> dict[str, Any]:
    with clarion.store.write() as conn:
        return set_defaults(conn, body).model_dump(mode="json")

"""Push devices of a contact (admin keys): FCM and APNs tokens, web push subscriptions.

``PUT`` registers or refreshes a device (the same token again is the same device; a token registered by
another contact moves to this one). A web push subscription is sent as the browser gives it:
``{"kind": "webpush", "subscription": {"endpoint": "https://...", "keys": {"p256dh": ..., "auth": ...}}}``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from ..domain.errors import FieldError, NotFound
from ..services import devices as device_service
from ..store.schema import contacts
from ..tracking.contact_tokens import MAX_TTL_SECONDS, sign_contact_token
from .auth import ClarionDep, require_admin
from .params import MAX_ID, ContactId

router = APIRouter(prefix="/api/contacts", tags=["Devices"], dependencies=[Depends(require_admin)])
DeviceId = Annotated[int, Path(ge=1, le=MAX_ID, description="A device's id")]


class SubscriptionKeys(BaseModel):
    p256dh: str = Field(max_length=200)
    auth: str = Field(max_length=100)


class Subscription(BaseModel):
    """What the browser's PushSubscription.toJSON() gives."""

    endpoint: str = Field(max_length=device_service.MAX_TOKEN)
    keys: SubscriptionKeys
    expirationTime: int | None = None  # noqa: N815 - the Push API's own name


class DeviceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["fcm", "apns", "webpush"]
    token: str | None = Field(None, max_length=device_service.MAX_TOKEN, description="FCM or APNs token")
    subscription: Subscription | None = Field(None, description="A web push subscription")
    app_id: str | None = Field(None, max_length=200)
    platform: str | None = Field(None, max_length=32)


@router.put("/{contact_id}/devices", summary="Register or refresh a device (token or web push subscription)")
def register(clarion: ClarionDep, contact_id: ContactId, body: DeviceBody) -> dict[str, Any]:
    if body.kind == "webpush":
        if body.subscription is None:
            raise FieldError("subscription", "a web push device is registered with its subscription")
        token, keys = body.subscription.endpoint, body.subscription.keys
        extra = {"p256dh": keys.p256dh, "auth": keys.auth}
    else:
        if body.token is None:
            raise FieldError("token", f"an {body.kind} device is registered with its token")
        token, extra = body.token, {}
    with clarion.store.write() as conn:
        return device_service.register(
            conn, contact_id, body.kind, token, app_id=body.app_id, platform=body.platform,
            allow_private_endpoints=clarion.settings.webpush_allow_private_endpoints, **extra)


@router.get("/{contact_id}/devices", summary="A contact's devices, live and invalidated")
def list_devices(clarion: ClarionDep, contact_id: ContactId) -> dict[str, Any]:
    with clarion.store.read() as conn:
        return {"items": device_service.list_for(conn, contact_id)}


@router.delete("/{contact_id}/devices/{device_id}", status_code=204, summary="Forget a device")
def remove(clarion: ClarionDep, contact_id: ContactId, device_id: DeviceId) -> Response:
    with clarion.store.write() as conn:
        device_service.remove(conn, contact_id, device_id)
    return Response(status_code=204)


class ClientTokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Literal["inbox", "webpush"]
    ttl_seconds: int = Field(30 * 86_400, ge=60, le=MAX_TTL_SECONDS)


@router.post("/{contact_id}/client-token",
             summary="A token the contact's own app or page uses for its inbox or web push subscription")
def client_token(clarion: ClarionDep, contact_id: ContactId, body: ClientTokenBody) -> dict[str, Any]:
    with clarion.store.read() as conn:
        if conn.execute(select(contacts.c.id).where(contacts.c.id == contact_id)).first() is None:
            raise NotFound("contact", contact_id)
    token = sign_contact_token(clarion.settings.link_secret, contact_id, body.scope, body.ttl_seconds)
    return {"token": token, "scope": body.scope, "expires_in": body.ttl_seconds}

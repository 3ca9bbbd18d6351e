"""What a business's web page needs for web push: the VAPID public key, the subscription endpoints, the
JavaScript snippet and the service worker.

The page runs on the business's own origin, not Clarion's, so every ``/webpush`` route answers CORS:
the request's ``Origin`` is echoed and preflights are answered. That is safe because nothing here rides
on cookies (no ``Access-Control-Allow-Credentials``): the public key and the scripts are public, and
the subscription routes take a contact token (``Authorization: Bearer ct1...``, scope ``webpush``) that
the business's backend handed to its signed-in user (``POST /api/contacts/{id}/client-token``).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from ..channels.webpush import application_server_key, load_vapid
from ..services import devices as device_service
from ..store.schema import devices
from .auth import ClarionDep, contact_token_for
from .cors import CorsRoute, add_preflight
from .devices import Subscription
from .errors import ApiError

SCRIPTS = ("clarion-webpush.js", "clarion-sw.js")
SCRIPT_CACHE = "public, max-age=3600"  # an hour: a new release reaches pages within the hour


router = APIRouter(prefix="/webpush", tags=["Web push"], route_class=CorsRoute)
add_preflight(router)
ContactId = Annotated[int, Depends(contact_token_for("webpush"))]


class Unsubscribe(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the whole PushSubscription JSON may be sent

    endpoint: str = Field(max_length=device_service.MAX_TOKEN)


@router.get("/vapid-public-key", summary="The applicationServerKey for pushManager.subscribe (no authentication)")
def vapid_public_key(clarion: ClarionDep) -> dict[str, str]:
    key_file = clarion.settings.webpush_vapid_private_key_file
    if not key_file:
        raise ApiError(404, "webpush_not_configured", "web push is not configured "
                                                      "(CLARION_WEBPUSH_VAPID_PRIVATE_KEY_FILE)")
    path = Path(key_file)
    return {"publicKey": _public_key(str(path), path.stat().st_mtime_ns)}


@lru_cache(maxsize=4)
def _public_key(path: str, _mtime_ns: int) -> str:  # the mtime is in the key: a replaced key file is re-read
    return application_server_key(load_vapid(Path(path).read_bytes()))


@router.post("/subscriptions", status_code=201,
             summary="Register this browser's push subscription for the token's contact")
def subscribe(clarion: ClarionDep, contact_id: ContactId, body: Subscription) -> dict[str, Any]:
    with clarion.store.write() as conn:
        device = device_service.register(
            conn, contact_id, "webpush", body.endpoint, p256dh=body.keys.p256dh, auth=body.keys.auth,
            platform="web", allow_private_endpoints=clarion.settings.webpush_allow_private_endpoints)
    return {"id": device["id"], "contact_id": contact_id, "endpoint": device["token"]}


@router.delete("/subscriptions", status_code=204, summary="Forget this browser's push subscription")
def unsubscribe(clarion: ClarionDep, contact_id: ContactId, body: Unsubscribe) -> Response:
    """Idempotent: a subscription already forgotten (or another contact's) answers 204 and changes nothing."""
    with clarion.store.write() as conn:
        found = conn.execute(select(devices.c.id).where(
            devices.c.kind == "webpush", devices.c.token == body.endpoint.strip(),
            devices.c.contact_id == contact_id)).first()
        if found is not None:
            device_service.remove(conn, contact_id, found.id)
    return Response(status_code=204)


@router.get("/{name}", summary="The page snippet (clarion-webpush.js) or the service worker (clarion-sw.js)")
def script(name: str) -> Response:
    if name not in SCRIPTS:
        raise ApiError(404, "not_found", f"no such script; there are {', '.join(SCRIPTS)}")
    return Response(_script(name), media_type="application/javascript; charset=utf-8",
                    headers={"Cache-Control": SCRIPT_CACHE})


@lru_cache(maxsize=len(SCRIPTS))
def _script(name: str) -> bytes:
    return resources.files("clarion.api").joinpath("static", name).read_bytes()

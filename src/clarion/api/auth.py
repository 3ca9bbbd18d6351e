"""API key authentication.

``/v1`` (Segment) sends the write key as the HTTP basic-auth user name with an empty password;
``/api`` takes ``Authorization: Bearer <key>`` (basic auth is accepted too). Keys are looked up
on every request, uncached, so a revocation takes effect on the next request. ``last_used_at``
is written at most once a minute per key, to keep writes (and SQLite's single writer) free.

The request gate (:mod:`.gate`) checks the key before the body is read; the key it found is kept in the
request's state, so the route's own dependency does not look it up a second time.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError

from ..bootstrap import Clarion
from ..services.keys import ApiKey
from ..tracking.contact_tokens import verify_contact_token
from ..tracking.links import InvalidLink
from .errors import ApiError

log = logging.getLogger("clarion.api")
TOUCH_INTERVAL_SECONDS = 60.0
CHALLENGE = 'Basic realm="clarion", Bearer realm="clarion"'


class _DocumentedBasic(HTTPBasic):
    """Declares basic auth in the OpenAPI document; never answers by itself (see :func:`authenticate`)."""

    async def __call__(self, request: Request) -> HTTPBasicCredentials | None:  # type: ignore[override]
        try:
            return await super().__call__(request)
        except HTTPException:
            return None


# Declared for the OpenAPI document only; the header is parsed by :func:`credentials`.
_basic = _DocumentedBasic(auto_error=False, description="The API key as the user name, empty password")
_bearer = HTTPBearer(auto_error=False, description="The API key")


def get_clarion(request: Request) -> Clarion:
    return request.app.state.clarion


def credentials(authorization: str | None) -> str | None:
    """The key from a Bearer token or from the basic-auth user name, else None."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, _password = decoded.partition(":")
        return user or None
    return None


class KeyToucher:
    """Records ``last_used_at``, throttled per key, never failing the request it rides on."""

    def __init__(self, interval: float = TOUCH_INTERVAL_SECONDS) -> None:
        self.interval = interval
        self._last: dict[int, float] = {}
        self._lock = threading.Lock()

    def __call__(self, clarion: Clarion, key: ApiKey) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key.id, -self.interval) < self.interval:
                return
            self._last[key.id] = now
        try:
            with clarion.store.write() as conn:
                clarion.keys.touch(conn, key.id)
        except SQLAlchemyError as exc:  # bookkeeping only
            log.warning("could not record the use of API key %s: %s", key.id, exc)


def authenticate(request: Request, scope: str) -> ApiKey:
    """The request's key, if it allows ``scope``; 401 without a valid key, 403 with a key of too small a scope."""
    key = getattr(request.state, "api_key", None) or _look_up(request)
    if not key.allows(scope):
        raise ApiError(403, "forbidden", f"this key has scope {key.scope!r}; {scope!r} is required")
    return key


def _look_up(request: Request) -> ApiKey:
    secret = credentials(request.headers.get("authorization"))
    if not secret:
        raise ApiError(401, "unauthorized", "an API key is required (basic auth user name or Bearer token)",
                       headers={"WWW-Authenticate": CHALLENGE})
    clarion = get_clarion(request)
    with clarion.store.read() as conn:
        key = clarion.keys.authenticate(conn, secret)
    if key is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key",
                       headers={"WWW-Authenticate": CHALLENGE})
    request.state.api_key = key
    request.app.state.key_toucher(clarion, key)
    return key


def require(scope: str) -> Callable[[Request], ApiKey]:
    """A dependency that authenticates the request and checks the key's scope."""

    def dependency(request: Request, _basic_doc: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
                   _bearer_doc: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> ApiKey:
        return authenticate(request, scope)

    dependency.__name__ = f"require_{scope}"
    return dependency


require_ingest = require("ingest")
require_admin = require("admin")
ClarionDep = Annotated[Clarion, Depends(get_clarion)]
IngestKey = Annotated[ApiKey, Depends(require_ingest)]


def contact_of(request: Request, scope: str) -> int:
    """The contact a ``Bearer ct1...`` token of ``scope`` names; 401 without a valid one."""
    token = credentials(request.headers.get("authorization"))
    if not token:
        raise ApiError(401, "unauthorized", f"a contact token of scope {scope!r} is required (Bearer)",
                       headers={"WWW-Authenticate": CHALLENGE})
    try:
        return verify_contact_token(get_clarion(request).settings.link_secret, token, scope).contact_id
    except InvalidLink as exc:
        raise ApiError(401, "unauthorized", str(exc), headers={"WWW-Authenticate": CHALLENGE}) from None


def contact_token_for(scope: str) -> Callable[[Request], int]:
    """A dependency for the customer's own app: ``Authorization: Bearer ct1...`` names one contact."""

    def dependency(request: Request,
                   _bearer_doc: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> int:
        return contact_of(request, scope)

    dependency.__name__ = f"contact_token_{scope}"
    return dependency

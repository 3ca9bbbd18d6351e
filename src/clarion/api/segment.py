"""The Segment-compatible HTTP Tracking API: ``/v1/identify``, ``/v1/track``, ``/v1/batch`` and friends.

Point a Segment SDK's ``host`` at Clarion and use an ``ingest`` key as the write key. Limits are
Segment's: 32 KB per call (and per message in a batch), 500 KB per batch; larger bodies get 413.
Each request is one transaction. A single call fails as a whole with a 4xx; in a batch, every
message is validated before anything is written (one bad message → 422 naming ``batch[i]``), and
a message whose sender was erased (410) or whose identifiers belong to two different people
(409) is skipped and counted in ``skipped``, so one such sender does not make an SDK drop the
events of everyone else in the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import Connection

from ..bootstrap import Clarion
from ..domain.errors import Conflict, Erased, FieldError
from ..services.clock import utcnow
from ..services.ingestion import IdentifyCall, TrackCall
from .auth import ClarionDep, IngestKey
from .body import KB, json_size, read_json_object, too_large
from .segment_messages import (
    BatchBody,
    IdentifyMessage,
    PageMessage,
    Parser,
    SegmentMessage,
    TrackMessage,
    validate,
)

log = logging.getLogger("clarion.api")
MAX_CALL = 32 * KB
MAX_BATCH = 500 * KB
Call = IdentifyCall | TrackCall

router = APIRouter(prefix="/v1", tags=["Segment tracking API"])


async def call_body(request: Request) -> dict[str, Any]:
    return await read_json_object(request, MAX_CALL)


async def batch_body(request: Request) -> dict[str, Any]:
    return await read_json_object(request, MAX_BATCH)


CallJson = Annotated[dict[str, Any], Depends(call_body)]
BatchJson = Annotated[dict[str, Any], Depends(batch_body)]


def _doc(model: type) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _parser(clarion: Clarion, sent_at: str | None = None) -> Parser:
    return Parser(received_at=utcnow(), default_region=clarion.settings.default_phone_region,
                  batch_sent_at=sent_at)


def _single(clarion: Clarion, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    call = _parser(clarion).parse(kind, body)
    if call is not None:
        with clarion.store.write() as conn:
            _apply(clarion, conn, [call])
    return {"success": True}


@router.post("/identify", summary="Identify a user (create or update a contact)",
             openapi_extra=_doc(IdentifyMessage))
def identify(clarion: ClarionDep, _key: IngestKey, body: CallJson) -> dict[str, Any]:
    return _single(clarion, "identify", body)


@router.post("/track", summary="Record an event", openapi_extra=_doc(TrackMessage))
def track(clarion: ClarionDep, _key: IngestKey, body: CallJson) -> dict[str, Any]:
    return _single(clarion, "track", body)


@router.post("/page", summary="Record a page view (event 'Page Viewed')", openapi_extra=_doc(PageMessage))
def page(clarion: ClarionDep, _key: IngestKey, body: CallJson) -> dict[str, Any]:
    return _single(clarion, "page", body)


@router.post("/screen", summary="Record a screen view (event 'Screen Viewed')",
             openapi_extra=_doc(PageMessage))
def screen(clarion: ClarionDep, _key: IngestKey, body: CallJson) -> dict[str, Any]:
    return _single(clarion, "screen", body)


@router.post("/group", summary="Accepted and ignored", openapi_extra=_doc(SegmentMessage))
@router.post("/alias", summary="Accepted and ignored", openapi_extra=_doc(SegmentMessage))
def ignored(clarion: ClarionDep, _key: IngestKey, body: CallJson) -> dict[str, Any]:
    _parser(clarion).parse("group", body)
    return {"success": True}


@router.post("/batch", summary="Several messages of any type in one request", openapi_extra=_doc(BatchBody))
@router.post("/import", summary="Alias of /v1/batch", openapi_extra=_doc(BatchBody))
def batch(clarion: ClarionDep, _key: IngestKey, body: BatchJson) -> dict[str, Any]:
    envelope = validate(BatchBody, body)
    calls = parse_batch(_parser(clarion, envelope.sent_at), envelope.batch)
    with clarion.store.write() as conn:
        skipped = apply_tolerant(clarion, conn, calls)
    return {"success": True, "skipped": skipped}


def parse_batch(parser: Parser, items: Sequence[dict[str, Any]]) -> list[Call]:
    calls = []
    for index, item in enumerate(items):
        try:
            if json_size(item) > MAX_CALL:
                raise too_large(MAX_CALL, f"message batch[{index}]")
            kind = item.get("type")
            if not isinstance(kind, str) or not kind:
                raise FieldError("type", "each message in a batch needs a type")
            call = parser.parse(kind.strip().lower(), item)
        except FieldError as exc:
            raise FieldError(f"batch[{index}].{exc.field}", exc.reason) from None
        if call is not None:
            calls.append(call)
    return calls


def _runs(calls: Sequence[Call]) -> Iterator[list[Call]]:
    """Consecutive tracks together (one idempotent insert), each identify alone, in order."""
    run: list[Call] = []
    for call in calls:
        if isinstance(call, IdentifyCall) or (run and isinstance(run[0], IdentifyCall)):
            if run:
                yield run
            run = []
        run.append(call)
    if run:
        yield run


def _apply(clarion: Clarion, conn: Connection, run: Sequence[Call]) -> None:
    if isinstance(run[0], IdentifyCall):
        clarion.ingestion.identify(conn, run[0])
    else:
        clarion.ingestion.track(conn, run)


def apply_tolerant(clarion: Clarion, conn: Connection, calls: Sequence[Call]) -> int:
    """Apply the calls in order, each run in a savepoint; skip the senders refused. The number skipped."""
    skipped = 0
    for run in _runs(calls):
        try:
            with conn.begin_nested():
                _apply(clarion, conn, run)
            continue
        except (Erased, Conflict) as exc:
            if len(run) == 1:
                log.info("batch message skipped: %s", exc)
                skipped += 1
                continue
        for call in run:  # find which of the tracks were refused
            try:
                with conn.begin_nested():
                    _apply(clarion, conn, [call])
            except (Erased, Conflict) as exc:
                log.info("batch message skipped: %s", exc)
                skipped += 1
    return skipped

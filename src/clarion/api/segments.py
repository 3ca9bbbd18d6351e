"""The native REST API for segments (admin keys): definitions, live preview and explanation, refresh.

The same semantics as ``clarion segments``: a rule is given in the text form (a JSON string) or the JSON
form (an object); an invalid rule answers 422 ``invalid_rule`` naming where it is wrong (``line`` and
``column`` for the text form, ``path`` for the JSON form), and a value outside a field's closed set
(``rfm.segment = "champion"``) is invalid too. Create, update, preview and count answer ``warnings``: events
the rule names that have never been seen, topics that do not exist (the rule is still accepted). Membership
is materialised by ``refresh``; ``changes`` lists who entered and who left, oldest first, for pollers such
as journeys.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ..domain.rules import MAX_CONDITIONS
from ..services.segments import MAX_NAME, SegmentService, parse_any
from .auth import ClarionDep, require_admin
from .params import MAX_ID, ContactId, Offset

router = APIRouter(prefix="/api/segments", tags=["Segments"], dependencies=[Depends(require_admin)])

MAX_RULE_TEXT = 100_000  # characters; MAX_CONDITIONS conditions fit easily
MAX_SAMPLE = 1_000
MAX_LIST = 10_000
MAX_REFRESH_MINUTES = 527_040  # a leap year: a longer schedule is no schedule

# Names are stripped as the service strips them, so "  " is refused here as an empty name. A "/" would make
# the segment unreachable at /api/segments/{name}.
SegmentName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME,
                                               pattern=r"^[^/]*$")]
RuleText = Annotated[str, StringConstraints(max_length=MAX_RULE_TEXT)]
RuleInput = RuleText | dict[str, Any]
RULE_DOC = (f"The rule: its text form as a string ('country = \"US\" and orders.count >= 2') or its JSON form as "
            f"an object ({{\"field\": \"country\", \"op\": \"eq\", \"value\": \"US\"}}); at most {MAX_CONDITIONS} "
            f"conditions")
RefreshMinutes = Annotated[int, Field(ge=0, le=MAX_REFRESH_MINUTES,
                                      description="Refresh fully every N minutes; 0: on demand only")]
PathName = Annotated[str, Path(min_length=1, max_length=1000, description="The segment's name")]
ListLimit = Annotated[int, Query(ge=1, le=MAX_LIST, description=f"Page size, 1..{MAX_LIST}")]


class SegmentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SegmentName
    rule: RuleInput = Field(description=RULE_DOC)
    description: str | None = Field(None, max_length=10_000)
    refresh_minutes: RefreshMinutes | None = None


class SegmentPatch(BaseModel):
    """Only the fields given change; ``refresh_minutes: 0`` clears the schedule."""

    model_config = ConfigDict(extra="forbid")

    rule: RuleInput | None = Field(None, description=RULE_DOC)
    description: str | None = Field(None, max_length=10_000)
    refresh_minutes: RefreshMinutes | None = None


class PreviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: RuleInput = Field(description=RULE_DOC)
    sample: int = Field(10, ge=0, le=MAX_SAMPLE, description="How many matching contacts to show")


def service(clarion: ClarionDep) -> SegmentService:
    return SegmentService(clarion.settings)


Segments = Annotated[SegmentService, Depends(service)]


@router.get("", summary="Every segment, with its rule (JSON and text) and materialised size")
def list_segments(clarion: ClarionDep, segments: Segments) -> dict[str, Any]:
    with clarion.store.read() as conn:
        return {"items": segments.list(conn)}


@router.post("", status_code=201, summary="Create a segment (fields, referenced segments and cycles are checked)")
def create(clarion: ClarionDep, segments: Segments, body: SegmentBody) -> dict[str, Any]:
    rule = parse_any(body.rule)  # before the transaction: a bad rule holds no write lock
    with clarion.store.write() as conn:
        return segments.create(conn, body.name, rule, description=body.description,
                               refresh_minutes=body.refresh_minutes or None)


@router.post("/preview", summary="Count and sample the contacts an unsaved rule matches now")
def preview(clarion: ClarionDep, segments: Segments, body: PreviewBody) -> dict[str, Any]:
    rule = parse_any(body.rule)
    with clarion.store.read() as conn:
        return segments.preview(conn, rule, sample=body.sample)


@router.get("/{name}", summary="One segment")
def get(clarion: ClarionDep, segments: Segments, name: PathName) -> dict[str, Any]:
    with clarion.store.read() as conn:
        return segments.get(conn, name)


@router.patch("/{name}", summary="Change a segment's rule, description or schedule")
def patch(clarion: ClarionDep, segments: Segments, name: PathName, body: SegmentPatch) -> dict[str, Any]:
    rule = None if body.rule is None else parse_any(body.rule)
    with clarion.store.write() as conn:
        return segments.update(conn, name, rule=rule, description=body.description,
                               refresh_minutes=body.refresh_minutes)


@router.delete("/{name}", status_code=204, summary="Delete a segment (409 while another segment's rule uses it)")
def delete(clarion: ClarionDep, segments: Segments, name: PathName) -> Response:
    with clarion.store.write() as conn:
        segments.delete(conn, name)
    return Response(status_code=204)


@router.get("/{name}/count", summary="How many contacts match the rule now (live, not the materialised members)")
def count(clarion: ClarionDep, segments: Segments, name: PathName) -> dict[str, Any]:
    with clarion.store.read() as conn:
        return segments.count(conn, name)


@router.get("/{name}/explain/{contact_id}",
            summary="Why a contact is or is not in the segment: each condition, whether it holds, the values")
def explain(clarion: ClarionDep, segments: Segments, name: PathName, contact_id: ContactId) -> dict[str, Any]:
    with clarion.store.read() as conn:
        return segments.explain(conn, name, contact_id)


@router.post("/{name}/refresh", summary="Materialise membership and record who entered and who left")
def refresh(clarion: ClarionDep, segments: Segments, name: PathName,
            incremental: Annotated[bool, Query(description="Only contacts whose data changed since the last "
                                                           "refresh")] = False) -> dict[str, Any]:
    with clarion.store.write() as conn:
        return segments.refresh(conn, name, incremental=incremental).as_dict()


@router.get("/{name}/members", summary="The materialised members' contact ids, in id order")
def members(clarion: ClarionDep, segments: Segments, name: PathName, limit: ListLimit = 100,
            offset: Offset = 0) -> dict[str, Any]:
    with clarion.store.read() as conn:
        items = segments.members(conn, name, limit=limit, offset=offset)
    return {"segment": name, "limit": limit, "offset": offset, "items": items}


@router.get("/{name}/changes", summary="Who entered and who left, oldest first; poll with after=next_after")
def changes(clarion: ClarionDep, segments: Segments, name: PathName,
            after: Annotated[int, Query(ge=0, le=MAX_ID, description="Only changes with a larger id")] = 0,
            limit: ListLimit = 100) -> dict[str, Any]:
    with clarion.store.read() as conn:
        items = segments.changes(conn, name, after_id=after, limit=limit)
    return {"segment": name, "after": after, "limit": limit, "items": items,
            "next_after": items[-1]["id"] if items else after}


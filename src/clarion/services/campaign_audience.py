"""Putting a campaign's audience in the ledger: one queued delivery per contact, with its due time.

The audience is the segment's rule evaluated when the campaign starts (not the last materialised
membership, which may be hours old); each contact is checked again by the policy chain when its
message is about to go. For a local-time send ("10:00 in each recipient's zone") the due time is
computed once per distinct zone, in SQL, so a million recipients cost a few hundred statements at most;
a contact without a valid zone uses the workspace default zone. A zone whose local time has already
passed when the campaign starts gets its messages at once.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, case, func, literal, select

from ..domain.campaigns import Schedule
from ..domain.errors import FieldError, NotFound
from ..domain.profiles import zoneinfo
from ..domain.sending_time import local_instant
from ..segments.compiler import compile_rule
from ..segments.rule_json import rule_from_json
from ..store.schema import contacts
from ..store.schema_delivery import deliveries
from ..store.schema_scores import segments
from ..store.sql import insert_for
from ..store.types import UtcDateTime

MAIN_STEP = "main"
# The first local midnight on Earth: Pacific/Kiritimati is UTC+14, so a local-time send starts there.
EARLIEST_ZONE = ZoneInfo("Pacific/Kiritimati")
# The last: UTC-12 (Baker Island; IANA's Etc names invert the sign). A local time past here is past everywhere.
LATEST_ZONE = ZoneInfo("Etc/GMT+12")
MAX_KEY = 100  # characters of a caller's idempotency key


def start_time(plan: Schedule, now: datetime) -> datetime:
    if plan.mode == "at" and plan.at is not None:
        return plan.at
    if plan.mode == "local" and plan.date is not None and plan.time is not None:
        return local_instant(plan.date, plan.time, EARLIEST_ZONE)
    return now


def local_send_time(plan: Schedule, zone: str | None, default_timezone: str) -> datetime:
    """The instant of a local-time plan in one zone (a contact without a valid zone: the workspace's)."""
    return local_instant(plan.date, plan.time, zoneinfo(zone, default_timezone))


def enqueue_audience(conn: Connection, campaign: Any, segment_service: Any, default_timezone: str,
                     now: datetime) -> int:
    """Inserts one queued delivery per member of the campaign's segment; returns how many."""
    audience = _audience(conn, campaign, segment_service)
    plan = Schedule.model_validate(campaign.schedule or {})
    if plan.mode != "local":
        due = max(plan.at, now) if plan.mode == "at" and plan.at else now
        return _insert(conn, campaign, select(audience.c[0], literal(due, UtcDateTime())))
    members = contacts.c.id.in_(select(audience.c[0]))
    # One due time per distinct zone, mapped in SQL: the audience is evaluated twice, not once per zone.
    zones = conn.execute(select(contacts.c.timezone).where(members).group_by(contacts.c.timezone)).scalars().all()

    def due_in(name: str | None) -> datetime:
        return max(local_send_time(plan, name, default_timezone), now)

    per_zone = {name: literal(due_in(name), UtcDateTime()) for name in zones if name is not None}
    otherwise = literal(due_in(None), UtcDateTime())  # no zone: the workspace default
    due_at = case(per_zone, value=contacts.c.timezone, else_=otherwise) if per_zone else otherwise
    return _insert(conn, campaign, select(contacts.c.id, due_at).where(members))


def passed_locally(conn: Connection, campaign: Any, segment_service: Any, default_timezone: str, plan: Schedule,
                   now: datetime) -> tuple[int, int]:
    """(members whose local time in ``plan`` has already passed, members): the first get it at once."""
    members = contacts.c.id.in_(select(_audience(conn, campaign, segment_service).c[0]))
    per_zone = conn.execute(select(contacts.c.timezone, func.count()).where(members)
                            .group_by(contacts.c.timezone)).all()
    passed = sum(count for zone, count in per_zone
                 if local_send_time(plan, zone, default_timezone) < now)
    return passed, sum(count for _zone, count in per_zone)


def _audience(conn: Connection, campaign: Any, segment_service: Any):
    """The members of the campaign's segment, by its rule as it is now (a subquery of contact ids)."""
    rule_json = conn.execute(select(segments.c.rule).where(segments.c.id == campaign.segment_id)).scalar()
    if rule_json is None:
        raise NotFound("segment of campaign", campaign.name)
    return compile_rule(rule_from_json(rule_json), segment_service.context(conn)).subquery()


def _insert(conn: Connection, campaign: Any, members_and_due) -> int:
    """Inserts a queued delivery for each (contact id, due time) row of ``members_and_due``."""
    source = members_and_due.subquery()
    contact_id, due = source.c[0], source.c[1]
    query = select(literal(campaign.id), literal(MAIN_STEP), contact_id, literal(campaign.channel),
                   literal("queued"), due, literal(0), literal(bool(campaign.marketing)), due)
    insert = deliveries.insert().from_select(
        ["campaign_id", "step", "contact_id", "channel", "status", "due_at", "attempts", "marketing", "created_at"],
        query)
    # psycopg reports -1 for INSERT ... SELECT unless asked to keep the count.
    return conn.execute(insert.execution_options(preserve_rowcount=True)).rowcount


def enqueue_one(conn: Connection, campaign: Any, contact_id: int, *, key: str | None, data: dict | None,
                now: datetime) -> dict[str, Any]:
    """A transactional delivery; a repeated ``key`` returns the first delivery instead of a second one."""
    if key is not None and (not key.strip() or len(key) > MAX_KEY):
        raise FieldError("key", f"1 to {MAX_KEY} characters")
    exists = conn.execute(select(contacts.c.id).where(contacts.c.id == contact_id)).first()
    if exists is None:
        raise NotFound("contact", contact_id)
    step = f"tx:{key or uuid.uuid4().hex}"
    statement = insert_for(conn, deliveries).values(
        campaign_id=campaign.id, step=step, contact_id=contact_id, channel=campaign.channel, status="queued",
        due_at=now, attempts=0, marketing=bool(campaign.marketing), data=data or None, created_at=now)
    inserted = conn.execute(statement.on_conflict_do_nothing(
        index_elements=["campaign_id", "step", "contact_id", "channel"])).rowcount
    row = conn.execute(select(deliveries).where(
        deliveries.c.campaign_id == campaign.id, deliveries.c.step == step, deliveries.c.contact_id == contact_id,
        deliveries.c.channel == campaign.channel)).one()
    return {"delivery_id": row.id, "status": row.status, "step": row.step, "created": inserted == 1}


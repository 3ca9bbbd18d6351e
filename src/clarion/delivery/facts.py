"""Loading what the policy chain needs for a batch of deliveries, in a handful of queries.

Consent follows the very rule segments use for ``reachable(...)`` (``segments.reachable.consent_allows``
is the Python twin of its SQL, and a test checks they agree), so a segment of reachable contacts and the
sends to it can never disagree; the batch's consent rows are read by primary key, which stays fast on
any table size and statistics. The eligibility rule is compiled
by the segment compiler, scoped to the batch's contacts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from ..channels.base import PushTarget
from ..content.context import CONTACT_FIELDS
from ..domain.consent import ADDRESS_OF_CHANNEL, ALL_TOPICS
from ..domain.events import WHATSAPP_MESSAGE_RECEIVED
from ..domain.profiles import zoneinfo
from ..domain.rules import Rule
from ..segments.compiler import CompileContext, compile_rule
from ..segments.reachable import DEVICE_KINDS, PHONE_CHANNELS, consent_allows
from ..store.schema import consents, contacts, devices, events, suppressions, topics
from ..store.schema_delivery import deliveries
from .policies import Recipient

# Caps look back at most this far (hours): the longest rolling window allowed, plus a local day.
LONGEST_CAP_WINDOW = timedelta(days=367)
# A push goes to this many of a contact's newest live devices: enough for phone, tablet and browsers, while
# a contact with hundreds of stale registrations cannot turn one message into hundreds of requests.
MAX_DEVICES_PER_CONTACT = 10


@dataclass(frozen=True)
class BatchScope:
    """The campaign side of a batch: what to load facts for."""

    campaign_id: int
    channel: str
    topic: str | None
    marketing: bool
    eligibility: Rule | None
    default_timezone: str
    cap_lookback: timedelta | None  # None: no caps apply, so sends need not be loaded


def load_contacts(conn: Connection, contact_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    columns = [contacts.c[name] for name in CONTACT_FIELDS] + [contacts.c.merged_into]
    rows = conn.execute(select(*columns).where(contacts.c.id.in_(contact_ids)))
    return {row.id: dict(row._mapping) for row in rows}


def recipients(conn: Connection, scope: BatchScope, rows: Sequence[Any], profiles: Mapping[int, dict],
               now: datetime, compile_context: CompileContext | None) -> dict[int, Recipient]:
    """One :class:`Recipient` per delivery id of ``rows`` (deliveries of one campaign and channel)."""
    ids = sorted({row.contact_id for row in rows if row.contact_id in profiles})
    targets: dict[int, tuple[PushTarget, ...]] = {}
    if scope.channel in DEVICE_KINDS:
        targets = device_targets(conn, scope.channel, ids)
        addresses = {cid: found[0].token for cid, found in targets.items()}
    else:
        addresses = {cid: _address(scope.channel, profiles[cid]) for cid in ids}
    inbound = _last_inbound(conn, ids) if scope.channel == "whatsapp" else {}
    suppressed = suppressions_of(conn, scope.channel, addresses)
    consenting = _consenting(conn, scope, ids)
    eligible = _eligible(conn, scope.eligibility, ids, compile_context)
    recent = _recent_sends(conn, ids, now - scope.cap_lookback) if scope.cap_lookback else {}
    # Another contact got this very message (same step) at this address: a shared mailbox gets it once.
    taken = _addresses_taken(conn, scope, [row.id for row in rows], set(ids), set(addresses.values()) - {None})
    result = {}
    for row in rows:
        profile = profiles.get(row.contact_id) if row.contact_id is not None else None
        if profile is None:
            result[row.id] = Recipient(row.contact_id, exists=False)
            continue
        address = addresses.get(row.contact_id)
        result[row.id] = Recipient(
            contact_id=row.contact_id, merged=profile["merged_into"] is not None,
            zone=zoneinfo(profile.get("timezone"), scope.default_timezone), address=address,
            suppression=suppressed.get(address), consented=row.contact_id in consenting,
            eligible=row.contact_id in eligible,
            duplicate=any(step == row.step and owner != row.contact_id for step, owner in taken.get(address, ())),
            recent=tuple(recent.get(row.contact_id, ())), targets=targets.get(row.contact_id, ()),
            last_inbound_at=inbound.get(row.contact_id))
    return result


def _address(channel: str, profile: Mapping[str, Any]) -> str | None:
    if channel == "email":
        return profile.get("email")
    if channel in PHONE_CHANNELS:
        return profile.get("phone")
    # The inbox and the business's own webhook are reached through the contact itself, not an address.
    return f"contact:{profile['id']}" if channel in ("inapp", "webhook") else None


def device_targets(conn: Connection, channel: str, ids: Sequence[int]) -> dict[int, tuple[PushTarget, ...]]:
    """For push channels, the "address" is the set of live devices, newest first (the newest names it)."""
    d = devices.c
    found: dict[int, list[PushTarget]] = defaultdict(list)
    rows = conn.execute(select(d.contact_id, d.kind, d.token, d.p256dh, d.auth, d.platform, d.app_id).where(
        d.contact_id.in_(ids), d.kind.in_(DEVICE_KINDS[channel]), d.invalidated_at.is_(None))
        .order_by(d.contact_id, d.last_seen_at.desc(), d.id.desc()))
    for row in rows:
        mine = found[row.contact_id]
        if len(mine) < MAX_DEVICES_PER_CONTACT:
            mine.append(PushTarget(kind=row.kind, token=row.token, p256dh=row.p256dh, auth=row.auth,
                                   platform=row.platform, app_id=row.app_id))
    return {cid: tuple(mine) for cid, mine in found.items()}


def _last_inbound(conn: Connection, ids: Sequence[int]) -> dict[int, datetime]:
    """WhatsApp: when each contact last wrote to us (the start of the 24-hour customer-service window)."""
    if not ids:
        return {}
    rows = conn.execute(select(events.c.contact_id, func.max(events.c.occurred_at)).where(
        events.c.contact_id.in_(ids), events.c.name == WHATSAPP_MESSAGE_RECEIVED).group_by(events.c.contact_id))
    return {contact_id: at for contact_id, at in rows}


def suppressions_of(conn: Connection, channel: str, addresses: Mapping[int, str | None]) -> dict[str, str]:
    """The suppression reason of each suppressed address among ``addresses`` (email, or phone channels)."""
    kind = ADDRESS_OF_CHANNEL.get(channel)
    wanted = sorted({a for a in addresses.values() if a})
    if kind is None or not wanted:
        return {}
    rows = conn.execute(select(suppressions.c.address, suppressions.c.reason).where(
        suppressions.c.kind == kind, suppressions.c.address.in_(wanted)))
    return {row.address: row.reason for row in rows}


def _consenting(conn: Connection, scope: BatchScope, ids: Sequence[int]) -> set[int]:
    """The batch's contacts whose consent allows the message: the rows are read by primary key, then judged
    by ``segments.reachable.consent_allows``, the Python twin of the SQL that segments use."""
    if not scope.marketing or not ids:
        return set()
    return consenting(conn, scope.channel, scope.topic, ids)


def consenting(conn: Connection, channel: str, topic: str | None, ids: Sequence[int]) -> set[int]:
    """Those of ``ids`` whose consent to ``channel`` (and ``topic``) allows a marketing message."""
    topics_wanted = [ALL_TOPICS] + ([topic] if topic else [])
    states: dict[int, dict[str, str]] = defaultdict(dict)
    for row in conn.execute(select(consents.c.contact_id, consents.c.topic, consents.c.status).where(
            consents.c.contact_id.in_(ids), consents.c.channel == channel, consents.c.topic.in_(topics_wanted))):
        states[row.contact_id][row.topic] = row.status
    double_opt_in = bool(topic and conn.execute(select(topics.c.double_opt_in).where(topics.c.key == topic)).scalar())
    return {cid for cid in ids if consent_allows(states.get(cid, {}), topic, double_opt_in)}


def _eligible(conn: Connection, rule: Rule | None, ids: Sequence[int],
              context: CompileContext | None) -> set[int] | _Everyone:
    if rule is None or not ids:
        return _EVERYONE
    assert context is not None, "an eligibility rule needs a compile context"
    scoped = CompileContext(now=context.now, default_timezone=context.default_timezone,
                            resolve_segment=context.resolve_segment, bucket_salt_prefix=context.bucket_salt_prefix,
                            scope=select(contacts.c.id).where(contacts.c.id.in_(ids)))
    return set(conn.execute(compile_rule(rule, scoped).where(contacts.c.id.in_(ids))).scalars())


class _Everyone:
    def __contains__(self, item: object) -> bool:
        return True


_EVERYONE = _Everyone()


def _recent_sends(conn: Connection, ids: Sequence[int], since: datetime) -> dict[int, list[tuple[datetime, str]]]:
    """Marketing messages sent since ``since``, and those in flight (leased) counted as sent now."""
    d = deliveries.c
    found: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    rows = conn.execute(select(d.contact_id, d.channel, d.status, d.sent_at, d.due_at).where(
        d.contact_id.in_(ids), d.marketing.is_(True),
        or_(and_(d.status == "sent", d.sent_at >= since), d.status == "leased")))
    for row in rows:
        # A leased row's due_at is its lease expiry: it counts as sent at the latest then.
        found[row.contact_id].append((row.sent_at or row.due_at, row.channel))
    return found


def _addresses_taken(conn: Connection, scope: BatchScope, batch_ids: Sequence[int], batch_contacts: set[int],
                     wanted: set[str]) -> dict[str, list[tuple[str, int]]]:
    """For addresses of this batch: the (step, contact) of the campaign's deliveries to *other* contacts with
    the same address, sent or being sent.

    The address index is asked first: usually no other contact shares an address, and then the ledger is
    not read at all, so the cost does not grow with the deliveries already sent.
    """
    if scope.channel != "email" and scope.channel not in PHONE_CHANNELS or not wanted:
        return {}
    column = contacts.c.email if scope.channel == "email" else contacts.c.phone
    owners = conn.execute(select(contacts.c.id, column).where(column.in_(sorted(wanted)))).all()
    others = {contact_id: address for contact_id, address in owners if contact_id not in batch_contacts}
    found: dict[str, list[tuple[str, int]]] = defaultdict(list)
    if others:
        d = deliveries.c
        rows = conn.execute(select(d.contact_id, d.step).where(
            d.contact_id.in_(sorted(others)), d.campaign_id == scope.campaign_id, d.channel == scope.channel,
            d.status.in_(("sent", "leased")), d.id.not_in(batch_ids)))
        for contact_id, step in rows:
            found[others[contact_id]].append((step, contact_id))
    # Contacts of this batch sharing an address with each other are handled by the dispatcher, row by row.
    return found

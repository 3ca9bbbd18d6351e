"""``reachable(channel, topic = ...)``: the contact can be messaged on a channel, now.

Three facts, all required (the delivery policy applies the same rule):

1. **An address for the channel**: email → ``contacts.email``; sms, whatsapp, voice → ``contacts.phone``;
   push → a ``devices`` row of kind fcm or apns with ``invalidated_at`` NULL; webpush → a ``devices`` row of
   kind webpush not invalidated; inapp → always (the app shows the message when the contact opens it).
2. **Not suppressed**: no ``suppressions`` row of the address's kind (email; phone for sms, whatsapp and
   voice) whose ``address`` equals it. Both sides are normalised (lower-cased email, E.164 phone).
   Suppressions of erased people keep only the hash, but their addresses cannot come back (tombstones).
3. **Consent** (``consents``, the current state; topic ``*`` is the channel as a whole):

   - without a topic: the channel-level consent is ``opted_in``;
   - with a topic: the channel-level consent is not ``opted_out`` (an opt-out of the channel always wins)
     and either the (channel, topic) consent is ``opted_in``, or there is no row for that topic, the
     channel-level consent is ``opted_in`` and the topic is not double opt-in (``topics.double_opt_in``;
     a topic key with no ``topics`` row counts as not double opt-in). ``pending_confirmation`` is not consent.

``webhook`` is refused: it reaches the business's own endpoint, not the contact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, and_, exists, false, func, not_, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from ..domain.consent import ALL_TOPICS, ConsentStatus
from ..domain.rules import Reachable, RuleError
from ..store.schema import consents, contacts, devices, suppressions, topics
from .suggest import did_you_mean

PHONE_CHANNELS = ("sms", "whatsapp", "voice")
DEVICE_KINDS = {"push": ("fcm", "apns"), "webpush": ("webpush",)}
CHANNELS = ("email", *PHONE_CHANNELS, *DEVICE_KINDS, "inapp")


def reachable(node: Reachable) -> ColumnElement:
    if node.channel not in CHANNELS:
        raise RuleError(f"reachable() takes one of: {', '.join(CHANNELS)}, not {node.channel!r}"
                        f"{did_you_mean(node.channel, CHANNELS)}", "channel")
    return and_(has_address(node.channel), not_(suppressed(node.channel)), consented(node.channel, node.topic))


def _address_column(channel: str) -> ColumnElement | None:
    if channel == "email":
        return contacts.c.email
    return contacts.c.phone if channel in PHONE_CHANNELS else None


def has_address(channel: str) -> ColumnElement:
    column = _address_column(channel)
    if column is not None:
        return column.is_not(None)
    if channel in DEVICE_KINDS:
        return contacts.c.id.in_(select(devices.c.contact_id).where(
            devices.c.kind.in_(DEVICE_KINDS[channel]), devices.c.invalidated_at.is_(None)))
    return true()  # inapp


def suppressed(channel: str) -> ColumnElement:
    """EXISTS, so never NULL, even for a contact without the address."""
    column = _address_column(channel)
    if column is None:
        return false()
    kind = "email" if channel == "email" else "phone"
    return exists().where(suppressions.c.kind == kind, suppressions.c.address == column)


def consented(channel: str, topic: str | None) -> ColumnElement:
    channel_in = _consent(channel, ALL_TOPICS, ConsentStatus.OPTED_IN)
    if topic is None:
        return channel_in
    channel_out = _consent(channel, ALL_TOPICS, ConsentStatus.OPTED_OUT)
    topic_in = _consent(channel, topic, ConsentStatus.OPTED_IN)
    topic_row = _consent(channel, topic, None)
    double_opt_in = exists().where(topics.c.key == topic, topics.c.double_opt_in == true())
    return and_(not_(channel_out), or_(topic_in, and_(not_(topic_row), channel_in, not_(double_opt_in))))


def consent_allows(states: Mapping[str, str], topic: str | None, topic_double_opt_in: bool) -> bool:
    """:func:`consented` in Python, for one contact: ``states`` maps topic (``*`` for the channel) to status.

    The delivery policy evaluates consent for a batch from the rows it loaded; a test checks this agrees
    with the SQL of :func:`consented` on every combination of states.
    """
    channel_state = states.get(ALL_TOPICS)
    if topic is None:
        return channel_state == ConsentStatus.OPTED_IN
    if channel_state == ConsentStatus.OPTED_OUT:
        return False
    if topic in states:
        return states[topic] == ConsentStatus.OPTED_IN
    return channel_state == ConsentStatus.OPTED_IN and not topic_double_opt_in


def _consent(channel: str, topic: str, status: ConsentStatus | None) -> ColumnElement:
    c = consents.c
    query = select(c.contact_id).where(c.channel == channel, c.topic == topic)
    if status is not None:
        query = query.where(c.status == status.value)
    return contacts.c.id.in_(query)


def reachability_facts(conn: Connection, node: Reachable, contact_id: int) -> dict[str, Any]:
    """What decided ``reachable`` for one contact: the address, suppression and consent states."""
    facts: dict[str, Any] = {"channel": node.channel}
    column = _address_column(node.channel)
    if column is not None:
        facts["address"] = conn.execute(select(column).where(contacts.c.id == contact_id)).scalar()
        facts["suppressed"] = bool(conn.execute(select(suppressed(node.channel)).where(
            contacts.c.id == contact_id)).scalar())
    elif node.channel in DEVICE_KINDS:
        facts["active_devices"] = conn.execute(select(func.count()).select_from(devices).where(
            devices.c.contact_id == contact_id, devices.c.kind.in_(DEVICE_KINDS[node.channel]),
            devices.c.invalidated_at.is_(None))).scalar_one()
    states = {row.topic: row.status for row in conn.execute(select(consents.c.topic, consents.c.status).where(
        consents.c.contact_id == contact_id, consents.c.channel == node.channel))}
    facts["channel_consent"] = states.get(ALL_TOPICS)
    if node.topic is not None:
        facts["topic"] = node.topic
        facts["topic_consent"] = states.get(node.topic)
        facts["topic_double_opt_in"] = bool(conn.execute(select(topics.c.double_opt_in).where(
            topics.c.key == node.topic)).scalar())
    return facts

"""Warnings about a valid rule that names something the store has never seen, said where a rule is accepted.

Not errors: a rule may be written before the first such event arrives or the topic is created.

- **Events.** ``performed``, ``first_performed``/``last_performed`` and the metrics name an event exactly, case
  included, so ``performed("order completed")`` matches nobody when the events are "Order Completed". A name
  is looked up with one seek of the ``events (name, occurred_at, contact_id)`` index; only on a miss are the
  distinct names read, by a loose index scan (one seek per distinct name, never a scan of the events), and
  the closest one suggested.
- **Topics.** ``reachable(channel, topic = ...)`` with a topic that does not exist goes by the channel's
  consent alone (a topic without a row is not double opt-in and nobody can have consented to it).
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from ..domain.consent import ALL_TOPICS
from ..domain.rules import EventMetric, EventTime, Performed, Reachable, Rule, walk
from ..segments.suggest import did_you_mean
from ..store.schema import events, topics

MAX_KNOWN_NAMES = 10_000  # distinct event names or topics read to suggest from; each costs one index seek


def rule_warnings(conn: Connection, rule: Rule) -> list[str]:
    """One line per event or topic the rule names that the store does not know, in the rule's order."""
    return [*_event_warnings(conn, rule), *_topic_warnings(conn, rule)]


def _event_warnings(conn: Connection, rule: Rule) -> list[str]:
    named = dict.fromkeys(node.event for node, _ in walk(rule) if isinstance(node, Performed | EventTime | EventMetric))
    unseen = [name for name in named if not event_seen(conn, name)]
    if not unseen:
        return []
    known = event_names(conn)
    return [f"no event named {name!r} has been seen{did_you_mean(name, known) or ' yet'}" for name in unseen]


def _topic_warnings(conn: Connection, rule: Rule) -> list[str]:
    named = dict.fromkeys(node.topic for node, _ in walk(rule)
                          if isinstance(node, Reachable) and node.topic not in (None, ALL_TOPICS))
    if not named:
        return []
    existing = set(conn.execute(select(topics.c.key).where(topics.c.key.in_(named))).scalars())
    missing = [topic for topic in named if topic not in existing]
    if not missing:
        return []
    known = list(conn.execute(select(topics.c.key).order_by(topics.c.key).limit(MAX_KNOWN_NAMES)).scalars())
    return [f"no topic {topic!r} exists, so reachable() goes by the channel's consent alone"
            f"{did_you_mean(topic, known)}" for topic in missing]


def event_seen(conn: Connection, name: str) -> bool:
    """Whether any event has this exact name: one index seek."""
    return conn.execute(select(events.c.name).where(events.c.name == name).limit(1)).first() is not None


def event_names(conn: Connection, limit: int = MAX_KNOWN_NAMES) -> list[str]:
    """The distinct event names in order (the first ``limit``), by a loose index scan that both stores run:
    a recursive query seeking, in the ``(name, ...)`` index, the first name after the previous one."""
    names = select(func.min(events.c.name).label("name")).cte("event_names", recursive=True)
    following = select(events.c.name).where(events.c.name > names.c.name).order_by(events.c.name).limit(1)
    names = names.union_all(select(following.scalar_subquery()).where(names.c.name.is_not(None)))
    return list(conn.execute(select(names.c.name).where(names.c.name.is_not(None)).limit(limit)).scalars())

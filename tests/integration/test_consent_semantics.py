"""The consent rule in SQL (segments) and in Python (the delivery policy) agree on every combination."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from sqlalchemy import select

from clarion.segments.reachable import consent_allows, consented
from clarion.store.schema import consents, contacts, topics

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
STATES = (None, "opted_in", "opted_out", "pending_confirmation")


def test_sql_and_python_consent_rules_agree(app):
    # given one contact per combination of channel-level and topic-level state, for a plain and a
    # double opt-in topic
    now = NOW
    combos = list(itertools.product(STATES, STATES, (False, True)))
    with app.store.write() as conn:
        conn.execute(topics.insert(), [{"key": "plain", "name": "Plain", "double_opt_in": False, "created_at": now},
                                       {"key": "doi", "name": "DOI", "double_opt_in": True, "created_at": now}])
        for index, (channel_state, topic_state, doi) in enumerate(combos, start=1):
            conn.execute(contacts.insert().values(id=index, created_at=now, updated_at=now, custom_dates={},
                                                  attributes={}))
            given = (("*", channel_state), ("doi" if doi else "plain", topic_state))
            rows = [{"contact_id": index, "channel": "email", "topic": topic, "status": state, "updated_at": now,
                     "ledger_id": 0} for topic, state in given if state]
            if rows:
                conn.execute(consents.insert(), rows)
    # when both rules judge every contact, without a topic and with each topic
    with app.store.read() as conn:
        for topic in (None, "plain", "doi"):
            by_sql = set(conn.execute(select(contacts.c.id).where(consented("email", topic))).scalars())
            by_python = set()
            for index, (channel_state, topic_state, doi) in enumerate(combos, start=1):
                states = {"*": channel_state, ("doi" if doi else "plain"): topic_state}
                states = {k: v for k, v in states.items() if v}
                if consent_allows(states, topic, topic == "doi"):
                    by_python.add(index)
            # then they agree
            assert by_sql == by_python, topic

"""A small world of contacts for the segment compiler tests, built through the real services.

Contacts are named by their external id; rules are written in text form; members come back as names, so a
scenario reads ``('city = "LISBOA"', {"ana"})``. Times are offsets from the fixed ``NOW``.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, select

from clarion.bootstrap import Clarion
from clarion.domain.consent import Channel, ConsentStatus
from clarion.domain.events import EventInput
from clarion.domain.profiles import ProfilePatch
from clarion.segments.compiler import CompileContext, members
from clarion.segments.rule_text import parse_rule
from clarion.services.identity import Identifiers
from clarion.store.schema import contacts, devices
from clarion.store.schema_scores import contact_scores, engagements

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
CONTEXT = CompileContext(now=NOW, default_timezone="UTC")
_message_ids = itertools.count(1)


class World:
    def __init__(self, app: Clarion, conn: Connection) -> None:
        self.app = app
        self.conn = conn
        self.ids: dict[str, int] = {}

    @property
    def names(self) -> dict[int, str]:
        return {cid: name for name, cid in self.ids.items()}

    def contact(self, name: str, **profile) -> int:
        self.ids[name] = self.app.contacts.identify(self.conn, Identifiers(external_id=name), ProfilePatch(**profile))
        return self.ids[name]

    def event(self, name: str, event: str, days_ago: float, **properties) -> None:
        at = NOW - timedelta(days=days_ago)
        self.app.events.ingest(self.conn, [EventInput(event, f"seg-{next(_message_ids)}", at, NOW, properties,
                                                      self.ids[name])])

    def consent(self, name: str, channel: str, status: str, topic: str = "*", **proof) -> None:
        self.app.consent.record(self.conn, self.ids[name], Channel(channel), ConsentStatus(status), topic=topic,
                                source="test", proof=proof or None)

    def score(self, name: str, **columns) -> None:  # no scoring service writes contact_scores yet
        self.conn.execute(contact_scores.insert().values(contact_id=self.ids[name], **columns))

    def engagement(self, name: str, action: str, days_ago: float, campaign: int | None = None) -> None:
        self.conn.execute(engagements.insert().values(
            contact_id=self.ids[name], campaign_id=campaign, channel="email", action=action,
            occurred_at=NOW - timedelta(days=days_ago)))

    def device(self, name: str, kind: str, *, invalidated: bool = False) -> None:  # no device service yet
        self.conn.execute(devices.insert().values(
            contact_id=self.ids[name], kind=kind, token=f"token-{next(_message_ids)}", created_at=NOW,
            last_seen_at=NOW, invalidated_at=NOW if invalidated else None))

    def members(self, text: str, context: CompileContext = CONTEXT) -> set[str]:
        return {self.names[cid] for cid in members(self.conn, parse_rule(text), context)}

    def mismatches(self, cases: list[tuple[str, set[str]]], context: CompileContext = CONTEXT) -> list:
        """(rule, expected, got) for every case whose members differ: empty when all hold."""
        found = [(text, expected, self.members(text, context)) for text, expected in cases]
        return [case for case in found if case[1] != case[2]]

    def everyone_but(self, *names: str) -> set[str]:
        return set(self.ids) - set(names)

    def clear_timezone(self, name: str) -> None:
        """Services always set a zone; an older row may have none (raw update, for that case only)."""
        self.conn.execute(contacts.update().where(contacts.c.id == self.ids[name]).values(timezone=None))

    def stored(self, name: str):
        return self.conn.execute(select(contacts).where(contacts.c.id == self.ids[name])).one()

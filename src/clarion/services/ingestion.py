"""The ingestion use cases behind /v1 (Segment shapes), the REST API and the importers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from ..config import Settings
from ..domain.events import EventInput
from ..domain.traits import parse_traits
from .clock import utcnow
from .contacts import ContactService
from .events import EventService, IngestResult
from .identity import Identifiers, owners_of_many, settled_owner
from .identity_bulk import create_contacts, erased_pairs
from .response import APP_OPEN_EVENTS, ResponseService


@dataclass
class IdentifyCall:
    ids: Identifiers
    traits: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class TrackCall:
    ids: Identifiers
    event: str
    message_id: str
    occurred_at: datetime
    received_at: datetime
    properties: dict[str, Any] = field(default_factory=dict)


class IngestionService:
    def __init__(self, settings: Settings, contacts: ContactService, events: EventService) -> None:
        self.settings = settings
        self.contacts = contacts
        self.events = events

    def identify(self, conn: Connection, call: IdentifyCall) -> int:
        """Create or update the contact; unknown traits become custom attributes."""
        patch = parse_traits(call.traits, default_region=self.settings.default_phone_region)
        return self.contacts.identify(conn, call.ids, patch)

    def track(self, conn: Connection, calls: Sequence[TrackCall]) -> IngestResult:
        """Resolve (or create) each sender, then store the events in one idempotent batch."""
        distinct = list(dict.fromkeys(call.ids for call in calls))
        for ids in distinct:
            ids.require_any()
        known = owners_of_many(conn, distinct)
        known.update(self._create_new_senders(conn, distinct, known))
        unsettled = [ids for ids in distinct if settled_owner(ids, known) is None]
        for ids in unsettled:
            self.contacts.resolve(conn, ids)
        if unsettled:
            # Looked up again once all are known: a later call may have merged an earlier sender
            # (an anonymous visitor who logged in within the same batch).
            known = owners_of_many(conn, distinct)
        resolved = {ids: settled_owner(ids, known) for ids in distinct}
        items = []
        for call in calls:
            items.append(EventInput(call.event, call.message_id, call.occurred_at, call.received_at,
                                    dict(call.properties), resolved[call.ids]))
        result = self.events.ingest(conn, items)
        self._app_opens(conn, items)
        return result

    def _app_opens(self, conn: Connection, items: Sequence[EventInput]) -> None:
        """A tapped notification ("Notification Opened", "Push Opened") is the open of the delivery it names."""
        opens = [item for item in items if item.name in APP_OPEN_EVENTS and item.contact_id is not None]
        if opens:
            response = ResponseService(self.settings)
            for item in opens:
                response.app_open(conn, item.contact_id, item.properties, item.occurred_at)

    def _create_new_senders(self, conn: Connection, distinct: Sequence[Identifiers],
                            known: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
        """Create, in one statement, the senders none of whose identifiers is known or erased.

        Senders sharing an identifier with another in the batch are left to ``ContactService``,
        which merges them one at a time.
        """
        uses = Counter(pair for ids in distinct for pair in ids.pairs())
        fresh = [ids for ids in distinct
                 if all(pair not in known and uses[pair] == 1 for pair in ids.pairs())]
        erased = erased_pairs(conn, self.settings.hash_salt, [p for ids in fresh for p in ids.pairs()])
        fresh = [ids for ids in fresh if not any(pair in erased for pair in ids.pairs())]
        zone = self.settings.default_timezone
        rows = [{"external_id": ids.external_id, "email": ids.email, "phone": ids.phone,
                 "timezone": zone, "timezone_source": "default"} for ids in fresh]
        created = create_contacts(conn, rows, [ids.pairs() for ids in fresh], utcnow())
        return {pair: contact_id for ids, contact_id in zip(fresh, created, strict=True) for pair in ids.pairs()}

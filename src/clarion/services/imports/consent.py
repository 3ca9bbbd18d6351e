"""Consent columns of a contact import: opt-ins brought along from listmonk, Mailchimp, Mautic or a spreadsheet.

A column (of the file, or a ``--map`` target) named

    consent.<channel>[/<topic>]            the status: opted_in, opted_out, pending_confirmation, or a synonym
                                           (subscribed, unsubscribed, unconfirmed, confirmed, yes, no ...)
    consent.<channel>[/<topic>].at         when it was given (ISO 8601; without an offset: UTC)
    consent.<channel>[/<topic>].<proof>    evidence: source, form, text_version, text, url, ip, user_agent,
                                           confirmed_at, keyword

gives one consent per channel and topic (no topic: every topic of the channel). A blank status changes
nothing. Every consent goes into the ledger with source ``import``; the row's own ``source`` (where the
person gave it, as the other system recorded it) is kept in the proof.

An import never turns an opted-out contact or a suppressed address into opted in without a proof dated
after the opt-out or the suppression (``domain.consent.opt_in_refusal``): such a row is rejected, with the
reason, and nothing of it is written. An unsubscribe suppression is lifted by a newer dated proof; a bounce,
a complaint or a manual suppression never is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, select

from ...domain.consent import (
    ADDRESS_OF_CHANNEL,
    ALL_TOPICS,
    PROOF_FIELDS,
    Blocker,
    Channel,
    ConsentChange,
    ConsentStatus,
    SuppressionReason,
    opt_in_refusal,
    parse_consent_status,
    parse_enum,
)
from ...domain.errors import FieldError
from ...domain.events import parse_timestamp
from ...store.schema import contacts, suppressions, topics
from ..clock import utcnow
from ..consent import ConsentService
from ..hashing import identity_hash
from ..identity_bulk import chunks

PREFIX = "consent."
STATUS, AT = "status", "at"
PARTS = frozenset({AT, *PROOF_FIELDS} - {"campaign_id"})
_PART_ALIASES = {"when": AT, "date": AT}


@dataclass(frozen=True)
class ConsentColumn:
    channel: Channel
    topic: str
    part: str  # status, at, or a proof field

    @property
    def scope(self) -> str:
        return f"{PREFIX}{self.channel.value}" + ("" if self.topic == ALL_TOPICS else f"/{self.topic}")


@lru_cache(maxsize=1024)
def consent_column(name: str) -> ConsentColumn:
    """What a ``consent.`` column holds: ``consent.<channel>[/<topic>][.<part>]``; FieldError naming it otherwise."""
    body = name[len(PREFIX):]
    cut = min((i for i in (body.find("/"), body.find(".")) if i >= 0), default=len(body))
    channel = parse_enum(Channel, body[:cut], name)
    rest, topic, part = body[cut:], ALL_TOPICS, STATUS
    if rest.startswith("/"):
        topic, dot, last = rest[1:].rpartition(".")
        if dot and _PART_ALIASES.get(last, last) in PARTS:
            part = _PART_ALIASES.get(last, last)
        else:  # no part, or a dot inside the topic key ("news.letter")
            topic = rest[1:]
        if not topic.strip():
            raise FieldError(name, "the topic after '/' is empty")
    elif rest:
        part = _PART_ALIASES.get(rest[1:], rest[1:])
        if part not in PARTS:
            others = ", ".join(sorted(PARTS - {AT}))
            raise FieldError(name, f"{rest[1:]!r} is not a part of a consent; use at, {others}")
    return ConsentColumn(channel, topic.strip(), part)


def is_consent_target(name: str) -> bool:
    return name.startswith(PREFIX)


def consent_changes(values: Mapping[str, Any]) -> tuple[ConsentChange, ...]:
    """The consents a row states (its ``consent.`` keys); FieldError for a bad status, date or proof."""
    grouped: dict[tuple[Channel, str], dict[str, str]] = {}
    for key, raw in values.items():
        if not key.startswith(PREFIX) or raw is None or not str(raw).strip():
            continue
        column = consent_column(key)
        grouped.setdefault((column.channel, column.topic), {})[column.part] = str(raw).strip()
    changes = []
    for (channel, topic), parts in grouped.items():
        if STATUS not in parts:
            continue  # dates and proofs of a consent the row does not state
        name = ConsentColumn(channel, topic, STATUS).scope
        status = parse_consent_status(parts.pop(STATUS), name)
        occurred_at = _given_at(parts.pop(AT, None), f"{name}.at")
        changes.append(ConsentChange(channel, status, topic, occurred_at, {k: v[:2000] for k, v in parts.items()}))
    return tuple(changes)


def _given_at(raw: str | None, name: str):
    if raw is None:
        return None
    value = parse_timestamp(raw, name)
    if value > utcnow():
        raise FieldError(name, f"{raw!r} is in the future")
    return value


@dataclass
class Screened:
    """A row's contact (None: about to be created), its address per kind and its consents."""

    contact_id: int | None
    addresses: dict[str, str]
    changes: tuple[ConsentChange, ...]
    lifts: list[tuple[str, str]] = field(default_factory=list)  # unsubscribe suppressions its consents outdate


class ConsentImport:
    """Screens a batch's consents before its contacts are written, then records them."""

    def __init__(self, service: ConsentService, salt: str) -> None:
        self.service = service
        self.salt = salt
        self.recorded = 0
        self.suppressions_lifted = 0

    def refusals(self, conn: Connection, rows: Sequence[Screened]) -> list[str | None]:
        """Per row, why its consents may not be recorded (the whole row is then rejected), or None."""
        known_topics = set(conn.execute(select(topics.c.key)).scalars())
        current = self.service.current_of(conn, [r.contact_id for r in rows if r.contact_id is not None])
        stored = _stored_addresses(conn, [r.contact_id for r in rows if r.contact_id is not None])
        for row in rows:
            for kind, address in stored.get(row.contact_id, {}).items():
                row.addresses.setdefault(kind, address)
        suppressed = self._suppressions(conn, [a for r in rows for a in r.addresses.items()])
        reasons = []
        for row in rows:
            reason, row.lifts = _refusal(row, known_topics, current, suppressed)
            reasons.append(reason)
        return reasons

    def record(self, conn: Connection, rows: Sequence[tuple[int, Screened]]) -> None:
        """Writes the consents of rows that passed :meth:`refusals`; lifts the unsubscribes they outdate."""
        changes = [(contact_id, change) for contact_id, row in rows for change in row.changes]
        results = self.service.record_many(conn, changes, source="import", skip_unchanged=True)
        self.recorded += sum(r["ledger_id"] is not None for r in results)
        for kind, address in {pair for _, row in rows for pair in row.lifts}:
            self.suppressions_lifted += self.service.unsuppress(conn, kind, address)

    def _suppressions(self, conn: Connection, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        by_hash = {identity_hash(self.salt, kind, address): (kind, address) for kind, address in set(pairs)}
        found = {}
        for chunk in chunks(sorted(by_hash)):
            for row in conn.execute(select(suppressions.c.address_hash, suppressions.c.reason,
                                           suppressions.c.created_at).where(suppressions.c.address_hash.in_(chunk))):
                found[by_hash[row.address_hash]] = row
        return found


def _stored_addresses(conn: Connection, contact_ids: list[int]) -> dict[int, dict[str, str]]:
    found: dict[int, dict[str, str]] = {}
    for chunk in chunks(sorted(set(contact_ids))):
        for row in conn.execute(select(contacts.c.id, contacts.c.email, contacts.c.phone)
                                .where(contacts.c.id.in_(chunk))):
            found[row.id] = {kind: value for kind, value in (("email", row.email), ("phone", row.phone)) if value}
    return found


def _refusal(row: Screened, known_topics: set[str], current: Mapping, suppressed: Mapping
             ) -> tuple[str | None, list[tuple[str, str]]]:
    """(why the row's consents are refused or None, the unsubscribe suppressions they would lift)."""
    lifts = []
    for change in row.changes:
        scope = ConsentColumn(change.channel, change.topic, STATUS).scope
        if change.topic != ALL_TOPICS and change.topic not in known_topics:
            return f"{scope}: unknown topic {change.topic!r}; create it first (clarion topics create " \
                   f"{change.topic})", []
        blockers = _opt_outs(row.contact_id, change, current)
        kind = ADDRESS_OF_CHANNEL.get(change.channel)
        entry = suppressed.get((kind, row.addresses.get(kind))) if kind else None
        if entry is not None and change.status != ConsentStatus.OPTED_OUT:
            liftable = entry.reason == SuppressionReason.UNSUBSCRIBE
            blockers.append(Blocker(f"the {kind} {row.addresses[kind]} is suppressed ({entry.reason})",
                                    entry.created_at, liftable))
            if liftable:
                lifts.append((kind, row.addresses[kind]))
        reason = opt_in_refusal(change, blockers)
        if reason is not None:
            return f"{scope}: {reason}", []
    return None, lifts


def _opt_outs(contact_id: int | None, change: ConsentChange, current: Mapping) -> list[Blocker]:
    channel = change.channel.value
    blockers = []
    for topic in dict.fromkeys((ALL_TOPICS, change.topic)):
        state = current.get((contact_id, channel, topic))
        if state is not None and state.status == ConsentStatus.OPTED_OUT:
            what = f"{channel} was opted out" + (" of every topic" if topic == ALL_TOPICS else f" of {topic}")
            blockers.append(Blocker(what, state.updated_at))
    return blockers

"""Writing a batch of parsed contact rows: set-based where it can be, one savepoint per row where it must.

Contacts are written set-based when every identifier of a row is new (insert) or all name the same
contact (update, with ``ContactService``'s normalisation and time zone rules). Rows that would
merge or move identifiers go through ``ContactService.identify`` in a savepoint, so a conflict
rejects only that row. Rows with consent columns are screened first (:mod:`.import_consent`): a
refused consent rejects its whole row before anything of it is written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from ...config import Settings
from ...domain.errors import Conflict, Erased, FieldError
from ...domain.profiles import ProfilePatch, ZoneInputs, resolve_timezone
from ...store.schema import contacts
from ..clock import utcnow
from ..contacts import ContactService
from ..identity_bulk import chunks, create_contacts, erased_pairs, owners_by_value
from .consent import ConsentImport, Screened
from .contacts import ContactRow
from .source import SourceRow

ERASED_REASON = "erased: this contact was erased on request and may not be re-created"


class ContactRun(Protocol):
    """What the writer needs of an import run: its counts, its reject list and its consent screen."""

    result: Any  # importer.ImportResult
    consent: ConsentImport | None

    def reject(self, row: SourceRow, reason: str) -> None: ...


class ContactWriter:
    def __init__(self, settings: Settings, contact_service: ContactService) -> None:
        self.settings = settings
        self.contacts = contact_service

    def write(self, conn: Connection, parsed: list[ContactRow], run: ContactRun) -> None:
        """One batch in the caller's transaction: new contacts, updates, merges, then the consents."""
        found = {kind: owners_by_value(conn, kind, [getattr(p.ids, kind) for p in parsed if getattr(p.ids, kind)])
                 for kind in ("external_id", "email", "phone")}
        new, same, other = [], [], []
        for item in parsed:
            owners = {found[kind].get(value) for kind, value in item.ids.pairs()}
            if owners == {None}:
                new.append(item)
            elif len(owners) == 1:
                same.append((item, owners.pop()))
            else:
                other.append(item)
        now = utcnow()
        screened: dict[int, Screened] = {}  # id(row) -> its consents as screened, with the suppressions they lift
        if run.consent is not None and any(item.consents for item in parsed):
            new = self._screen_consents(conn, [(item, None) for item in new], run, screened)
            same = self._screen_consents(conn, same, run, screened)
        created = self._create_contacts(conn, new, run, now)
        self._update_contacts(conn, same, run, now)
        identified = self._identify_one_by_one(conn, other, run, screened)
        if run.consent is not None and screened:
            run.consent.record(conn, [(cid, screened[id(item)]) for item, cid in (*created, *same, *identified)
                                      if id(item) in screened])

    @staticmethod
    def _screen_consents(conn: Connection, items: list[tuple[ContactRow, Any]], run: ContactRun,
                         screened: dict[int, Screened]) -> list:
        """The items whose consents may be recorded (in their given form); the others are rejected whole."""
        assert run.consent is not None
        candidates = {id(item): _screened(item, owner) for item, owner in items if item.consents}
        reasons = dict(zip(candidates, run.consent.refusals(conn, list(candidates.values())), strict=True))
        kept = []
        for item, owner in items:
            reason = reasons.get(id(item))
            if reason is None:
                kept.append((item, owner) if owner is not None else item)
                if id(item) in candidates:
                    screened[id(item)] = candidates[id(item)]
            else:
                run.reject(item.row, reason)
        return kept

    def _create_contacts(self, conn: Connection, items: list[ContactRow], run: ContactRun,
                         now: datetime) -> list[tuple[ContactRow, int]]:
        erased = erased_pairs(conn, self.settings.hash_salt, [p for item in items for p in item.ids.pairs()])
        kept = []
        for item in items:
            if erased and any(pair in erased for pair in item.ids.pairs()):
                run.reject(item.row, ERASED_REASON)
            else:
                kept.append(item)
        rows = [self._new_contact(item.patch) for item in kept]
        ids = create_contacts(conn, rows, [item.ids.pairs() for item in kept], now)
        run.result.imported += len(kept)
        run.result.contacts_created += len(kept)
        return list(zip(kept, ids, strict=True))

    def _new_contact(self, patch: ProfilePatch) -> dict[str, Any]:
        values = patch.columns()
        zone, source = resolve_timezone(
            ZoneInputs(patch.timezone, patch.latitude, patch.longitude, patch.phone, patch.country,
                       city=patch.city, region=patch.region),
            self.settings.default_timezone)
        values.update(timezone=zone, timezone_source=source, attributes=dict(patch.attributes),
                      custom_dates=dict(patch.custom_dates))
        return values

    def _update_contacts(self, conn: Connection, items: list[tuple[ContactRow, int]], run: ContactRun,
                         now: datetime) -> None:
        current: dict[int, Any] = {}
        for chunk in chunks(sorted({contact_id for _, contact_id in items})):
            current.update((r.id, r._mapping) for r in conn.execute(select(contacts).where(contacts.c.id.in_(chunk))))
        for item, contact_id in items:
            values = self.contacts.changes(current[contact_id], item.patch)
            if not values:
                run.result.unchanged += 1
                continue
            conn.execute(update(contacts).where(contacts.c.id == contact_id).values(**values, updated_at=now))
            run.result.imported += 1

    def _identify_one_by_one(self, conn: Connection, items: list[ContactRow], run: ContactRun,
                             screened: dict[int, Screened]) -> list[tuple[ContactRow, int]]:
        """Rows that merge or move identifiers, each in a savepoint: a conflict or a refused consent rejects
        only its row (the merge it made is rolled back)."""
        done = []
        for item in items:
            try:
                with conn.begin_nested():
                    contact_id = self.contacts.identify(conn, item.ids, item.patch)
                    if item.consents and run.consent is not None:
                        candidate = _screened(item, contact_id)
                        refusal = run.consent.refusals(conn, [candidate])[0]
                        if refusal is not None:
                            raise _ConsentRefused(refusal)
                        screened[id(item)] = candidate
            except Erased:
                run.reject(item.row, ERASED_REASON)
            except (Conflict, FieldError) as exc:
                run.reject(item.row, f"conflict: {exc}" if isinstance(exc, Conflict) else str(exc))
            except IntegrityError as exc:
                run.reject(item.row, f"conflict: {str(exc.orig).splitlines()[0]}")
            except _ConsentRefused as exc:
                run.reject(item.row, str(exc))
            else:
                run.result.imported += 1
                done.append((item, contact_id))
        return done

class _ConsentRefused(Exception):
    """A row's consents may not be recorded (import_consent): its savepoint is rolled back."""


def _screened(item: ContactRow, contact_id: int | None) -> Screened:
    addresses = {kind: value for kind, value in (("email", item.ids.email), ("phone", item.ids.phone)) if value}
    return Screened(contact_id, addresses, item.consents)



"""Bulk import of contacts and events from CSV, JSON Lines and the CDNOW files.

Streaming and batched: ``settings.import_batch_size`` rows per ``store.write()`` transaction, so
memory does not grow with the file (except, for contacts, one 64-bit hash per identifier to spot
duplicates within the file: 8 bytes each, see ``import_contacts.SeenKeys``). Every bad row goes to
the reject file (``line,reason,raw``) and every good row is kept.

Idempotency:
- Events are keyed by their message id: a mapped id column, else ``imp-`` + SHA-1 of (mapping
  name, line number, row text) — see :func:`import_mappings.derived_message_id`. Re-importing the
  same file inserts nothing and leaves the aggregates as they were. A message id repeated within
  one batch is rejected as a duplicate; one repeated across batches counts as ``unchanged``.
- Contacts are found by external id, email and phone; a row whose values are already stored counts
  as ``unchanged``.

How a batch of contacts is written, consent columns included: :mod:`.import_contact_writer`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from time import perf_counter
from typing import Any

from sqlalchemy import Connection

from ...config import Settings
from ...domain.errors import FieldError
from ...store.engine import Store
from ...store.maintenance import refresh_statistics
from ..clock import utcnow
from ..consent import ConsentService
from ..contacts import ContactService
from ..identity_bulk import create_contacts, erased_pairs, owners_by_value, unprepared
from . import bulk_load
from .bulk import SQLITE_BULK_LOAD_CACHE_KIB, SQLITE_CACHE_KIB, insert_events, prepare_bulk_connection
from .consent import ConsentImport
from .contact_writer import ERASED_REASON, ContactWriter
from .contacts import MIN_BATCHES_FOR_PROCESS, ContactParser, ContactRow, ParsePool, SeenKeys, parse_pool
from .mappings import (
    MAPPINGS,
    ColumnPlan,
    cdnow_event,
    check_target,
    generic_event,
)
from .source import (
    ImportFileError,
    RejectWriter,
    RowReader,
    SourceRow,
    batched,
    detect_format,
    prefetched,
)
from .staging import KEY, LINE, MESSAGE_ID, RAW, Staged, csv_event_parser, staged_from

Progress = Callable[[int, int], None]  # (bytes read, file size)
Prepared = tuple[int, Any, Sequence[tuple[int, str, str]]]  # (rows read, what the batch handler takes, rejects)
STATISTICS_AFTER_ROWS = 100_000  # rows written by an import after which PostgreSQL's statistics are refreshed


@dataclass
class ImportOptions:
    format: str | None = None  # csv | jsonl | cdnow; else from the file's extension
    mapping: str | None = None  # a built-in mapping: "cdnow"
    columns: dict[str, str] = field(default_factory=dict)  # source column -> target field
    keep_unknown: bool = False
    reject_file: Path | None = None  # default: ./<file stem>.<kind>.rejects.csv
    delimiter: str | None = None
    batch_size: int | None = None  # default: settings.import_batch_size
    rebuild_indexes: bool | None = None  # events: bulk-load mode (see bulk_load); None: when it pays
    constants: dict[str, str] = field(default_factory=dict)  # contacts: target -> value for rows without it


@dataclass
class ImportResult:
    kind: str
    file: str
    rows_read: int = 0
    imported: int = 0  # events inserted; contacts created or changed
    unchanged: int = 0  # already stored (re-import), or a repeated CDNOW customer
    rejected: int = 0
    contacts_created: int = 0
    consents_recorded: int = 0  # contacts: consent changes written to the ledger (source "import")
    suppressions_lifted: int = 0  # contacts: unsubscribe suppressions outdated by a newer dated opt-in
    reject_file: str | None = None
    unknown_columns: list[str] = field(default_factory=list)  # ignored (not --keep-unknown)
    indexes_rebuilt: list[str] = field(default_factory=list)  # bulk-load mode: dropped, then built again
    seconds: float = 0.0  # in all, index rebuild included

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows_per_second": round(self.rows_per_second, 1)}


@dataclass
class _Run:
    result: ImportResult
    reader: RowReader
    plan: ColumnPlan
    mapping: str | None
    keep_unknown: bool
    event_parser: Callable[[int, str, Any], Staged] | None = None
    rejects: list[tuple[int, str, str]] = field(default_factory=list)
    seen: SeenKeys = field(default_factory=SeenKeys)  # the identifiers read so far (reader thread)
    repeated_customers: int = 0  # CDNOW purchase rows of a customer already read (reader thread)
    analyzed_at: int = -1  # contacts created when the statistics were last refreshed
    batch_size: int = 1
    deferred_aggregates: bool = False  # bulk-load mode: the aggregates are rebuilt at the end
    exits: ExitStack = field(default_factory=ExitStack)  # closed when the run ends
    parse_pool: ParsePool | None = None  # contacts: where rows are parsed (made on the first batch)
    consent: ConsentImport | None = None  # contacts: screens and records the consent columns
    constants: dict[str, str] = field(default_factory=dict)  # contacts: --set target=value

    def reject(self, row: SourceRow, reason: str) -> None:
        self.rejects.append((row.line, reason, row.raw))


class Importer:
    def __init__(self, settings: Settings, store: Store, contact_service: ContactService,
                 consent_service: ConsentService | None = None) -> None:
        self.settings = settings
        self.store = store
        self.contacts = contact_service
        self.contacts_consent = consent_service or ConsentService(settings.hash_salt)
        self.contact_writer = ContactWriter(settings, contact_service)

    def import_contacts(self, path: Path, options: ImportOptions | None = None,
                        progress: Progress | None = None) -> ImportResult:
        result = self._run("contacts", Path(path), options or ImportOptions(), progress, self._parse_contacts,
                           self.contact_writer.write)
        if result.imported >= STATISTICS_AFTER_ROWS:
            refresh_statistics(self.store.engine, ("contacts", "identities"))
        return result

    def import_events(self, path: Path, options: ImportOptions | None = None,
                      progress: Progress | None = None) -> ImportResult:
        """Store the events; a large import runs in bulk-load mode (see :mod:`bulk_load`)."""
        options = options or ImportOptions()
        started = perf_counter()
        with self.store.write() as conn:
            bulk_load.finish(conn)  # an earlier bulk load that died unfinished
            bulk = options.rebuild_indexes
            if bulk is None:
                bulk = bulk_load.worth_it(_estimated_rows(Path(path)), bulk_load.stored_events(conn))
            dropped = bulk_load.begin(conn) if bulk else []
        try:
            result = self._run("events", Path(path), options, progress, self._parse_events, self._event_batch,
                               deferred_aggregates=bool(dropped))
        finally:
            if dropped:
                with self.store.write() as conn:
                    prepare_bulk_connection(conn, SQLITE_BULK_LOAD_CACHE_KIB)
                    bulk_load.finish(conn)
        if result.imported >= STATISTICS_AFTER_ROWS or dropped:
            refresh_statistics(self.store.engine, ("events", "contact_aggregates", "contact_event_stats", "contacts",
                                                   "identities"), vacuum=bool(dropped))
        result.indexes_rebuilt = dropped
        result.seconds = perf_counter() - started
        return result

    # -- the loop ------------------------------------------------------------------------
    def _run(self, kind: str, path: Path, options: ImportOptions, progress: Progress | None,
             prepare: Callable[[list[SourceRow], _Run], Prepared],
             handle: Callable[[Connection, Any, _Run], None], deferred_aggregates: bool = False) -> ImportResult:
        """Read and ``prepare`` batches in a background thread, ``handle`` each in one write transaction."""
        plan = ColumnPlan(kind, dict(options.columns), options.keep_unknown)  # a bad --map fails before any work
        if options.constants and kind != "contacts":
            raise FieldError("--set", "constant values apply to contact imports only")
        for target in options.constants:
            check_target(kind, target, "--set")
        reader, mapping = self._reader(path, options)
        writer = RejectWriter(options.reject_file or Path.cwd() / f"{path.stem}.{kind}.rejects.csv")
        consent = ConsentImport(self.contacts_consent, self.settings.hash_salt) if kind == "contacts" else None
        run = _Run(ImportResult(kind, str(path)), reader, plan, mapping, options.keep_unknown,
                   deferred_aggregates=deferred_aggregates, constants=dict(options.constants), consent=consent)
        default = self.settings.import_event_batch_size if kind == "events" else self.settings.import_batch_size
        size = run.batch_size = max(1, options.batch_size or default)
        cache_kib = SQLITE_BULK_LOAD_CACHE_KIB if deferred_aggregates else SQLITE_CACHE_KIB
        started = perf_counter()
        try:
            for count, payload, rejects in prefetched(prepare(batch, run) for batch in batched(iter(reader), size)):
                run.result.rows_read += count
                run.rejects.extend(rejects)
                with self.store.write() as conn, unprepared(conn):
                    prepare_bulk_connection(conn, cache_kib)
                    self._refresh_statistics(conn, run)
                    handle(conn, payload, run)
                for line, reason, raw in run.rejects:
                    writer.add(line, reason, raw)
                run.rejects.clear()
                if progress:
                    progress(reader.bytes_read, reader.total_bytes)
        finally:
            writer.close()
            run.exits.close()
        result = run.result
        result.unchanged += run.repeated_customers
        if run.consent is not None:
            result.consents_recorded = run.consent.recorded
            result.suppressions_lifted = run.consent.suppressions_lifted
        result.seconds = perf_counter() - started
        result.rejected = writer.count
        result.reject_file = str(writer.path) if writer.count else None
        result.unknown_columns = [] if options.keep_unknown else sorted(run.plan.unknown)
        return result

    @staticmethod
    def _reader(path: Path, options: ImportOptions) -> tuple[RowReader, str | None]:
        if options.mapping and options.mapping not in MAPPINGS:
            raise ImportFileError(f"unknown mapping {options.mapping!r}; built in: {', '.join(MAPPINGS)}")
        fmt = detect_format(path, options.format, options.mapping)
        mapping = "cdnow" if fmt == "cdnow" else options.mapping
        if mapping == "cdnow" and fmt != "cdnow":
            raise ImportFileError("--mapping cdnow reads the CDNOW files (format cdnow)")
        return RowReader(path, fmt, options.delimiter), mapping

    def _refresh_statistics(self, conn: Connection, run: _Run) -> None:
        """PostgreSQL: ANALYZE the identities at the start and after each 20,000 new contacts.

        Autovacuum looks only once a minute; until then the planner believes the tables are as
        small as they were and scans ``identities`` for every batch's look-up.
        """
        created = run.result.contacts_created
        if conn.dialect.name == "postgresql" and (run.analyzed_at < 0 or created - run.analyzed_at >= 20_000):
            conn.exec_driver_sql("ANALYZE contacts, identities")
            run.analyzed_at = created

    # -- contacts ------------------------------------------------------------------------
    def _parse_contacts(self, batch: list[SourceRow], run: _Run) -> Prepared:
        """(rows, parsed contacts, rejects): in the reader thread, without the database.

        Normalising emails and phones is most of a contact row's Python time; done here (in a
        worker process for a large file), it overlaps the previous batch's writes and stays out of
        the write transaction. Identifiers repeated within the file are rejected here, in file order.
        """
        if run.parse_pool is None:
            parser = ContactParser(run.reader.header, run.reader.fmt, run.mapping, run.plan,
                                   self.settings.default_phone_region, run.keep_unknown, run.constants)
            large = _estimated_rows(run.reader.path) >= MIN_BATCHES_FOR_PROCESS * run.batch_size
            run.parse_pool = run.exits.enter_context(parse_pool(parser, use_process=large))
        parsed = run.parse_pool.parse(batch).result()
        run.plan.unknown.update(parsed.unknown_columns)
        kept: list[ContactRow] = []
        repeats = run.seen.first_repeat([[hash(pair) for pair in item.ids.pairs()] for item in parsed.items])
        for item, repeat in zip(parsed.items, repeats, strict=True):
            if repeat is None:
                kept.append(item)
            elif run.mapping == "cdnow":  # a purchases file: one row per purchase, not per customer
                run.repeated_customers += 1
            else:
                kind, value = item.ids.pairs()[repeat]
                parsed.rejects.append((item.row.line, f"duplicate {kind} {value!r}: already in an earlier row of "
                                                      "this file", item.row.raw))
        return len(batch), kept, parsed.rejects

    # -- events --------------------------------------------------------------------------
    def _event_batch(self, conn: Connection, staged: list[Staged], run: _Run) -> None:
        now = utcnow()
        contact_ids, staged = self._attach_contacts(conn, staged, run, now)
        inserted = insert_events(conn, contact_ids, staged, now, bulk=True, aggregate=not run.deferred_aggregates)
        run.result.imported += inserted
        run.result.unchanged += len(staged) - inserted

    def _parse_events(self, batch: list[SourceRow], run: _Run) -> Prepared:
        """(rows, staged events of the good rows, rejects); runs in the reader thread, without the database.

        A message id seen earlier in the batch rejects its row.
        """
        staged: list[Staged] = []
        rejects: list[tuple[int, str, str]] = []
        seen: set[str] = set()
        parse = self._event_parser(run)
        reject = rejects.append
        for row in batch:
            if row.error:
                reject((row.line, row.error, row.raw))
                continue
            try:
                item = parse(row.line, row.raw, row.fields)
            except FieldError as exc:
                reject((row.line, str(exc), row.raw))
                continue
            if item[MESSAGE_ID] in seen:
                reject((row.line, f"duplicate message_id {item[MESSAGE_ID]!r} within the file", row.raw))
                continue
            seen.add(item[MESSAGE_ID])
            staged.append(item)
        return len(batch), staged, rejects

    def _event_parser(self, run: _Run) -> Callable[[int, str, Any], Staged]:
        """CSV: the compiled parser (made once per run); CDNOW and JSON Lines: via ParsedEvent."""
        if run.mapping == "cdnow":
            return lambda line, raw, fields: staged_from(cdnow_event(line, raw, fields))
        name = run.mapping or "events"
        if run.reader.fmt == "csv":
            if run.event_parser is None:
                run.event_parser = csv_event_parser(run.reader.header or [], run.plan, name)
            return run.event_parser
        return lambda line, raw, fields: staged_from(generic_event(line, raw, run.plan.apply(fields), name))

    def _attach_contacts(self, conn: Connection, staged: list[Staged], run: _Run,
                         now: datetime) -> tuple[list[int], list[Staged]]:
        """The senders' contact ids and the events kept; unknown senders are created, erased ones rejected."""
        keys = {item[KEY] for item in staged}
        known: dict[tuple[str, str], int] = {}
        for kind in ("external_id", "email"):
            values = [value for key_kind, value in keys if key_kind == kind]
            if values:
                known.update(((kind, value), cid) for value, cid in owners_by_value(conn, kind, values).items())
        missing = sorted(keys.difference(known))
        erased = erased_pairs(conn, self.settings.hash_salt, missing) if missing else set()
        fresh = [key for key in missing if key not in erased]
        rows = [{key[0]: key[1], "timezone": self.settings.default_timezone, "timezone_source": "default"}
                for key in fresh]
        known.update(zip(fresh, create_contacts(conn, rows, [[key] for key in fresh], now), strict=True))
        run.result.contacts_created += len(fresh)
        if erased:
            for item in staged:
                if item[KEY] in erased:
                    run.rejects.append((item[LINE], ERASED_REASON, item[RAW]))
            staged = [item for item in staged if item[KEY] not in erased]
        return [known[item[KEY]] for item in staged], staged


def _estimated_rows(path: Path, sample_bytes: int = 1 << 20) -> int:
    """Rows in the file, from its size and the line length in its first megabyte."""
    if not path.is_file():
        return 0
    with path.open("rb") as source:
        sample = source.read(sample_bytes)
    lines = sample.count(b"\n")
    size = path.stat().st_size
    return size // max(1, len(sample) // lines) if lines else int(bool(size))

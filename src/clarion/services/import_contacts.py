"""Contact rows -> normalised profiles, in a separate process when the file is large.

Normalising a contact (email-validator, phonenumbers, the time zone rules) costs ~60 µs of
Python per row, as much as writing it. In a thread it only competes with the writer for the GIL
(the import ran at one core's worth of CPU), so a large import parses in one worker process, one
batch ahead of the writer; the pure parsing in :class:`ContactParser` is the same either way.
Duplicate detection stays in the importer, which sees the rows in file order.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..domain.errors import FieldError
from ..domain.profiles import ProfilePatch
from ..domain.traits import parse_traits
from .identity import Identifiers
from .import_mappings import ColumnPlan, cdnow_contact, contact_traits
from .import_source import SourceRow

# Batches before a worker process pays off: starting one (a fresh interpreter importing Clarion,
# "spawn", because forking a process that runs threads is unsafe) takes ~0.5 s.
MIN_BATCHES_FOR_PROCESS = 4


@dataclass
class ContactRow:
    row: SourceRow
    ids: Identifiers
    patch: ProfilePatch


@dataclass
class ParsedContacts:
    items: list[ContactRow] = field(default_factory=list)
    rejects: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, raw)
    unknown_columns: set[str] = field(default_factory=set)


@dataclass
class ContactParser:
    """Everything parsing needs, and nothing else: it is sent to the worker process once per batch."""

    header: list[str] | None
    fmt: str
    mapping: str | None
    plan: ColumnPlan
    default_region: str
    keep_unknown: bool

    def __call__(self, rows: list[SourceRow]) -> ParsedContacts:
        parsed = ParsedContacts()
        for row in rows:
            if row.error:
                parsed.rejects.append((row.line, row.error, row.raw))
                continue
            try:
                parsed.items.append(self.parse(row))
            except FieldError as exc:
                parsed.rejects.append((row.line, str(exc), row.raw))
        parsed.unknown_columns = set(self.plan.unknown)
        return parsed

    def parse(self, row: SourceRow) -> ContactRow:
        fields = dict(zip(self.header, row.fields, strict=True)) if self.fmt == "csv" else row.fields
        traits = cdnow_contact(fields) if self.mapping == "cdnow" else contact_traits(self.plan.apply(fields))
        patch = parse_traits(traits, default_region=self.default_region, keep_unknown=self.keep_unknown)
        ids = Identifiers(patch.external_id, patch.email, patch.phone)
        ids.require_any()
        return ContactRow(row, ids, patch)


class ParsePool:
    """Runs a parser here, or in one worker process; ``parse`` returns a future either way."""

    def __init__(self, parser: ContactParser, executor: ProcessPoolExecutor | None) -> None:
        self.parser = parser
        self.executor = executor

    def parse(self, rows: list[SourceRow]) -> Future[ParsedContacts]:
        if self.executor is not None:
            return self.executor.submit(self.parser, rows)
        future: Future[ParsedContacts] = Future()
        future.set_result(self.parser(rows))
        return future


@contextmanager
def parse_pool(parser: ContactParser, use_process: bool) -> Iterator[ParsePool]:
    if not use_process:
        yield ParsePool(parser, None)
        return
    executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield ParsePool(parser, executor)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)

"""Contact rows -> normalised profiles, in a separate process when the file is large.

Normalising a contact (email-validator, phonenumbers, the time zone rules) costs ~60 µs of
Python per row, as much as writing it. In a thread it only competes with the writer for the GIL
(the import ran at one core's worth of CPU), so a large import parses in one worker process, one
batch ahead of the writer; the pure parsing in :class:`ContactParser` is the same either way.
Duplicate detection stays in the importer, which sees the rows in file order.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ...domain.consent import ConsentChange
from ...domain.errors import FieldError
from ...domain.profiles import ProfilePatch
from ...domain.traits import parse_traits
from ..identity import Identifiers
from .consent import consent_changes
from .mappings import ColumnPlan, cdnow_contact, contact_traits
from .source import SourceRow

# Batches before a worker process pays off: starting one (a fresh interpreter importing Clarion,
# "spawn", because forking a process that runs threads is unsafe) takes ~0.5 s.
MIN_BATCHES_FOR_PROCESS = 4


@dataclass
class ContactRow:
    row: SourceRow
    ids: Identifiers
    patch: ProfilePatch
    consents: tuple[ConsentChange, ...] = ()


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
    constants: dict[str, str] = field(default_factory=dict)  # --set target=value: for rows without the column

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
        if self.mapping == "cdnow":
            values = cdnow_contact(fields)
        else:
            values = self.plan.apply(fields)
            for target, value in self.constants.items():
                if values.get(target) in (None, ""):
                    values[target] = value
        patch = parse_traits(contact_traits(values), default_region=self.default_region,
                             keep_unknown=self.keep_unknown)
        ids = Identifiers(patch.external_id, patch.email, patch.phone)
        ids.require_any()
        return ContactRow(row, ids, patch, consent_changes(values))


class SeenKeys:
    """Hashes (64-bit) of the identifiers read so far in a file, to spot a key repeated in a later row.

    A sorted int64 array: 8 bytes per identifier, where a Python set of ints takes about 90 (a
    million contacts with three identifiers each: 24 MB instead of ~270 MB). A collision of two
    different identifiers has a chance of about n^2 / 2^65 (2e-7 for three million).
    """

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.int64)

    def first_repeat(self, keys_per_row: Sequence[Sequence[int]]) -> list[int | None]:
        """For each row (in order), the position of its first key seen before, else None; new rows' keys are added."""
        known = self._known(np.fromiter((k for keys in keys_per_row for k in keys), dtype=np.int64))
        repeats: list[int | None] = []
        added: set[int] = set()
        offset = 0
        for keys in keys_per_row:
            hit = next((i for i, key in enumerate(keys) if known[offset + i] or key in added), None)
            if hit is None:
                added.update(keys)
            repeats.append(hit)
            offset += len(keys)
        if added:
            new = np.sort(np.fromiter(added, dtype=np.int64))
            self._sorted = np.insert(self._sorted, np.searchsorted(self._sorted, new), new)
        return repeats

    def __len__(self) -> int:
        return len(self._sorted)

    def _known(self, keys: np.ndarray) -> np.ndarray:
        if not len(self._sorted):
            return np.zeros(len(keys), dtype=bool)
        positions = np.minimum(np.searchsorted(self._sorted, keys), len(self._sorted) - 1)
        return self._sorted[positions] == keys


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
    executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_exit_with_parent, initargs=(os.getpid(),))
    try:
        yield ParsePool(parser, executor)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _exit_with_parent(parent_pid: int, poll_seconds: float = 1.0) -> None:
    """In the worker: exit when the importing process is gone (killed), instead of idling on as an orphan."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()

"""Bounds shared by the commands' numeric parameters: a value no store could hold is a usage error, not a crash."""

from __future__ import annotations

from ..domain.ids import MAX_ID

ID_RANGE = {"min": 1, "max": MAX_ID}  # contact, key and campaign ids
OFFSET_RANGE = {"min": 0, "max": MAX_ID}
DAYS_RANGE = {"min": 1, "max": 36_500}  # a hundred years: longer than any history or horizon
MINUTES_RANGE = {"max": 525_600}  # a year
BATCH_RANGE = {"min": 1, "max": 1_000_000}  # rows per transaction
PORT_RANGE = {"min": 1, "max": 65_535}

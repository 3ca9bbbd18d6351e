"""Turn a purchase history into the per-customer inputs of the BG/NBD and Gamma-Gamma models.

The semantics are those of lifetimes' ``summary_data_from_transaction_data`` (with ``freq="D"``) and
``calibration_and_holdout_data``:

- purchases by one customer on one calendar day are one purchase, worth the sum of their values;
- ``frequency`` is the number of purchase days after the customer's first one (repeat purchases);
- ``recency`` is the time from the first purchase day to the last, ``T`` from the first purchase day to
  the end of observation, both in periods of ``period_days`` days (7: weeks, as in the paper);
- ``monetary_value`` is the mean value of the repeat purchase days, 0 when there is none;
- purchases after the end of observation are ignored, and a purchase on its last day counts.

Checked against the CDNOW data (tests/unit/test_purchase_summary.py): summarising CDNOW_sample.txt keyed by
its second column (the sample id, 1..2357, which is the summary file's ID; the first column is the id in
CDNOW_master.txt) with observation_end = 1997-09-30 and period_days = 7 reproduces cdnow_customers_summary.csv:
frequency exactly, recency and T once rounded to the file's two decimals. 1997-01-01 + 272 days = 1997-09-30,
so a customer who first bought on 1 January has T = 272 / 7 = 38.857 weeks (the file's 38.86): the "39-week"
calibration period ends on 30 September inclusive, with T counted from the first purchase day to that day.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np


@dataclass(frozen=True)
class PurchaseSummary:
    """One entry per customer, in the order each customer first appears in the purchases.

    With a calibration end, ``frequency`` .. ``monetary_value`` describe the calibration period, and the
    holdout fields the purchases after it: purchase days, their mean value (0 when none) and the holdout's
    length in periods. Customers whose first purchase is after the calibration end are left out.
    """

    keys: np.ndarray
    frequency: np.ndarray
    recency: np.ndarray
    T: np.ndarray
    monetary_value: np.ndarray
    frequency_holdout: np.ndarray | None = None
    monetary_value_holdout: np.ndarray | None = None
    duration_holdout: float | None = None

    def __len__(self) -> int:
        return len(self.keys)


def _day(value, what: str) -> date:
    """A datetime counts on its own calendar date: convert it to the customer's time zone first."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise ValueError(f"{what} must be a date, not {type(value).__name__}")


def _daily_values(purchases: Iterable[tuple[Hashable, date, float]], end: date) -> dict[Hashable, dict[date, float]]:
    """Each customer's purchase days up to ``end`` (inclusive) with the value bought on each day."""
    days: dict[Hashable, dict[date, float]] = {}
    for number, (key, purchased, value) in enumerate(purchases, start=1):
        day = _day(purchased, f"purchase {number}'s date")
        amount = float(value)
        if not math.isfinite(amount):
            raise ValueError(f"purchase {number} has a missing or infinite value")
        if day <= end:
            customer = days.setdefault(key, {})
            customer[day] = customer.get(day, 0.0) + amount
    return days


def _customer_row(values_by_day: dict[date, float], cutoff: date, period_days: float) -> tuple[float, ...] | None:
    """(frequency, recency, T, monetary_value, frequency_holdout, monetary_value_holdout), None if new later."""
    calibration = sorted(day for day in values_by_day if day <= cutoff)
    if not calibration:
        return None
    first, repeats = calibration[0], calibration[1:]
    holdout = [values_by_day[day] for day in values_by_day if day > cutoff]
    return (
        float(len(repeats)),
        (calibration[-1] - first).days / period_days,
        (cutoff - first).days / period_days,
        float(np.mean([values_by_day[day] for day in repeats])) if repeats else 0.0,
        float(len(holdout)),
        float(np.mean(holdout)) if holdout else 0.0,
    )


def summarize(purchases: Iterable[tuple[Hashable, date, float]], *, observation_end: date,
              period_days: float = 7.0, calibration_end: date | None = None) -> PurchaseSummary:
    """Summarise (customer_key, purchase_date, value) purchases per customer; see the module docstring.

    ``observation_end`` is the last day observed. With ``calibration_end``, the model inputs describe the
    purchases up to that day and the holdout fields those after it, up to ``observation_end``.
    """
    observation_end = _day(observation_end, "observation_end")
    cutoff = observation_end if calibration_end is None else _day(calibration_end, "calibration_end")
    if cutoff > observation_end:
        raise ValueError("calibration_end is after observation_end")
    if not period_days > 0:
        raise ValueError("period_days must be positive")
    keys, rows = [], []
    for key, values_by_day in _daily_values(purchases, observation_end).items():
        row = _customer_row(values_by_day, cutoff, period_days)
        if row is not None:
            keys.append(key)
            rows.append(row)
    columns = np.array(rows, dtype=float).reshape(len(rows), 6).T
    key_array = np.empty(len(keys), dtype=object)
    key_array[:] = keys
    if calibration_end is None:
        return PurchaseSummary(key_array, *columns[:4])
    return PurchaseSummary(key_array, *columns, duration_holdout=(observation_end - cutoff).days / period_days)

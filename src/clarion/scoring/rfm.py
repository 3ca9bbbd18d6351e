"""RFM: recency, frequency and monetary quintile scores, and the named segments they map to.

Scores are 1..5, 5 the best: the most recent last order, the most orders, the most spent. A score is
a quintile of the customer's rank among the scored customers, with ties sharing the lowest rank:

    score = 1 + floor(5 * (rank - 1) / n)      rank = 1 + how many customers have a smaller value

so two customers with the same value always get the same score (with many one-order customers,
the frequency scores skip values instead of splitting equal customers at random). The same integer
arithmetic runs in SQL on both stores (``services.rfm``) and in :func:`quintile_scores` here.

The named segment comes from the recency score R and FM = round-half-up((F + M) / 2), on the
5 x 5 grid below (the common RFM grid, e.g. Putler's and the R ``rfm`` package's segment names):

    FM \\ R   1             2             3               4                    5
    5       cant_lose     at_risk       loyal           loyal                champions
    4       cant_lose     at_risk       loyal           loyal                champions
    3       at_risk       at_risk       need_attention  loyal                loyal
    2       hibernating   hibernating   about_to_sleep  potential_loyalist   potential_loyalist
    1       lost          hibernating   about_to_sleep  promising            new_customers

Every cell has a name, so every scored customer is in exactly one segment.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SCORES = 5
SEGMENTS = ("champions", "loyal", "potential_loyalist", "new_customers", "promising", "need_attention",
            "about_to_sleep", "at_risk", "cant_lose", "hibernating", "lost")
LABELS = {
    "champions": "Champions", "loyal": "Loyal", "potential_loyalist": "Potential loyalist",
    "new_customers": "New customers", "promising": "Promising", "need_attention": "Need attention",
    "about_to_sleep": "About to sleep", "at_risk": "At risk", "cant_lose": "Can't lose them",
    "hibernating": "Hibernating", "lost": "Lost",
}
# SEGMENT_GRID[fm - 1][r - 1]
SEGMENT_GRID: tuple[tuple[str, ...], ...] = (
    ("lost", "hibernating", "about_to_sleep", "promising", "new_customers"),
    ("hibernating", "hibernating", "about_to_sleep", "potential_loyalist", "potential_loyalist"),
    ("at_risk", "at_risk", "need_attention", "loyal", "loyal"),
    ("cant_lose", "at_risk", "loyal", "loyal", "champions"),
    ("cant_lose", "at_risk", "loyal", "loyal", "champions"),
)


def fm_score(f: int, m: int) -> int:
    """The combined frequency-monetary score: (F + M) / 2, halves rounded up."""
    return (f + m + 1) // 2


def segment_of(r: int, f: int, m: int) -> str:
    for name, value in (("r", r), ("f", f), ("m", m)):
        if not 1 <= value <= SCORES:
            raise ValueError(f"{name} score {value} is outside 1..{SCORES}")
    return SEGMENT_GRID[fm_score(f, m) - 1][r - 1]


def quintile_scores(values: Sequence[float]) -> np.ndarray:
    """1..5 per value, by the rank rule above (the reference for the SQL version)."""
    array = np.asarray(values, dtype=float)
    n = len(array)
    if n == 0:
        return np.zeros(0, dtype=int)
    ranks = np.searchsorted(np.sort(array), array, side="left") + 1  # ties share the lowest rank
    return 1 + (SCORES * (ranks - 1)) // n

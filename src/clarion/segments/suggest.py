"""The nearest names to a misspelt one, for "did you mean ...?" in errors and warnings about rules."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# difflib's similarity ratio (0..1) a choice needs to be suggested; 0.6 is difflib's own default, which
# keeps "champion" -> "champions" and "order completed" -> "Order Completed" and drops unrelated names.
CUTOFF = 0.6


def nearest(word: str, choices: Iterable[str], n: int = 1) -> list[str]:
    """Up to ``n`` choices closest to ``word``, best first; case is ignored, and a choice equal to it but for
    case comes first (names that differ only in case are the commonest slip)."""
    by_folded: dict[str, str] = {}
    for choice in choices:
        by_folded.setdefault(choice.casefold(), choice)
    folded = word.casefold()
    found = [folded] if folded in by_folded else []
    found += [match for match in difflib.get_close_matches(folded, by_folded, n + len(found), CUTOFF)
              if match != folded]
    return [by_folded[match] for match in found[:n]]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the nearest choice, or nothing when none is near."""
    close = nearest(word, choices)
    return f"; did you mean {close[0]!r}?" if close else ""

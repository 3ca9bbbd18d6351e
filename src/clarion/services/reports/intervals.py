"""Confidence intervals for rates: Wilson's score interval, and Newcombe's hybrid for a difference of rates.

Pure arithmetic, no store. Both are the standard choices for proportions with small counts or rates near
0, where the normal approximation ("p ± 1.96·√(p(1−p)/n)") gives intervals below 0 or of zero width:

- Wilson, E. B. (1927), "Probable inference, the law of succession, and statistical inference", JASA 22.
- Newcombe, R. G. (1998), "Interval estimation for the difference between independent proportions:
  comparison of eleven methods", Statistics in Medicine 17, method 10 (the hybrid score interval).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The two-sided 95% normal quantile, Φ⁻¹(0.975).
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    lower: float
    upper: float


def wilson(successes: int, n: int, z: float = Z95) -> Interval | None:
    """Wilson's score interval for ``successes`` out of ``n``; None when n is 0 (no rate to bound)."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be within 0..{n}, not {successes}")
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # Clamped: at p = 0 or 1 the formula reaches the bound exactly, and rounding may step past it.
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def difference(successes_a: int, n_a: int, successes_b: int, n_b: int, z: float = Z95) -> Interval | None:
    """Newcombe's hybrid score interval for p_a − p_b (independent groups); None when either n is 0."""
    a, b = wilson(successes_a, n_a, z), wilson(successes_b, n_b, z)
    if a is None or b is None:
        return None
    p_a, p_b = successes_a / n_a, successes_b / n_b
    below = math.sqrt((p_a - a.lower) ** 2 + (b.upper - p_b) ** 2)
    above = math.sqrt((a.upper - p_a) ** 2 + (p_b - b.lower) ** 2)
    return Interval(p_a - p_b - below, p_a - p_b + above)

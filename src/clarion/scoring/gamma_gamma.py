"""The Gamma-Gamma model of spend per purchase, and customer lifetime value with the BG/NBD model.

Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis", Journal of
Marketing Research 42(4); Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value" (note 025).
Each purchase of a customer is worth z ~ Gamma(shape p, rate nu); across customers nu ~ Gamma(shape q, rate v).
A customer is summarised by ``frequency`` x, the number of repeat purchases, and ``monetary_value`` m_x, the
mean value of those x purchases (the first purchase is left out, as in lifetimes' summaries). v is in the
currency of the values; p and q have no unit. The model assumes spend is independent of purchase frequency.
"""

# ruff: noqa: N803 - T (the customer's age) is the paper's and lifetimes' name, kept for recognition
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma, gammaln

from .bgnbd import BgNbdParams, check_converged, expected_purchases


@dataclass(frozen=True)
class GammaGammaParams:
    """Fitted Gamma-Gamma parameters; v is in the currency of the monetary values that were fitted."""

    p: float
    q: float
    v: float
    log_likelihood: float
    customers: int  # the repeat customers the fit used

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def spend_arrays(frequency, monetary_value) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert frequencies and mean repeat-purchase values; length-1 inputs broadcast."""
    arrays = [np.atleast_1d(np.asarray(values, dtype=float)) for values in (frequency, monetary_value)]
    if any(array.ndim != 1 for array in arrays):
        raise ValueError("frequency and monetary_value must be one-dimensional")
    if len({len(array) for array in arrays} - {1}) > 1:
        raise ValueError(f"frequency and monetary_value have different lengths: {len(arrays[0])}, {len(arrays[1])}")
    frequency, monetary_value = np.broadcast_arrays(*arrays)
    if not (np.all(np.isfinite(frequency)) and np.all(np.isfinite(monetary_value))):
        raise ValueError("frequency or monetary_value contains a missing or infinite value")
    if np.any(frequency < 0) or np.any(frequency != np.round(frequency)):
        raise ValueError("frequency must be a whole, non-negative number of repeat purchases")
    if np.any(monetary_value[frequency > 0] <= 0):
        raise ValueError("monetary_value must be positive for customers with repeat purchases")
    return frequency, monetary_value


def _params_of(params: GammaGammaParams | Sequence[float]) -> tuple[float, float, float]:
    if isinstance(params, GammaGammaParams):
        return params.p, params.q, params.v
    p, q, v = (float(value) for value in params)
    return p, q, v


def _log_likelihood_terms(p, q, v, frequency, monetary_value) -> tuple[np.ndarray, np.ndarray]:
    """Each repeat customer's log-density of m_x, and its gradient in (p, q, v) (Fader & Hardie 2013).

    f(m_x | p, q, v, x) = G(px+q) / (G(px) G(q)) * v^q m_x^(px-1) x^px / (v + m_x x)^(px+q).
    """
    x, m = frequency, monetary_value
    px = p * x
    log_total = np.log(v + m * x)
    value = (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v) + (px - 1) * np.log(m) + px * np.log(x)
             - (px + q) * log_total)
    gradient = np.stack([
        x * (digamma(px + q) - digamma(px) + np.log(m) + np.log(x) - log_total),
        digamma(px + q) - digamma(q) + np.log(v) - log_total,
        q / v - (px + q) / (v + m * x),
    ])
    return value, gradient


def _objective(log_params: np.ndarray, frequency, monetary_value) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood per customer in log-parameters (so they stay positive), with its gradient."""
    params = np.exp(log_params)
    value, gradient = _log_likelihood_terms(*params, frequency, monetary_value)
    return -value.mean(), -gradient.mean(axis=1) * params


def log_likelihood(params: GammaGammaParams | Sequence[float], frequency, monetary_value) -> float:
    """The total log-likelihood of (p, q, v) for the customers with repeat purchases among these."""
    frequency, monetary_value = spend_arrays(frequency, monetary_value)
    repeat = frequency > 0
    return float(_log_likelihood_terms(*_params_of(params), frequency[repeat], monetary_value[repeat])[0].sum())


def fit_gamma_gamma(frequency, monetary_value) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma parameters from the customers with at least one repeat purchase.

    Customers with frequency 0 carry no repeat-purchase value and are ignored. Raises ValueError for
    unusable input and FitError (a ValueError) when the optimiser does not converge.
    """
    frequency, monetary_value = spend_arrays(frequency, monetary_value)
    repeat = frequency > 0
    if not np.any(repeat):
        raise ValueError("no customer has a repeat purchase, so there is no spend to fit")
    x, m = frequency[repeat], monetary_value[repeat]
    # Fit values in units of their mean so the start (p, q, v) = (1, 1, 1) is in range whatever the currency;
    # this rescales v alone.
    scale = float(m.mean())
    result = minimize(_objective, np.zeros(3), args=(x, m / scale), jac=True, method="L-BFGS-B",
                      options={"maxiter": 1000, "gtol": 1e-9, "ftol": 1e-13})
    check_converged(result, "Gamma-Gamma")
    p, q, v = (float(value) for value in np.exp(result.x))
    v *= scale
    return GammaGammaParams(p, q, v, log_likelihood((p, q, v), x, m), int(repeat.sum()))


def expected_average_value(params: GammaGammaParams | Sequence[float], frequency, monetary_value) -> np.ndarray:
    """E[M | x, m_x]: the expected value of a customer's future purchases (Fader & Hardie 2013).

    A weighted mean of the population mean p*v/(q-1) and the customer's own m_x, with weight px/(px+q-1) on
    m_x; for frequency 0 it is the population mean. Needs q > 1 (otherwise the population mean is infinite).
    """
    p, q, v = _params_of(params)
    if q <= 1:
        raise ValueError(f"q = {q} is not above 1, so the expected spend per purchase is infinite")
    frequency, monetary_value = spend_arrays(frequency, monetary_value)
    own_weight = p * frequency / (p * frequency + q - 1)
    return (1 - own_weight) * p * v / (q - 1) + own_weight * np.where(frequency > 0, monetary_value, 0.0)


def customer_lifetime_value(bgnbd: BgNbdParams | Sequence[float], gg: GammaGammaParams | Sequence[float], frequency,
                            recency, T, monetary_value, *, periods: int, discount_rate: float) -> np.ndarray:
    """The expected discounted value of each customer's purchases over the next ``periods`` periods.

    Units: a period is one unit of the time the BG/NBD model was fitted in (weeks for the CDNOW summary);
    ``discount_rate`` is per period (an annual 10% is 1.10 ** (1 / 52) - 1 per week); the result is in the
    currency of ``monetary_value``. As lifetimes' ``customer_lifetime_value``: the sum over i = 1..periods
    of (E[Y(i)] - E[Y(i-1)]) * E[M] / (1 + discount_rate) ** i, so each period's purchases are discounted
    by its end. Only future purchases count; value already spent is not included.
    """
    return expected_average_value(gg, frequency, monetary_value) * discounted_purchases(
        bgnbd, frequency, recency, T, periods=periods, discount_rate=discount_rate)


def discounted_purchases(bgnbd: BgNbdParams | Sequence[float], frequency, recency, T, *, periods: int,
                         discount_rate: float) -> np.ndarray:
    """The sum over i = 1..periods of (E[Y(i)] - E[Y(i-1)]) / (1 + discount_rate) ** i, per customer.

    One period at a time, so memory stays at a few arrays of the customers' size (a million customers
    over 52 weeks would otherwise stack 53 arrays: 424 MB).
    """
    if periods != int(periods) or periods < 0:
        raise ValueError("periods must be a whole, non-negative number")
    if not discount_rate >= 0:
        raise ValueError("discount_rate must not be negative")
    previous = expected_purchases(bgnbd, 0, frequency, recency, T)
    total = np.zeros_like(previous, dtype=float)
    for i in range(1, int(periods) + 1):
        current = expected_purchases(bgnbd, i, frequency, recency, T)
        total += (current - previous) / (1.0 + discount_rate) ** i
        previous = current
    return total

"""The BG/NBD model of repeat buying: how many purchases a customer will make, and whether they are still active.

Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An Alternative to the Pareto/NBD
Model", Marketing Science 24(2), 275-284; equation numbers below are the paper's. While active, a customer
buys at a Poisson rate lambda; after every purchase they drop out for good with probability p. Across
customers lambda ~ Gamma(shape r, rate alpha) and p ~ Beta(a, b).

A customer is summarised by three numbers, all in one time unit of the caller's choice (the paper uses weeks):
``frequency`` x, the number of repeat purchases (purchases after the first); ``recency`` t_x, the time from
the first purchase to the last; ``T``, the time from the first purchase to the end of observation. The rate
parameter alpha is in that same unit (r, a and b have none), so predictions take ``t`` in it too.

Convention: dropout can only happen right after a purchase, so a customer with no repeat purchase is alive
with probability 1 (the paper's model; Pareto/NBD differs here).
"""

# ruff: noqa: N803, N806 - T (the customer's age) is the paper's and lifetimes' name, kept for recognition
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

from ..domain.errors import ClarionError

# The optimiser works on times scaled so the longest T is this long (as lifetimes does), which keeps
# log(alpha) near the starting point 0 whatever the caller's time unit is; alpha is scaled back afterwards.
_SCALED_MAX_T = 10.0
# Accept a fit the optimiser flagged (e.g. a line search that lost precision at the optimum) when the
# gradient of the mean per-customer negative log-likelihood, in log-parameters, is at least this small.
_GRADIENT_TOLERANCE = 1e-5
# The likelihood of too homogeneous data has no finite maximum: it keeps rising as r and alpha grow together
# (no spread in purchase rates) or a shrinks (no dropout). A fitted parameter beyond exp(+-15) (3e6 and 3e-7,
# on times scaled as above, so independent of the caller's unit) is taken as such a run-away.
_MAX_ABS_LOG_PARAM = 15.0


class FitError(ClarionError, ValueError):
    """Maximum likelihood did not converge to finite parameters (the data's fault: too few or too uniform)."""


@dataclass(frozen=True)
class BgNbdParams:
    """Fitted BG/NBD parameters; alpha is in the time unit of the data that were fitted."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    customers: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class _Customers:
    """Distinct (frequency, recency, T) triples, each weighted by how many customers share it."""

    frequency: np.ndarray
    recency: np.ndarray
    T: np.ndarray
    weight: np.ndarray
    distinct_frequency: np.ndarray  # the terms that depend on x alone are computed once per distinct x
    frequency_weight: np.ndarray  # customers per distinct frequency


def customer_arrays(frequency, recency, T) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check and convert one customer summary; length-1 inputs broadcast to the others' length."""
    arrays = [np.atleast_1d(np.asarray(values, dtype=float)) for values in (frequency, recency, T)]
    if any(array.ndim != 1 for array in arrays):
        raise ValueError("frequency, recency and T must be one-dimensional")
    if len({len(array) for array in arrays} - {1}) > 1:
        lengths = ", ".join(str(len(array)) for array in arrays)
        raise ValueError(f"frequency, recency and T have different lengths: {lengths}")
    frequency, recency, T = np.broadcast_arrays(*arrays)
    for name, array in (("frequency", frequency), ("recency", recency), ("T", T)):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} contains a missing or infinite value")
        if np.any(array < 0):
            raise ValueError(f"{name} contains a negative value")
    if np.any(frequency != np.round(frequency)):
        raise ValueError("frequency must be a whole number of repeat purchases")
    if np.any(recency > T):
        raise ValueError("recency is greater than T for some customers (the last purchase is after the end)")
    return frequency, recency, T


def _params_of(params: BgNbdParams | Sequence[float]) -> tuple[float, float, float, float]:
    if isinstance(params, BgNbdParams):
        return params.r, params.alpha, params.a, params.b
    r, alpha, a, b = (float(value) for value in params)
    return r, alpha, a, b


def _collapse(frequency: np.ndarray, recency: np.ndarray, T: np.ndarray) -> _Customers:
    recency = np.where(frequency > 0, recency, 0.0)  # unused where x = 0; zeroed so more customers coincide
    order = np.lexsort((T, recency, frequency))
    frequency, recency, T = frequency[order], recency[order], T[order]
    changed = (np.diff(frequency) != 0) | (np.diff(recency) != 0) | (np.diff(T) != 0)
    starts = np.flatnonzero(np.concatenate([[True], changed]))
    weight = np.diff(np.append(starts, len(T))).astype(float)
    distinct, inverse = np.unique(frequency[starts], return_inverse=True)
    return _Customers(frequency[starts], recency[starts], T[starts], weight, distinct,
                      np.bincount(inverse, weights=weight))


def _dropout_log_odds(r, a, b, frequency, log_alpha_T, log_alpha_recency) -> np.ndarray:
    """log[a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x)] = log P(dropped out) - log P(alive); -inf where x = 0."""
    odds = np.log(a) - np.log(b + np.maximum(frequency, 1) - 1) + (r + frequency) * (log_alpha_T - log_alpha_recency)
    return np.where(frequency > 0, odds, -np.inf)


def _frequency_terms(r, alpha, a, b, data: _Customers) -> tuple[float, np.ndarray]:
    """The summed A1 + A2 of the log-likelihood and its gradient in (r, alpha, a, b).

    A1 = lnG(r+x) - lnG(r) + r ln(alpha), A2 = ln B(a, b+x) - ln B(a, b) (Fader, Hardie & Lee's note
    "Implementing the BG/NBD Model"); both depend on x alone.
    """
    x, count = data.distinct_frequency, data.frequency_weight
    customers = count.sum()
    value = (gammaln(r + x) - gammaln(r) + betaln(a, b + x) - betaln(a, b)) @ count + r * np.log(alpha) * customers
    gradient = np.array([
        (digamma(r + x) - digamma(r)) @ count + np.log(alpha) * customers,
        r / alpha * customers,
        (digamma(a + b) - digamma(a + b + x)) @ count,
        (digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x)) @ count,
    ])
    return float(value), gradient


def _timing_terms(r, alpha, a, b, data: _Customers) -> tuple[float, np.ndarray]:
    """The summed ln(exp(A3) + [x>0] exp(A4)) of the log-likelihood and its gradient in (r, alpha, a, b).

    A3 = -(r+x) ln(alpha+T) is "still alive at T", A4 = ln a - ln(b+x-1) - (r+x) ln(alpha+t_x) "dropped out
    after the last purchase". The sum is A3 + ln(1 + exp(A4 - A3)), and A4 - A3 is the dropout log-odds.
    """
    x, weight = data.frequency, data.weight
    log_alpha_T, log_alpha_recency = np.log(alpha + data.T), np.log(alpha + data.recency)
    odds = _dropout_log_odds(r, a, b, x, log_alpha_T, log_alpha_recency)
    dropped = expit(odds)
    terms = np.stack([
        np.logaddexp(0.0, odds) - (r + x) * log_alpha_T,
        dropped * (log_alpha_T - log_alpha_recency) - log_alpha_T,
        -(r + x) * ((1 - dropped) / (alpha + data.T) + dropped / (alpha + data.recency)),
        dropped / a,
        -dropped / (b + np.maximum(x, 1) - 1),
    ])
    # Multiply-and-sum rather than a BLAS dot product: on a busy machine the threaded dot was 100x slower.
    value, *gradient = (terms * weight).sum(axis=1)
    return float(value), np.array(gradient)


def _total_log_likelihood(params: Sequence[float], data: _Customers) -> float:
    return _frequency_terms(*params, data)[0] + _timing_terms(*params, data)[0]


def _objective(log_params: np.ndarray, data: _Customers, penalizer: float) -> tuple[float, np.ndarray]:
    """The mean negative log-likelihood per customer (so penalizer is independent of size) and its gradient.

    Works in log-parameters so they stay positive. The penalty is lifetimes' L2 term, penalizer *
    sum(params ** 2), which shrinks the parameters towards 0.
    """
    params = np.exp(log_params)
    frequency_value, frequency_gradient = _frequency_terms(*params, data)
    timing_value, timing_gradient = _timing_terms(*params, data)
    customers = data.weight.sum()
    value = -(frequency_value + timing_value) / customers + penalizer * np.sum(params**2)
    gradient = -(frequency_gradient + timing_gradient) * params / customers + 2.0 * penalizer * params**2
    return value, gradient


def log_likelihood(params: BgNbdParams | Sequence[float], frequency, recency, T) -> float:
    """The total log-likelihood of (r, alpha, a, b) for these customers: the sum of the paper's individual ones."""
    return _total_log_likelihood(_params_of(params), _collapse(*customer_arrays(frequency, recency, T)))


def fit_bgnbd(frequency, recency, T, *, penalizer: float = 0.0) -> BgNbdParams:
    """Maximum-likelihood BG/NBD parameters for these customers (any one time unit; alpha comes back in it).

    Identical customers are collapsed and weighted, so summaries in whole days or weeks fit quickly.
    ``log_likelihood`` in the result is the unpenalised total, comparable with the paper's -9582.4 for CDNOW.
    Raises ValueError for unusable input and FitError when the optimiser does not converge.
    """
    frequency, recency, T = customer_arrays(frequency, recency, T)
    if len(T) == 0:
        raise ValueError("no customers to fit")
    if not np.any(frequency > 0):
        raise ValueError("no customer has a repeat purchase, so the purchase and dropout rates cannot be estimated")
    if not T.max() > 0:
        raise ValueError("every T is 0: no customer has been observed for any length of time")
    if not penalizer >= 0:
        raise ValueError("penalizer must not be negative")
    scale = _SCALED_MAX_T / T.max()
    data = _collapse(frequency, recency * scale, T * scale)
    result = minimize(_objective, np.zeros(4), args=(data, penalizer), jac=True, method="L-BFGS-B",
                      options={"maxiter": 1000, "gtol": 1e-9, "ftol": 1e-13})
    check_converged(result, "BG/NBD")
    params = np.exp(result.x)
    # Scaling every time by c scales alpha by c and multiplies each customer's likelihood by c^-x
    # (t_x is a density in time), so the caller's-unit total is the scaled one plus ln(c) * sum(x).
    total = _total_log_likelihood(params, data) + np.log(scale) * float(frequency.sum())
    r, alpha, a, b = (float(value) for value in params)
    return BgNbdParams(r, float(alpha / scale), a, b, float(total), len(T))


def check_converged(result, model: str) -> None:
    """Raise FitError unless scipy's ``result`` (fitted in log-parameters) reached a finite optimum."""
    gradient = np.max(np.abs(result.jac)) if result.jac is not None else np.inf
    if not np.all(np.isfinite(result.x)) or np.any(np.abs(result.x) > _MAX_ABS_LOG_PARAM):
        raise FitError(f"the {model} likelihood has no finite maximum for these data (a parameter ran away towards "
                       "0 or infinity): too few customers, or too little variety among them")
    if not result.success and not gradient < _GRADIENT_TOLERANCE:
        raise FitError(f"the {model} fit did not converge: {result.message} (largest gradient {gradient:.2g})")


def _customer_dropout_log_odds(params, frequency, recency, T) -> np.ndarray:
    r, alpha, a, b = params
    return _dropout_log_odds(r, a, b, frequency, np.log(alpha + T), np.log(alpha + recency))


def probability_alive(params: BgNbdParams | Sequence[float], frequency, recency, T) -> np.ndarray:
    """P(still active at T | x, t_x, T); 1 where frequency is 0.

    Fader, Hardie & Lee's note "Computing P(alive) Using the BG/NBD Model": 1 / (1 + [x > 0] a / (b + x - 1)
    * ((alpha + T) / (alpha + t_x))^(r + x)), evaluated from its log-odds so that it cannot overflow.
    """
    frequency, recency, T = customer_arrays(frequency, recency, T)
    return expit(-_customer_dropout_log_odds(_params_of(params), frequency, recency, T))


def expected_purchases(params: BgNbdParams | Sequence[float], t, frequency, recency, T) -> np.ndarray:
    """E[Y(t) | x, t_x, T]: the expected number of purchases in the next ``t`` time units (paper eq. 10).

    Eq. 10's factor ((alpha+T)/(alpha+T+t))^(r+x) * 2F1(r+x, b+x; a+b+x-1; z) is rewritten with Euler's
    transformation as ((alpha+T)/(alpha+T+t))^(a-1) * 2F1(a+b-1-r, a-1; a+b+x-1; z), z = t/(alpha+T+t):
    the same value, but the series no longer grows with x, so heavy buyers do not overflow it.
    Undefined for a = 1 exactly (a removable singularity the fit does not hit in practice).
    """
    r, alpha, a, b = _params_of(params)
    frequency, recency, T = customer_arrays(frequency, recency, T)
    t = np.asarray(t, dtype=float)
    if np.any(~np.isfinite(t)) or np.any(t < 0):
        raise ValueError("t must be finite and not negative")
    horizon = alpha + T + t
    remaining = 1.0 - np.exp((a - 1) * (np.log(alpha + T) - np.log(horizon))) * hyp2f1(
        a + b - 1 - r, a - 1, a + b + frequency - 1, t / horizon)
    alive = expit(-_customer_dropout_log_odds((r, alpha, a, b), frequency, recency, T))
    return (a + b + frequency - 1) / (a - 1) * remaining * alive


def expected_purchases_new_customer(params: BgNbdParams | Sequence[float], t) -> np.ndarray:
    """E[X(t)]: expected purchases in ``t`` time units by a randomly chosen new customer (paper eq. 7).

    Eq. 7 is eq. 10 at x = t_x = T = 0, so it shares that function's Euler-transformed evaluation.
    """
    t = np.atleast_1d(np.asarray(t, dtype=float))
    zeros = np.zeros_like(t)
    return expected_purchases(params, t, zeros, zeros, zeros)

"""The BG/NBD model: the published CDNOW fit, closed forms against brute-force integration, parameter recovery."""

# ruff: noqa: N803, N806 - T (the customer's age) is the paper's and lifetimes' name, kept for recognition
import csv
import math
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("scipy", reason="the scoring models need scipy")

from scipy.integrate import dblquad  # noqa: E402

from clarion.scoring.bgnbd import (  # noqa: E402
    BgNbdParams,
    FitError,
    check_converged,
    expected_purchases,
    expected_purchases_new_customer,
    fit_bgnbd,
    log_likelihood,
    probability_alive,
)

# Fader, Hardie & Lee (2005), the BG/NBD fit of the CDNOW sample over its 39-week calibration period.
PAPER = (0.243, 4.414, 0.793, 2.426)  # r, alpha (per week), a, b
PAPER_LOG_LIKELIHOOD = -9582.4


@pytest.fixture
def cdnow_summary(cdnow_dir):
    with open(cdnow_dir / "cdnow_customers_summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return tuple(np.array([float(row[column]) for row in rows]) for column in ("frequency", "recency", "T"))


def simulate_bgnbd(r, alpha, a, b, customers, rng, T_range):
    """Draw (x, t_x, T) for customers following the BG/NBD story, T uniform in T_range (weeks).

    A customer drops out right after the K-th repeat purchase, K ~ Geometric(p); while alive, repeat purchases
    form a Poisson process of rate lambda, so x = min(N(T), K) with N(T) ~ Poisson(lambda T); given N(T) = n the
    purchase times are n sorted uniforms on [0, T], so the x-th of them, t_x, is T * Beta(x, n - x + 1).
    """
    T = rng.uniform(*T_range, customers)
    rate = rng.gamma(r, 1 / alpha, customers)
    dropout = rng.beta(a, b, customers)
    in_window = rng.poisson(rate * T)
    frequency = np.minimum(in_window, rng.geometric(dropout))
    recency = np.zeros(customers)
    repeat = frequency > 0
    recency[repeat] = T[repeat] * rng.beta(frequency[repeat], in_window[repeat] - frequency[repeat] + 1)
    return frequency.astype(float), recency, T


def mixture_integral(params, individual):
    """E[individual(lambda, p)] over lambda ~ Gamma(r, alpha) and p ~ Beta(a, b), by numerical integration.

    Substituting s = lambda^r and u = p^a turns the densities' singular factors lambda^(r-1) dlambda and
    p^(a-1) dp into ds / r and du / a, so the integrand quadpack sees is bounded.
    """
    r, alpha, a, b = params
    normaliser = alpha**r / (math.gamma(r) * r) / (a * math.exp(math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)))

    def substituted(s, u):
        rate, dropout = s ** (1 / r), u ** (1 / a)
        return individual(rate, dropout) * math.exp(-alpha * rate) * (1 - dropout) ** (b - 1)

    value, _ = dblquad(substituted, 0, 1, 0, np.inf, epsabs=0, epsrel=1e-10)
    return normaliser * value


def test_fit_reproduces_the_published_cdnow_parameters(cdnow_summary):
    # given the CDNOW calibration summary (2,357 customers, weeks)
    # when it is fitted by maximum likelihood
    fitted = fit_bgnbd(*cdnow_summary)
    # then the paper's parameters come back to every digit it prints, and its log-likelihood within 0.1
    assert (fitted.r, fitted.alpha, fitted.a, fitted.b) == pytest.approx(PAPER, abs=5e-4)
    assert fitted.log_likelihood == pytest.approx(PAPER_LOG_LIKELIHOOD, abs=0.1)
    assert fitted.customers == 2357
    assert fitted.log_likelihood == pytest.approx(log_likelihood(fitted, *cdnow_summary))
    assert set(fitted.as_dict()) == {"r", "alpha", "a", "b", "log_likelihood", "customers"}


def test_unconditional_expectation_matches_hardies_spreadsheet(cdnow_summary):
    # given the CDNOW fit and E[X(t)] from Hardie's BG/NBD spreadsheet (note 004; quoted by lifetimes' tests)
    fitted = fit_bgnbd(*cdnow_summary)
    weeks = [0.1429, 1.0, 3.0, 31.8571, 32.0, 78.0]
    spreadsheet = [0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576]
    # when eq. 7 is evaluated
    expected = expected_purchases_new_customer(fitted, weeks)
    # then it matches to the sheet's fourth decimal, except at 78 weeks, 1.8580 here and 4e-4 below on the sheet
    # (whose own sum of the 2F1 series converges slowly there, z = 0.95); the integral test below backs 1.8580
    assert expected[:-1] == pytest.approx(spreadsheet[:-1], abs=5e-5)
    assert expected[-1] == pytest.approx(spreadsheet[-1], abs=5e-4)


def test_conditional_expectation_matches_the_published_example():
    # given the paper's parameters and CDNOW customer 1 (x = 2, t_x = 30.43, T = 38.86 weeks)
    # when their purchases in the next 39 weeks are predicted (eq. 10)
    expected = expected_purchases(PAPER, 39, 2, 30.43, 38.86)
    # then it is the 1.226 of Fader & Hardie's spreadsheet (quoted by lifetimes' tests)
    assert expected == pytest.approx([1.226], abs=5e-4)


@pytest.mark.parametrize("frequency, recency, T", [(2, 30.43, 38.86), (0, 0.0, 38.86), (7, 20.0, 35.0),
                                                   (1, 3.0, 30.0)])
def test_closed_forms_agree_with_integration_over_the_mixing_distributions(frequency, recency, T):
    # given one customer's history and, for fixed (lambda, p), the model's individual-level quantities:
    # the likelihood of the history is (1-p)^x lambda^x e^(-lambda T) (alive at T) + [x>0] p (1-p)^(x-1)
    # lambda^x e^(-lambda t_x) (dropped after the last purchase); alive, they buy (1 - e^(-lambda p t)) / p
    # more in t (the paper's individual-level E[X(t) | lambda, p])
    def alive(rate, dropout):
        return (1 - dropout) ** frequency * rate**frequency * math.exp(-rate * T)

    def likelihood(rate, dropout):
        dropped = dropout * (1 - dropout) ** (frequency - 1) * rate**frequency * math.exp(-rate * recency)
        return alive(rate, dropout) + (dropped if frequency > 0 else 0.0)

    def future(rate, dropout):
        return alive(rate, dropout) * (1 - math.exp(-rate * dropout * 39)) / dropout

    # when they are integrated numerically over the gamma and beta mixing distributions (Bayes' rule)
    marginal = mixture_integral(PAPER, likelihood)
    # then the closed forms give the same log-likelihood, P(alive) and 39-week expectation
    assert log_likelihood(PAPER, frequency, recency, T) == pytest.approx(math.log(marginal), rel=1e-8)
    assert probability_alive(PAPER, frequency, recency, T) == pytest.approx([mixture_integral(PAPER, alive) / marginal],
                                                                            rel=1e-8)
    assert expected_purchases(PAPER, 39, frequency, recency, T) == pytest.approx(
        [mixture_integral(PAPER, future) / marginal], rel=1e-8)


@pytest.mark.parametrize("weeks", [1.0, 39.0, 78.0])
def test_new_customer_expectation_agrees_with_integration(weeks):
    # given a new customer, alive at 0, who buys (1 - e^(-lambda p t)) / p in t for fixed (lambda, p)
    # when that is integrated over the mixing distributions
    integrated = mixture_integral(PAPER, lambda rate, dropout: (1 - math.exp(-rate * dropout * weeks)) / dropout)
    # then eq. 7 gives the same
    assert expected_purchases_new_customer(PAPER, weeks) == pytest.approx([integrated], rel=1e-8)


def test_probability_alive_follows_the_models_conventions():
    # given customers with no repeat purchase, and customers with 3 whose last purchase is ever more recent
    no_repeat = probability_alive(PAPER, [0, 0], [0, 0], [1.0, 100.0])
    recencies = [5.0, 15.0, 25.0, 35.0]
    more_recent = probability_alive(PAPER, 3, recencies, 38.0)
    # then dropout only follows a repeat purchase, so the first are alive for sure, and recency raises P(alive)
    assert no_repeat.tolist() == [1.0, 1.0]
    assert np.all(np.diff(more_recent) > 0)
    assert np.all((more_recent > 0) & (more_recent < 1))


def test_expected_purchases_start_at_zero_and_grow_with_the_horizon():
    # given one customer
    horizons = np.array([0.0, 1.0, 4.0, 13.0, 52.0, 104.0])
    # when their purchases are predicted over longer and longer horizons
    expected = expected_purchases(PAPER, horizons, 2, 30.43, 38.86)
    # then there are none in no time and ever more after
    assert expected[0] == 0.0
    assert np.all(np.diff(expected) > 0)


def test_heavy_buyers_stay_finite():
    # given a customer with 3,000 repeat purchases (e.g. a daily buyer over eight years, in days), where eq. 10
    # as printed multiplies a vanishing power by an overflowing 2F1 (0 * inf)
    frequency, recency, T, horizon = 3000, 2999.0, 3000.0, 3000.0
    # when their purchases are predicted
    expected = expected_purchases(PAPER, horizon, frequency, recency, T)[0]
    # then the answer is finite and below what a customer who never drops out at the posterior's highest
    # mean rate, (r + x) / (alpha + t_x), would buy
    r, alpha, _, _ = PAPER
    assert 0 < expected < horizon * (r + frequency) / (alpha + recency)


def test_the_time_unit_only_rescales_alpha(cdnow_summary):
    # given the CDNOW summary in weeks and in days
    frequency, recency, T = cdnow_summary
    weeks, days = fit_bgnbd(frequency, recency, T), fit_bgnbd(frequency, recency * 7, T * 7)
    # then the fits agree, with alpha in days 7 times alpha in weeks; each repeat purchase's time density is
    # 7 times thinner in days, so the log-likelihood is lower by sum(x) * ln 7
    assert (days.r, days.alpha / 7, days.a, days.b) == pytest.approx((weeks.r, weeks.alpha, weeks.a, weeks.b),
                                                                     rel=1e-5)
    assert days.log_likelihood == pytest.approx(weeks.log_likelihood - frequency.sum() * math.log(7), abs=1e-3)


def test_fit_recovers_the_parameters_of_simulated_customers():
    # given 20,000 customers simulated from known parameters, observed for 39 to 78 weeks
    truth = (0.5, 5.0, 0.8, 2.5)
    frequency, recency, T = simulate_bgnbd(*truth, 20_000, np.random.default_rng(20050401), (39.0, 78.0))
    # when they are fitted
    fitted = fit_bgnbd(frequency, recency, T)
    # then the parameters come back within about 3.5 sampling standard deviations (measured over 12 seeds:
    # 1.2% for r, 1.4% for alpha, 3.6% for a and 4.6% for b)
    assert (fitted.r, fitted.alpha) == pytest.approx(truth[:2], rel=0.05)
    assert (fitted.a, fitted.b) == pytest.approx(truth[2:], rel=0.15)


def test_penalizer_shrinks_the_parameters(cdnow_summary):
    # given the CDNOW summary
    plain, penalised = fit_bgnbd(*cdnow_summary), fit_bgnbd(*cdnow_summary, penalizer=0.1)
    # then lifetimes' L2 penalty pulls every parameter towards 0, at the price of some likelihood
    assert all(getattr(penalised, name) < getattr(plain, name) for name in ("r", "alpha", "a", "b"))
    assert penalised.log_likelihood < plain.log_likelihood


@pytest.mark.parametrize("frequency, recency, T, message", [
    ([1, 2], [1, 1, 1], [2, 2, 2], "different lengths"),
    ([1, 2], [1, -1], [2, 2], "recency contains a negative value"),
    ([1, 2], [1, 3], [2, 2], "recency is greater than T"),
    ([1.5, 2], [1, 1], [2, 2], "whole number"),
    ([1, np.nan], [1, 1], [2, 2], "frequency contains a missing"),
    ([], [], [], "no customers"),
    ([0, 0], [0, 0], [2, 2], "no customer has a repeat purchase"),
    ([1, 0], [0, 0], [0, 0], "every T is 0"),
])
def test_bad_input_is_rejected_with_a_reason(frequency, recency, T, message):
    with pytest.raises(ValueError, match=message):
        fit_bgnbd(frequency, recency, T)


def test_data_without_a_finite_maximum_raise_fit_error():
    # given three customers who each bought once more exactly at the end: no spread in rates, no dropout seen
    # when they are fitted
    # then the parameters run away and the fit says so
    with pytest.raises(FitError, match="no finite maximum"):
        fit_bgnbd([1, 1, 1], [5, 5, 5], [5, 5, 5])


def test_an_optimiser_that_stops_short_raises_fit_error():
    # given an optimiser result that gave up with the gradient still large
    stopped = SimpleNamespace(success=False, x=np.zeros(4), jac=np.full(4, 0.3), message="ABNORMAL_TERMINATION")
    # then it is not taken for a fit
    with pytest.raises(FitError, match="did not converge: ABNORMAL_TERMINATION"):
        check_converged(stopped, "BG/NBD")


def test_params_can_be_given_as_a_tuple_or_the_dataclass():
    as_dataclass = BgNbdParams(*PAPER, log_likelihood=PAPER_LOG_LIKELIHOOD, customers=2357)
    assert probability_alive(as_dataclass, 2, 30.43, 38.86) == probability_alive(PAPER, 2, 30.43, 38.86)

"""The Gamma-Gamma spend model and customer lifetime value: the published CDNOW fit, closed forms, recovery."""

# ruff: noqa: N803, N806 - T (the customer's age) is the paper's and lifetimes' name, kept for recognition
import math
from datetime import date

import numpy as np
import pytest

pytest.importorskip("scipy", reason="the scoring models need scipy")

from cdnow_sample import cdnow_sample_purchases
from scipy.integrate import quad  # noqa: E402
from scipy.stats import gamma  # noqa: E402

from clarion.scoring.bgnbd import BgNbdParams, FitError, expected_purchases  # noqa: E402
from clarion.scoring.gamma_gamma import (  # noqa: E402
    GammaGammaParams,
    customer_lifetime_value,
    expected_average_value,
    fit_gamma_gamma,
    log_likelihood,
)
from clarion.scoring.summary import summarize  # noqa: E402

# Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value", fitted on the CDNOW sample's 946 repeat
# customers over the 39-week calibration period.
PUBLISHED = (6.25, 3.74, 15.44)  # p, q, v (dollars)
CDNOW_BGNBD = BgNbdParams(0.243, 4.414, 0.793, 2.426, log_likelihood=-9582.4, customers=2357)  # weeks


def simulate_spend(p, q, v, customers, rng):
    """x = 1 + Poisson(2) repeat purchases each; nu ~ Gamma(q, rate v); the mean of x Gamma(p, rate nu) values."""
    frequency = 1 + rng.poisson(2.0, customers)
    nu = rng.gamma(q, 1 / v, customers)
    # the sum of x Gamma(p, nu) draws is Gamma(px, nu), so their mean is Gamma(px, rate x nu)
    return frequency.astype(float), rng.gamma(p * frequency, 1 / (frequency * nu))


def test_fit_on_the_summarised_cdnow_sample_reproduces_the_published_parameters(cdnow_dir):
    # given the CDNOW sample summarised over the calibration period (weeks; mean value of the repeat purchases)
    summary = summarize(cdnow_sample_purchases(cdnow_dir), observation_end=date(1997, 9, 30))
    # when the Gamma-Gamma model is fitted (customers without a repeat purchase are left out)
    fitted = fit_gamma_gamma(summary.frequency, summary.monetary_value)
    # then Fader & Hardie's p = 6.25, q = 3.74, v = 15.44 come back to every printed digit (6.2496, 3.7442,
    # 15.4435). lifetimes' documentation prints v = 15.45 from its own monetary column, whose mean over the
    # repeat customers is $35.0786 where these purchases give $35.0778.
    assert fitted.customers == 946
    assert (fitted.p, fitted.q, fitted.v) == pytest.approx(PUBLISHED, abs=5e-3)
    assert summary.monetary_value[summary.frequency > 0].mean() == pytest.approx(35.0778, abs=1e-4)
    assert set(fitted.as_dict()) == {"p", "q", "v", "log_likelihood", "customers"}


@pytest.mark.parametrize("frequency, monetary_value", [(1, 12.0), (2, 22.345), (9, 71.0)])
def test_closed_forms_agree_with_integration_over_nu(frequency, monetary_value):
    # given a customer's mean m_x over x purchases: for a fixed nu, m_x ~ Gamma(px, rate x nu), nu ~ Gamma(q, v),
    # and the expected value of a purchase is p / nu
    p, q, v = PUBLISHED

    def joint(nu):
        density = gamma.pdf(monetary_value, p * frequency, scale=1 / (frequency * nu))
        return density * gamma.pdf(nu, q, scale=1 / v)

    # when they are integrated numerically over nu
    marginal = quad(joint, 0, np.inf, epsabs=0, epsrel=1e-11)[0]
    posterior_mean = quad(lambda nu: p / nu * joint(nu), 0, np.inf, epsabs=0, epsrel=1e-11)[0] / marginal
    # then the closed-form log-likelihood and E[M | x, m_x] agree
    params = GammaGammaParams(*PUBLISHED, log_likelihood=0.0, customers=1)
    assert log_likelihood(params, frequency, monetary_value) == pytest.approx(math.log(marginal), rel=1e-9)
    assert expected_average_value(params, frequency, monetary_value) == pytest.approx([posterior_mean], rel=1e-8)


def test_expected_average_value_shrinks_towards_the_population_mean():
    # given the published parameters, whose population mean spend is p v / (q - 1) = $35.17
    p, q, v = PUBLISHED
    population = p * v / (q - 1)
    # when customers with 0, 1 and 20 repeat purchases averaging $100 are valued
    values = expected_average_value(PUBLISHED, [0, 1, 20], [0.0, 100.0, 100.0])
    # then no history gives the population mean, and more purchases pull the estimate towards their own mean
    assert values[0] == pytest.approx(population)
    assert population < values[1] < values[2] < 100.0


def test_fit_recovers_the_parameters_of_simulated_spend():
    # given 20,000 customers whose spend is simulated from known parameters
    truth = (6.0, 4.0, 15.0)
    frequency, monetary_value = simulate_spend(*truth, 20_000, np.random.default_rng(2013))
    # when they are fitted
    fitted = fit_gamma_gamma(frequency, monetary_value)
    # then the parameters come back within about 3.5 sampling standard deviations (over 12 seeds: 5% for p,
    # 1.6% for q, 7% for v, which move together), and the population mean spend within 2% (sd 0.5%)
    assert fitted.q == pytest.approx(truth[1], rel=0.07)
    assert (fitted.p, fitted.v) == pytest.approx((truth[0], truth[2]), rel=0.25)
    assert fitted.p * fitted.v / (fitted.q - 1) == pytest.approx(truth[0] * truth[2] / (truth[1] - 1), rel=0.02)


def test_customers_without_repeat_purchases_do_not_change_the_fit():
    frequency, monetary_value = simulate_spend(6.0, 4.0, 15.0, 500, np.random.default_rng(7))
    with_newcomers = fit_gamma_gamma(np.append(frequency, [0, 0]), np.append(monetary_value, [0.0, 0.0]))
    assert with_newcomers == fit_gamma_gamma(frequency, monetary_value)
    assert with_newcomers.customers == 500


@pytest.mark.parametrize("frequency, monetary_value, message", [
    ([0, 0], [0.0, 0.0], "no customer has a repeat purchase"),
    ([1, 2], [10.0, 0.0], "must be positive"),
    ([1, 2], [10.0, 5.0, 4.0], "different lengths"),
    ([1.5, 2], [10.0, 5.0], "whole, non-negative"),
    ([1, 2], [np.inf, 5.0], "missing or infinite"),
])
def test_bad_input_is_rejected_with_a_reason(frequency, monetary_value, message):
    with pytest.raises(ValueError, match=message):
        fit_gamma_gamma(frequency, monetary_value)


def test_identical_spend_has_no_finite_maximum():
    # given repeat customers whose purchases all cost the same, so spend varies neither within nor across them
    # then the fit cannot settle on p (it runs to infinity) and says so
    with pytest.raises(FitError, match="no finite maximum"):
        fit_gamma_gamma([1, 2, 3], [5.0, 5.0, 5.0])


def test_expected_value_needs_a_finite_population_mean():
    with pytest.raises(ValueError, match="not above 1"):
        expected_average_value((6.0, 0.9, 15.0), [1], [10.0])


def test_lifetime_value_without_discount_is_expected_purchases_times_expected_value():
    # given two customers and no discounting
    frequency, recency, T, spend = [2, 0], [30.43, 0.0], [38.86, 38.86], [22.345, 0.0]
    # when their value over the next 52 weeks is computed
    value = customer_lifetime_value(CDNOW_BGNBD, PUBLISHED, frequency, recency, T, spend, periods=52, discount_rate=0)
    # then the per-week increments add up to E[Y(52)] * E[M]
    expected = expected_purchases(CDNOW_BGNBD, 52, frequency, recency, T) * expected_average_value(
        PUBLISHED, frequency, spend)
    assert value == pytest.approx(expected, rel=1e-12)


def test_discounting_lowers_lifetime_value_by_at_most_the_last_periods_factor():
    # given CDNOW customer 1 and a 10% annual discount rate, 1.10 ** (1 / 52) - 1 per week
    weekly = 1.10 ** (1 / 52) - 1
    customer = ([2], [30.43], [38.86], [22.345])
    undiscounted = customer_lifetime_value(CDNOW_BGNBD, PUBLISHED, *customer, periods=52, discount_rate=0)[0]
    # when the value over 52 weeks is discounted
    discounted = customer_lifetime_value(CDNOW_BGNBD, PUBLISHED, *customer, periods=52, discount_rate=weekly)[0]
    # then it lies between the undiscounted value and that value discounted over the whole year
    assert undiscounted / 1.10 < discounted < undiscounted
    # and one period is that period's purchases times the value, discounted once
    one_week = customer_lifetime_value(CDNOW_BGNBD, PUBLISHED, *customer, periods=1, discount_rate=weekly)[0]
    first_week = expected_purchases(CDNOW_BGNBD, 1, *customer[:3])[0] * expected_average_value(PUBLISHED, 2, 22.345)[0]
    assert one_week == pytest.approx(first_week / (1 + weekly), rel=1e-12)


@pytest.mark.parametrize("periods, discount_rate, message", [(-1, 0.0, "periods"), (2.5, 0.0, "periods"),
                                                             (12, -0.1, "discount_rate")])
def test_lifetime_value_rejects_bad_horizons_and_rates(periods, discount_rate, message):
    with pytest.raises(ValueError, match=message):
        customer_lifetime_value(CDNOW_BGNBD, PUBLISHED, [1], [1.0], [2.0], [10.0], periods=periods,
                                discount_rate=discount_rate)

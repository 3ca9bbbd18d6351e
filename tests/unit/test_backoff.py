"""Retry backoff: full jitter, capped, never sooner than the provider's Retry-After."""

import math
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clarion.domain.sending_time import retry_delay

BASE, CAP = 0.5, 300.0  # seconds


def test_attempt_zero_waits_up_to_base():
    # given the first retry, then the delay is uniform in [0, base]
    rng = random.Random(1)
    delays = [retry_delay(0, base=BASE, cap=CAP, rng=rng) for _ in range(2000)]
    assert 0 <= min(delays) and max(delays) <= BASE
    assert statistics.median(delays) == pytest.approx(BASE / 2, rel=0.1)


def test_median_doubles_with_each_attempt_until_the_cap():
    rng = random.Random(2)
    medians = [statistics.median(retry_delay(n, base=BASE, cap=CAP, rng=rng) for _ in range(2000))
               for n in range(12)]
    # base * 2**n passes the 300 s cap at n = 10 (512 s)
    assert all(a < b for a, b in zip(medians[:10], medians[1:11], strict=True))
    for n in range(9):
        assert medians[n] == pytest.approx(BASE * 2**n / 2, rel=0.1)
    assert medians[10] == pytest.approx(CAP / 2, rel=0.1)
    assert medians[11] == pytest.approx(CAP / 2, rel=0.1)


@pytest.mark.parametrize("attempt", [1023, 1024, 10**6, 10**18])
def test_huge_attempts_stay_at_the_cap_without_overflow(attempt):
    delay = retry_delay(attempt, base=BASE, cap=CAP, rng=random.Random(3))
    assert 0 <= delay <= CAP


def test_retry_after_is_a_floor_even_above_the_cap():
    rng = random.Random(4)
    # a floor inside the jitter range: spread over [retry_after, ceiling], never below
    delays = [retry_delay(8, base=BASE, cap=CAP, rng=rng, retry_after=100.0) for _ in range(500)]
    assert min(delays) >= 100.0 and max(delays) <= BASE * 2**8
    assert len(set(delays)) > 400
    # a floor above the ceiling or the cap: exactly what the provider asked
    assert retry_delay(0, base=BASE, cap=CAP, rng=rng, retry_after=30.0) == 30.0
    assert retry_delay(20, base=BASE, cap=CAP, rng=rng, retry_after=3600.0) == 3600.0


def test_past_or_zero_retry_after_imposes_nothing():
    for retry_after in (0.0, -5.0):
        delay = retry_delay(0, base=BASE, cap=CAP, rng=random.Random(5), retry_after=retry_after)
        assert delay == retry_delay(0, base=BASE, cap=CAP, rng=random.Random(5))


def test_same_seed_same_delays():
    first = [retry_delay(n, base=BASE, cap=CAP, rng=random.Random(6)) for n in range(5)]
    again = [retry_delay(n, base=BASE, cap=CAP, rng=random.Random(6)) for n in range(5)]
    assert first == again


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"attempt": -1}, "attempt"),
    ({"base": -1.0}, "base"),
    ({"cap": math.inf}, "cap"),
    ({"base": math.nan}, "base"),
    ({"retry_after": math.nan}, "retry_after"),
])
def test_bad_arguments_are_refused(kwargs, message):
    arguments = {"attempt": 1, "base": BASE, "cap": CAP, "rng": random.Random(7)} | kwargs
    with pytest.raises(ValueError, match=message):
        retry_delay(**arguments)


finite_seconds = st.floats(0, 1e6, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(attempt=st.integers(0, 10**6), base=finite_seconds, cap=finite_seconds,
       retry_after=st.none() | st.floats(-1e3, 1e7, allow_nan=False), seed=st.integers(0, 2**32))
def test_delay_bounds(attempt, base, cap, retry_after, seed):
    delay = retry_delay(attempt, base=base, cap=cap, rng=random.Random(seed), retry_after=retry_after)
    floor = max(retry_after or 0.0, 0.0)
    assert floor <= delay <= max(floor, min(cap, base * 2.0 ** min(attempt, 1023)))
    assert delay <= max(cap, floor)

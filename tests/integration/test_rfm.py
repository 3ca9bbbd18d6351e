"""RFM: quintile scores equal to the reference formula, the documented grid, transitions; both stores."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from clarion.domain.events import EventInput
from clarion.scoring.rfm import SEGMENT_GRID, fm_score, quintile_scores, segment_of
from clarion.services import rfm
from clarion.services.identity import Identifiers
from clarion.store.schema_scores import contact_scores, rfm_transitions

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _orders(app, plan: dict[str, list[tuple[int, float]]]) -> dict[str, int]:
    """plan: external id -> [(days before NOW, revenue)]; returns the contact ids."""
    ids = {}
    with app.store.write() as conn:
        for external_id, orders in plan.items():
            cid = ids[external_id] = app.contacts.identify(conn, Identifiers(external_id=external_id))
            app.events.ingest(conn, [
                EventInput("Order Completed", f"{external_id}-{i}-{days}", NOW - timedelta(days=days), NOW,
                           {"revenue": revenue, "order_id": f"{external_id}-{i}"}, cid)
                for i, (days, revenue) in enumerate(orders)])
    return ids


def _scores(app) -> dict[int, tuple]:
    with app.store.read() as conn:
        rows = conn.execute(select(contact_scores.c.contact_id, contact_scores.c.rfm_r, contact_scores.c.rfm_f,
                                   contact_scores.c.rfm_m, contact_scores.c.rfm_segment))
        return {row[0]: tuple(row[1:]) for row in rows}


def test_scores_follow_the_rank_formula_and_the_grid(app):
    # given 60 customers with random order histories (ties included: many have one order)
    rng = random.Random(5)
    plan = {f"c{i}": [(rng.randint(1, 400), round(rng.choice([9.99, 20.0, rng.uniform(5, 500)]), 2))
                      for _ in range(rng.choice([1, 1, 1, 2, 3, 8]))] for i in range(60)}
    ids = _orders(app, plan)
    # when RFM is computed over all time
    with app.store.write() as conn:
        result = rfm.compute(conn)
    # then every customer has the scores of the reference formula and the grid's segment
    assert result.scored == 60 and result.transitions == 0
    keys = list(plan)
    recency = quintile_scores([-min(days for days, _ in plan[k]) for k in keys])
    frequency = quintile_scores([len(plan[k]) for k in keys])
    monetary = quintile_scores([round(sum(rev for _, rev in plan[k]), 2) for k in keys])
    expected = {ids[k]: (int(r), int(f), int(m), segment_of(int(r), int(f), int(m)))
                for k, r, f, m in zip(keys, recency, frequency, monetary, strict=True)}
    assert _scores(app) == expected


def test_equal_customers_get_equal_scores_and_the_best_get_five():
    # given values with ties
    scores = quintile_scores([1, 1, 1, 1, 1, 1, 2, 2, 3, 10])
    # then ties share the lowest rank's score, and the largest value scores 5
    assert list(scores) == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]
    assert list(quintile_scores([5, 4, 3, 2, 1])) == [5, 4, 3, 2, 1]


@pytest.mark.parametrize(("r", "f", "m", "name"), [
    (5, 5, 5, "champions"), (5, 1, 1, "new_customers"), (4, 1, 1, "promising"), (1, 5, 5, "cant_lose"),
    (2, 5, 4, "at_risk"), (1, 1, 1, "lost"), (3, 3, 3, "need_attention"), (3, 1, 2, "about_to_sleep"),
    (4, 2, 2, "potential_loyalist"), (4, 4, 3, "loyal"), (2, 1, 2, "hibernating"),
])
def test_named_segments_of_the_documented_grid(r, f, m, name):
    assert segment_of(r, f, m) == name
    assert SEGMENT_GRID[fm_score(f, m) - 1][r - 1] == name


def test_every_cell_has_a_segment_and_scores_outside_1_to_5_are_refused():
    assert all(segment_of(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6))
    with pytest.raises(ValueError, match="outside 1..5"):
        segment_of(0, 3, 3)


def test_a_recompute_records_who_moved_and_who_left(app):
    # given three customers scored once
    ids = _orders(app, {"old": [(300, 50.0)], "mid": [(100, 50.0)], "new": [(1, 50.0)]})
    with app.store.write() as conn:
        rfm.compute(conn, window_days=365, as_of=NOW)
    before = _scores(app)
    # when time passes (the reference moves 200 days on) and the oldest customer leaves the window
    with app.store.write() as conn:
        result = rfm.compute(conn, window_days=365, as_of=NOW + timedelta(days=200))
    # then the leaver has no scores and a transition to nothing; movers have one transition each
    after = _scores(app)
    assert result.unscored == 1 and after[ids["old"]] == (None, None, None, None)
    with app.store.read() as conn:
        moves = {row.contact_id: (row.from_segment, row.to_segment) for row in conn.execute(select(rfm_transitions))}
    assert moves[ids["old"]] == (before[ids["old"]][3], None)
    changed = {cid for cid in (ids["mid"], ids["new"]) if before[cid][3] != after[cid][3]}
    assert set(moves) == {ids["old"]} | changed and result.transitions == len(moves)


def test_summary_lists_every_segment_with_sizes(app):
    _orders(app, {"a": [(1, 10.0)], "b": [(2, 20.0), (3, 30.0)]})
    with app.store.write() as conn:
        rfm.compute(conn)
    with app.store.read() as conn:
        rows = rfm.summary(conn)
    assert [row["segment"] for row in rows][:2] == ["champions", "loyal"] and len(rows) == 11
    assert sum(row["contacts"] for row in rows) == 2

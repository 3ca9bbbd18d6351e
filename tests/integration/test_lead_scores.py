"""Lead scoring: event points with half-life decay, filters, windows and caps, attribute rules; both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from clarion.domain.errors import FieldError
from clarion.domain.events import EventInput
from clarion.domain.profiles import ProfilePatch
from clarion.segments.compiler import CompileContext
from clarion.services.identity import Identifiers
from clarion.services.lead_scores import LeadScoreService
from clarion.store.schema_scores import contact_scores

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
CONTEXT = CompileContext(now=NOW)
CONFIG = {"half_life_days": 10, "rules": [
    {"name": "views", "event": "Product Viewed", "points": 2},
    {"name": "big orders", "event": "Order Completed", "where": "revenue > 100", "points": 10, "within_days": 30},
    {"name": "capped signups", "event": "Signed Up", "points": 4, "max_points": 5},
    {"name": "americans", "rule": 'country = "US"', "points": 5},
    {"name": "no email", "rule": "not email exists", "points": -1},
]}


def _world(app, conn) -> dict[str, int]:
    ids = {name: app.contacts.identify(conn, Identifiers(external_id=name), ProfilePatch(country=country,
                                                                                           email=f"{name}@x.io"))
           for name, country in (("ana", "PT"), ("bob", "US"), ("cy", "FR"))}
    plan = [("ana", "Product Viewed", 0, {}), ("ana", "Product Viewed", 10, {}),
            ("bob", "Order Completed", 5, {"revenue": 150.0}), ("bob", "Order Completed", 1, {"revenue": 50.0}),
            ("bob", "Order Completed", 40, {"revenue": 500.0}), ("cy", "Signed Up", 0, {}),
            ("cy", "Signed Up", 0.5, {})]
    app.events.ingest(conn, [EventInput(event, f"lead-{i}", NOW - timedelta(days=days), NOW, props, ids[name])
                             for i, (name, event, days, props) in enumerate(plan)])
    return ids


def _scores(conn) -> dict[int, float]:
    return {row[0]: row[1] for row in conn.execute(select(contact_scores.c.contact_id, contact_scores.c.lead_score))}


def test_points_decay_with_the_half_life_and_follow_filters_windows_and_caps(app):
    service = LeadScoreService()
    with app.store.write() as conn:
        # given contacts with events of known ages and the configuration above
        ids = _world(app, conn)
        service.set_config(conn, CONFIG, CONTEXT)
        # when scores are computed
        result = service.compute(conn, CONTEXT)
        scores = _scores(conn)
    # then each score is the sum of its decayed, filtered and capped points
    half = 0.5 ** (5 / 10)
    assert result.scored == 3 and result.rules == 5
    assert scores[ids["ana"]] == pytest.approx(2 + 2 * 0.5)  # a view now, a view one half-life ago
    assert scores[ids["bob"]] == pytest.approx(10 * half + 5)  # only the big order inside 30 days; American
    assert scores[ids["cy"]] == pytest.approx(5)  # 4 + 4 * 0.5 ** 0.05 capped at 5


def test_a_contact_no_longer_earning_points_is_set_to_zero(app):
    service = LeadScoreService()
    with app.store.write() as conn:
        ids = _world(app, conn)
        service.set_config(conn, CONFIG, CONTEXT)
        service.compute(conn, CONTEXT)
        # when the configuration keeps only the view rule
        service.set_config(conn, {"rules": [CONFIG["rules"][0]]}, CONTEXT)
        result = service.compute(conn, CONTEXT)
        scores = _scores(conn)
        top = service.top(conn, limit=1)
    # then those who earned points before but not now have 0, and no decay applies without a half-life
    assert result.zeroed == 2 and scores[ids["bob"]] == 0 and scores[ids["cy"]] == 0
    assert scores[ids["ana"]] == pytest.approx(4) and top[0]["contact_id"] == ids["ana"]


@pytest.mark.parametrize(("document", "field", "reason"), [
    ({"rules": [{"name": "x", "points": 1}]}, "rules.0", "either an event or a rule"),
    ({"rules": [{"name": "x", "points": 1, "event": "A", "rule": 'country = "US"'}]}, "rules.0", "either"),
    ({"rules": [{"name": "x", "points": 1, "event": "A", "where": "revenue >"}]}, "rules.0.where", "line 1, column 10"),
    ({"rules": [{"name": "x", "points": 1, "event": "A", "where": "price > 1) >= 5 times #"}]}, "rules.0.where",
     "property filters only"),
    ({"rules": [{"name": "x", "points": 1, "rule": "orders.cnt > 1"}]}, "rules.0.rule", "unknown field"),
    ({"rules": [{"name": "x", "points": "many", "event": "A"}]}, "rules.0.points", "number"),
    ({"half_life_days": 0, "rules": []}, "half_life_days", "greater than 0"),
])
def test_bad_configurations_name_the_rule_and_field(app, document, field, reason):
    with app.store.write() as conn, pytest.raises(FieldError) as caught:
        LeadScoreService().set_config(conn, document, CONTEXT)
    assert caught.value.field == field and reason in caught.value.reason

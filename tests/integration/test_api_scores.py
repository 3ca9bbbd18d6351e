"""The native REST API for scores: RFM compute, summary and transitions; prediction fits, models and top."""

# ruff: noqa: F811 - pytest fixtures imported from test_api_support are parameters here

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from test_api_support import admin, admin_key, client, ingest_key  # noqa: F401 - fixtures

from clarion.domain.events import EventInput
from clarion.scoring.bgnbd import FitError
from clarion.scoring.rfm import SEGMENTS
from clarion.services import predictions
from clarion.services.identity import Identifiers

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _order(admin, email: str, days_ago: int, revenue: float) -> None:
    at = (NOW - timedelta(days=days_ago)).isoformat()
    response = admin.post("/api/events", json={"name": "Order Completed", "email": email, "occurred_at": at,
                                               "properties": {"revenue": revenue}})
    assert response.status_code == 201, response.text


@pytest.fixture
def shoppers(admin) -> dict[str, int]:
    """Five customers from a big recent spender to a single old order; a sixth contact never ordered."""
    plan = {"ana": [(2, 300.0), (10, 250.0), (30, 200.0)], "bo": [(5, 80.0), (60, 40.0)], "cy": [(40, 60.0)],
            "di": [(200, 20.0), (220, 15.0)], "ed": [(400, 9.99)]}
    for name, orders in plan.items():
        for days_ago, revenue in orders:
            _order(admin, f"{name}@example.com", days_ago, revenue)
    admin.post("/api/contacts", json={"email": "fay@example.com"})
    return {name: admin.get("/api/contacts/lookup", params={"email": f"{name}@example.com"}).json()["id"]
            for name in plan}


def test_rfm_compute_then_summary(admin, shoppers):
    # given five customers with orders and a contact without
    # when RFM is computed over all time, with no body
    computed = admin.post("/api/rfm/compute")
    # then every customer is scored, and the summary counts them per named segment
    assert computed.status_code == 200, computed.text
    result = computed.json()
    assert (result["scored"], result["transitions"], result["unscored"], result["window_days"]) == (5, 0, 0, None)
    assert datetime.fromisoformat(result["as_of"]) and result["seconds"] >= 0
    summary = admin.get("/api/rfm/summary").json()["items"]
    assert [row["segment"] for row in summary] == list(SEGMENTS)
    assert sum(row["contacts"] for row in summary) == 5
    assert all(row["label"] for row in summary)
    assert admin.get("/api/rfm/transitions").json() == {"limit": 100, "items": []}


def test_rfm_window_and_reference_date_record_transitions(admin, shoppers):
    # given RFM computed over all time
    admin.post("/api/rfm/compute")
    # when it is recomputed over the 100 days up to a reference date, then as of a year before NOW
    windowed = admin.post("/api/rfm/compute", json={"window_days": 100, "as_of": NOW.date().isoformat()}).json()
    # then only the three customers with orders in the window are scored; the others left RFM
    assert (windowed["scored"], windowed["unscored"], windowed["window_days"]) == (3, 2, 100)
    assert windowed["as_of"].startswith("2026-06-01T23:59:59")
    moves = admin.get("/api/rfm/transitions", params={"limit": 10}).json()["items"]
    left = {move["contact_id"] for move in moves if move["to_segment"] is None}
    assert left == {shoppers["di"], shoppers["ed"]} and len(moves) == windowed["transitions"]
    assert len(admin.get("/api/rfm/transitions", params={"limit": 1}).json()["items"]) == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"window_days": 0}, "window_days"), ({"window_days": 36_501}, "window_days"),
    ({"as_of": "2026-13-01"}, "as_of"), ({"as_of": "0001-01-02", "window_days": 30}, "as_of"),
    ({"since": "2026-01-01"}, "since")])
def test_invalid_rfm_input_is_422(admin, body, field):
    response = admin.post("/api/rfm/compute", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_fitting_with_too_few_customers_is_422(admin, shoppers):
    # given five customers, fewer than the models need
    # when the models are fitted
    response = admin.post("/api/predictions/fit", json={"as_of": "2026-06-01", "horizon_days": 30})
    # then the answer says so, and nothing was stored
    assert response.status_code == 422
    assert response.json()["error"] == "not_enough_data"
    assert "5 customers with orders" in response.json()["message"]
    assert admin.get("/api/predictions/models").json() == {"items": []}
    assert admin.get("/api/predictions/top").json() == {"limit": 10, "items": []}


def test_fit_then_models_and_top(app, admin):
    # given sixty customers, each with their own typical spend, many with repeat orders
    rng = random.Random(11)
    with app.store.write() as conn:
        for i in range(60):
            cid = app.contacts.identify(conn, Identifiers(external_id=f"c{i}"))
            spend = rng.lognormvariate(3.5, 0.8)
            app.events.ingest(conn, [
                EventInput("Order Completed", f"c{i}-{n}", NOW - timedelta(days=rng.randint(1, 700)), NOW,
                           {"revenue": round(spend * rng.uniform(0.7, 1.3), 2)}, cid)
                for n in range(rng.choice([1, 1, 2, 3, 5, 8]))])
    # when the models are fitted as of NOW
    fitted = admin.post("/api/predictions/fit", json={"as_of": "2026-06-01", "clv_days": 180})
    # then both fits are stored and the top customers are ordered by lifetime value
    assert fitted.status_code == 200, fitted.text
    assert fitted.json()["customers"] == 60 and fitted.json()["settings"]["clv_horizon_days"] == 180
    models = admin.get("/api/predictions/models").json()["items"]
    assert {m["model"] for m in models} == {"bgnbd", "gamma_gamma"}
    assert set(next(m for m in models if m["model"] == "bgnbd")["params"]) == {"r", "alpha", "a", "b"}
    top = admin.get("/api/predictions/top", params={"limit": 3}).json()["items"]
    values = [row["lifetime_value"] for row in top]
    assert len(values) == 3 and values == sorted(values, reverse=True)
    assert 0 <= top[0]["p_alive"] <= 1


def test_a_fit_that_does_not_converge_is_422(admin, monkeypatch):
    # given data the optimiser cannot fit (forced here: which data diverge depends on scipy)
    def diverge(conn, settings):
        raise FitError("the Gamma-Gamma likelihood has no finite maximum for these data")

    monkeypatch.setattr(predictions, "predict_and_store", diverge)
    # when the models are fitted
    response = admin.post("/api/predictions/fit")
    # then the answer is a 422 saying why, not a server error
    assert response.status_code == 422
    assert response.json()["error"] == "fit_failed" and "no finite maximum" in response.json()["message"]


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/predictions/fit", {"horizon_days": 0}, "horizon_days"),
    ("/api/predictions/fit", {"clv_days": 36_501}, "clv_days"),
    ("/api/predictions/fit", {"as_of": "soon"}, "as_of")])
def test_invalid_fit_input_is_422(admin, path, body, field):
    response = admin.post(path, json=body)
    assert response.status_code == 422 and response.json()["field"] == field


@pytest.mark.parametrize("path", ["/api/rfm/transitions", "/api/predictions/top"])
@pytest.mark.parametrize("limit", [0, 10_001])
def test_limits_out_of_range_are_422(admin, path, limit):
    assert admin.get(path, params={"limit": limit}).status_code == 422


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/api/rfm/compute"), ("GET", "/api/rfm/summary"), ("GET", "/api/rfm/transitions"),
    ("POST", "/api/predictions/fit"), ("GET", "/api/predictions/models"), ("GET", "/api/predictions/top")])
def test_only_admin_keys_may_use_scores(client, ingest_key, method, path):
    # given no key, and an ingest key
    # when either calls a score endpoint
    anonymous = client.request(method, path)
    ingest = client.request(method, path, headers={"Authorization": f"Bearer {ingest_key}"})
    # then the first is unauthorised and the second forbidden
    assert anonymous.status_code == 401 and ingest.status_code == 403


def test_lead_scoring_config_score_and_top(admin, shoppers):
    # given lead rules stored through the API
    config = {"rules": [{"name": "orders", "event": "Order Completed", "points": 2},
                        {"name": "big spenders", "rule": "orders.revenue > 500", "points": 10}]}
    stored = admin.put("/api/leads/config", json=config)
    assert stored.status_code == 200, stored.text
    assert admin.get("/api/leads/config").json()["rules"][1]["rule"] == "orders.revenue > 500"
    # when scores are computed
    scored = admin.post("/api/leads/score")
    top = admin.get("/api/leads/top", params={"limit": 1}).json()["items"]
    # then Ana (3 orders, 750 spent) leads with 3 * 2 + 10 points
    assert scored.status_code == 200 and scored.json()["scored"] == 5
    assert top[0]["contact_id"] == shoppers["ana"] and top[0]["lead_score"] == 16


@pytest.mark.parametrize(("config", "field"), [
    ({"rules": [{"name": "x", "points": 1, "rule": "orders.cnt > 1"}]}, "rules.0.rule"),
    ({"rules": [{"name": "x", "points": 1, "event": "A", "where": "price > 1) >= 5 times #"}]}, "rules.0.where"),
])
def test_bad_lead_rules_answer_422_naming_the_rule(admin, config, field):
    response = admin.put("/api/leads/config", json=config)
    assert response.status_code == 422 and response.json()["field"] == field
    assert admin.put("/api/leads/config", json={"rules": [{"name": "x", "points": 1}]}).status_code == 422
    assert admin.put("/api/leads/config", json={"rules": [], "unknown": 1}).status_code == 422

"""Predictions from stored events: the CDNOW sample through the database reproduces the published fits."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
from sqlalchemy import func, select

from clarion.domain.events import EventInput
from clarion.services import predictions
from clarion.services.identity import Identifiers
from clarion.store.schema_scores import contact_scores

CALIBRATION_END = datetime(1997, 9, 30, 23, 59, 59, tzinfo=UTC)  # the paper's 39-week calibration period


def _ingest_cdnow_sample(app, cdnow_dir) -> int:
    """One contact per sample id, one Order Completed event per row of CDNOW_sample.txt."""
    rows = [line.split() for line in (cdnow_dir / "CDNOW_sample.txt").read_text().splitlines() if line.strip()]
    with app.store.write() as conn:
        ids = {sample_id: app.contacts.identify(conn, Identifiers(external_id=f"s{sample_id}"))
               for sample_id in sorted({row[1] for row in rows})}
        items = [EventInput("Order Completed", f"cdnow-{n}",
                            datetime.combine(datetime.strptime(day, "%Y%m%d").date(), time(12), UTC), CALIBRATION_END,
                            {"revenue": float(dollars), "quantity": int(cds)}, ids[sample_id])
                 for n, (_, sample_id, day, cds, dollars) in enumerate(rows)]
        app.events.ingest(conn, items)
    return len(ids)


def test_cdnow_sample_through_the_store_reproduces_the_published_fits(app, cdnow_dir):
    # given the CDNOW sample's purchases ingested as events
    customers = _ingest_cdnow_sample(app, cdnow_dir)
    # when the models are fitted on the calibration period (weeks)
    with app.store.write() as conn:
        result = predictions.predict_and_store(conn, predictions.PredictionSettings(as_of=CALIBRATION_END))
        fits = predictions.latest_fits(conn)
        scored = conn.execute(select(func.count(), func.min(contact_scores.c.p_alive),
                                     func.max(contact_scores.c.p_alive))
                              .where(contact_scores.c.predicted_at.is_not(None))).one()
        top = predictions.top_customers(conn, limit=5)
    # then BG/NBD matches Fader, Hardie & Lee (2005) and Gamma-Gamma Fader & Hardie (2013) to 3 digits
    assert result.customers == customers == 2357
    assert {k: round(v, 3) for k, v in result.bgnbd.items() if k in "r alpha a b".split()} == pytest.approx(
        {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}, abs=1.5e-3)
    assert result.bgnbd["log_likelihood"] == pytest.approx(-9582.4, abs=0.1)
    assert (result.gamma_gamma["p"], result.gamma_gamma["q"], result.gamma_gamma["v"]) == pytest.approx(
        (6.25, 3.74, 15.44), abs=0.01)
    # and both fits are stored, and every customer has predictions
    assert set(fits) == {"bgnbd", "gamma_gamma"} and fits["bgnbd"]["customers"] == 2357
    assert scored[0] == 2357 and 0 < scored[1] <= scored[2] <= 1
    values = [row["lifetime_value"] for row in top]
    assert values == sorted(values, reverse=True) and values[0] > 0


def test_too_few_customers_is_a_clear_error(app):
    # given a handful of customers, when the models are fitted, then a specific error says so
    with app.store.write() as conn:
        cid = app.contacts.identify(conn, Identifiers(external_id="only"))
        app.events.ingest(conn, [EventInput("Order Completed", "o1", CALIBRATION_END, CALIBRATION_END,
                                            {"revenue": 10.0}, cid)])
        with pytest.raises(predictions.NotEnoughData, match="1 customers with orders"):
            predictions.predict_and_store(conn)


def test_a_new_fit_leaves_no_stale_predictions(app, cdnow_dir):
    # given the sample plus 30 customers who first bought in 1998, all predicted as of mid-1998
    _ingest_cdnow_sample(app, cdnow_dir)
    late = datetime(1998, 3, 1, 12, tzinfo=UTC)
    with app.store.write() as conn:
        for n in range(30):
            cid = app.contacts.identify(conn, Identifiers(external_id=f"late{n}"))
            app.events.ingest(conn, [EventInput("Order Completed", f"late-{n}", late, late, {"revenue": 20.0}, cid)])
        first = predictions.predict_and_store(conn, predictions.PredictionSettings(
            as_of=datetime(1998, 6, 30, tzinfo=UTC)))
        # when the models are fitted again as of the calibration end, before the late customers existed
        result = predictions.predict_and_store(conn, predictions.PredictionSettings(as_of=CALIBRATION_END))
        predicted = conn.execute(select(func.count()).where(contact_scores.c.p_alive.is_not(None))).scalar_one()
        stale = conn.execute(select(func.count()).where(contact_scores.c.p_alive.is_(None),
                                                        contact_scores.c.lifetime_value.is_not(None))).scalar_one()
    # then only the customers of the latest fit have predictions, and nobody keeps half of an old one
    assert first.customers == 2387 and predicted == result.customers == 2357 and stale == 0

"""Twilio's webhooks: signed inbound STOP/START texts and delivery receipts; unsigned ones change nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from delivery_world import make_campaign, run
from fastapi.testclient import TestClient
from sqlalchemy import select
from test_delivery_sms import SMS_TEMPLATE, ScriptedSms, add_phone_contact, sms_worker

from clarion.api.app import create_app
from clarion.bootstrap import Clarion
from clarion.domain.consent import ConsentStatus
from clarion.store.schema_delivery import deliveries, delivery_log
from twilio_peer import sign

TOKEN = "twilio-auth-token"


@pytest.fixture
def hooks(app):
    served = Clarion.from_settings(app.settings.model_copy(update={"twilio_auth_token": TOKEN}))
    with TestClient(create_app(served)) as http:
        yield http
    served.close()


def post(http, app, path: str, params: dict[str, str], *, token: str = TOKEN):
    url = app.settings.public_url.rstrip("/") + path
    return http.post(path, content=urlencode(params), headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sign(token, url, params)})


def test_stop_and_start_texts_change_sms_consent(app, hooks):
    ana = add_phone_contact(app, "+14155550130")
    stopped = post(hooks, app, "/hooks/twilio/sms", {"From": "+14155550130", "Body": "  stop "})
    assert stopped.status_code == 200 and "<Response>" in stopped.text
    with app.store.read() as conn:
        assert app.consent.state(conn, ana)[("sms", "*")] == ConsentStatus.OPTED_OUT
    post(hooks, app, "/hooks/twilio/sms", {"From": "+14155550130", "Body": "START"})
    post(hooks, app, "/hooks/twilio/sms", {"From": "+14155550130", "Body": "stop sending me deals"})  # not a keyword
    with app.store.read() as conn:
        assert app.consent.state(conn, ana)[("sms", "*")] == ConsentStatus.OPTED_IN
        assert [e["source"] for e in app.consent.ledger(conn, ana)][-2:] == ["sms_keyword", "sms_keyword"]


def test_a_forged_or_unsigned_webhook_is_refused(app, hooks):
    ana = add_phone_contact(app, "+14155550131")
    forged = post(hooks, app, "/hooks/twilio/sms", {"From": "+14155550131", "Body": "STOP"}, token="guess")
    unsigned = hooks.post("/hooks/twilio/sms", data={"From": "+14155550131", "Body": "STOP"})
    assert forged.status_code == unsigned.status_code == 403
    with app.store.read() as conn:
        assert app.consent.state(conn, ana)[("sms", "*")] == ConsentStatus.OPTED_IN


def test_a_receipt_is_logged_and_a_dead_number_suppressed(app, hooks):
    # given a text sent to a number
    add_phone_contact(app, "+14155550132")
    make_campaign(app, "flash", channel="sms", rule="phone exists", template_document=SMS_TEMPLATE,
                  clock=lambda: datetime(2026, 11, 23, 12, 0, tzinfo=UTC))  # the worker's clock
    run(sms_worker(app, ScriptedSms()))
    with app.store.read() as conn:
        row = conn.execute(select(deliveries)).one()
    # when Twilio reports it undelivered because the number is unknown
    path = f"/hooks/twilio/sms/status?message_id={row.message_id}"
    answer = post(hooks, app, path, {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "30005",
                                     "To": "+14155550132"})
    # then the receipt is in the delivery's history and the number is suppressed
    assert answer.status_code == 204
    with app.store.read() as conn:
        outcomes = conn.execute(select(delivery_log.c.outcome, delivery_log.c.code)
                                .where(delivery_log.c.delivery_id == row.id).order_by(delivery_log.c.id)).all()
        assert [tuple(o) for o in outcomes] == [("sent", None), ("undelivered", "30005")]
        assert app.consent.suppression(conn, "phone", "+14155550132")["reason"] == "hard_bounce"
    # and a receipt naming no delivery of ours is 404
    assert post(hooks, app, "/hooks/twilio/sms/status?message_id=999.abc", {"MessageStatus": "delivered"}) \
        .status_code == 404

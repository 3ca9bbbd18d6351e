"""SendGrid's Event Webhook: signed batches change the suppression list and the engagements; a bad signature,
or a timestamp outside the ten-minute replay window, changes nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from test_ses_webhook import FOREIGN, feedback, send_mail, serve_hooks, suppressed

from clarion.store.schema import contacts
from clarion.store.schema_delivery import deliveries
from clarion.tracking.sendgrid import REPLAY_WINDOW
from sendgrid_peer import SIGNATURE_HEADER, TIMESTAMP_HEADER, SendGridPeer, new_signing_key


@pytest.fixture
def peer() -> SendGridPeer:
    return SendGridPeer()


@pytest.fixture
def hooks(app, peer) -> Iterator[TestClient]:
    yield from serve_hooks(app, sendgrid_webhook_public_key=peer.public_key)


def post(http: TestClient, body: bytes, headers: dict[str, str]):
    return http.post("/hooks/sendgrid", content=body, headers=headers)


def test_each_event_does_what_it_says(app, peer, hooks):
    # given five messages SendGrid relayed
    sent = send_mail(app, "ana@example.com", "ben@example.com", "cy@example.com", "di@example.com",
                     "ed@example.com")
    # when one batch reports them
    batch = [peer.event(sent["ana@example.com"], "processed"),
             peer.event(sent["ana@example.com"], "delivered"),
             peer.event(sent["ana@example.com"], "open"),
             peer.event(sent["ben@example.com"], "bounce"),
             peer.event(sent["cy@example.com"], "bounce", type="blocked", status="5.7.1",
                        reason="550 5.7.1 blocked by policy", bounce_classification="Reputation"),
             peer.event(sent["di@example.com"], "spamreport"),
             peer.event(sent["ed@example.com"], "dropped", reason="Bounced Address")]
    answer = post(hooks, *peer.signed(batch))
    # then deliveries, bounces and complaints are recorded, and the bounced and complaining addresses suppressed
    assert answer.status_code == 200
    assert answer.json() == {"recorded": 5, "replayed": 0, "unknown": 0, "ignored": 2}
    assert sorted(feedback(app)) == [("ana@example.com", "delivered", "sendgrid"),
                                     ("ben@example.com", "bounced", "permanent"),
                                     ("cy@example.com", "bounced", "blocked"),
                                     ("di@example.com", "complained", "sendgrid"),
                                     ("ed@example.com", "bounced", "dropped")]
    assert [suppressed(app, f"{name}@example.com") for name in ("ana", "ben", "cy", "di", "ed")] == \
        [None, "hard_bounce", None, "complaint", "hard_bounce"]


def test_a_bad_signature_is_refused_and_changes_nothing(app, peer, hooks):
    raw = send_mail(app, "ana@example.com")["ana@example.com"]
    events = [peer.event(raw, "bounce"), peer.event(raw, "spamreport")]
    forged = peer.signed(events, key=new_signing_key())
    body, headers = peer.signed(events)
    edited = (body.replace(b'"spamreport"', b'"delivered"'), headers)
    reformatted = (body.strip(), headers)  # the same JSON without SendGrid's trailing CRLF: other bytes
    unsigned = (body, {k: v for k, v in headers.items() if k != SIGNATURE_HEADER})
    undated = (body, {k: v for k, v in headers.items() if k != TIMESTAMP_HEADER})
    garbled = (body, {**headers, SIGNATURE_HEADER: "not base64!"})
    for request in (forged, edited, reformatted, unsigned, undated, garbled):
        answer = post(hooks, *request)
        assert answer.status_code == 403 and answer.json()["error"] == "invalid_signature"
    assert suppressed(app, "ana@example.com") is None and feedback(app) == []


def test_without_a_configured_key_every_request_is_refused(app, peer):
    raw = send_mail(app, "ana@example.com")["ana@example.com"]
    for http in serve_hooks(app):
        answer = post(http, *peer.signed([peer.event(raw, "bounce")]))
        assert answer.status_code == 403 and "CLARION_SENDGRID_WEBHOOK_PUBLIC_KEY" in answer.json()["message"]
    assert suppressed(app, "ana@example.com") is None


def test_a_timestamp_outside_the_ten_minute_window_is_refused(app, peer, hooks):
    raw = send_mail(app, "ana@example.com")["ana@example.com"]
    events = [peer.event(raw, "bounce")]
    now = int(time.time())
    too_old = post(hooks, *peer.signed(events, timestamp=now - REPLAY_WINDOW - 60))
    too_new = post(hooks, *peer.signed(events, timestamp=now + REPLAY_WINDOW + 60))
    assert too_old.status_code == too_new.status_code == 403
    assert "10 minutes" in too_old.json()["message"]
    assert suppressed(app, "ana@example.com") is None and feedback(app) == []
    # a request signed nine minutes ago is still within the window
    assert post(hooks, *peer.signed(events, timestamp=now - 540)).status_code == 200
    assert suppressed(app, "ana@example.com") == "hard_bounce"


def test_events_for_messages_clarion_did_not_send_are_answered_200_and_recorded_nowhere(app, peer, hooks):
    send_mail(app, "ana@example.com")
    answer = post(hooks, *peer.signed([peer.event(FOREIGN, "bounce"), peer.event(FOREIGN, "spamreport")]))
    assert answer.status_code == 200
    assert answer.json() == {"recorded": 0, "replayed": 0, "unknown": 2, "ignored": 0}
    assert suppressed(app, "ana@example.com") is None and feedback(app) == []


def test_a_clarion_delivery_custom_argument_finds_a_delivery_only_when_the_message_id_agrees(app, peer, hooks):
    # given events that overtook the worker's checkpoint: no delivery has their Message-ID yet
    sent = send_mail(app, "ana@example.com", "ben@example.com")
    with app.store.write() as conn:
        ids = dict(conn.execute(select(contacts.c.email, deliveries.c.id)
                                .join(contacts, contacts.c.id == deliveries.c.contact_id)).all())
        conn.execute(update(deliveries).values(message_id=None))
    ana, ben = sent["ana@example.com"], sent["ben@example.com"]
    # when SendGrid reports them with the custom argument, without it, and with one naming another delivery
    batch = [peer.event(ana, "bounce", clarion_delivery=str(ids["ana@example.com"])),
             peer.event(ben, "bounce"),
             peer.event(ben, "spamreport", clarion_delivery=str(ids["ana@example.com"]))]
    answer = post(hooks, *peer.signed(batch))
    # then only the first is recorded
    assert answer.json() == {"recorded": 1, "replayed": 0, "unknown": 2, "ignored": 0}
    assert feedback(app) == [("ana@example.com", "bounced", "permanent")]
    assert suppressed(app, "ben@example.com") is None


def test_the_same_batch_twice_is_recorded_once(app, peer, hooks):
    raw = send_mail(app, "ana@example.com")["ana@example.com"]
    batch = peer.signed([peer.event(raw, "delivered"), peer.event(raw, "spamreport")])
    assert post(hooks, *batch).json()["recorded"] == 2
    assert post(hooks, *batch).json() == {"recorded": 0, "replayed": 2, "unknown": 0, "ignored": 0}
    assert feedback(app) == [("ana@example.com", "delivered", "sendgrid"),
                             ("ana@example.com", "complained", "sendgrid")]


def test_a_signed_body_that_is_not_an_array_of_events_is_refused(peer, hooks):
    assert post(hooks, *peer.sign_body(b'{"event": "bounce"}')).status_code == 400
    assert post(hooks, *peer.sign_body(b"[{\"event\": ")).status_code == 400
    assert post(hooks, *peer.signed([])).json() == {"recorded": 0, "replayed": 0, "unknown": 0, "ignored": 0}

"""WhatsApp end to end: signed webhooks open the 24-hour window and change consent; a campaign goes through
the Worker, the composer and the Cloud API adapter to the local peer (``tests/whatsapp_peer.py``).

Times are real (the webhook never records a message in the future), so the worker's clock is "now".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from delivery_world import make_campaign, progress, run
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from clarion.api.app import create_app
from clarion.bootstrap import Clarion
from clarion.channels.whatsapp import WhatsAppChannel, WhatsAppSettings
from clarion.domain.consent import Channel, ConsentStatus
from clarion.domain.events import WHATSAPP_MESSAGE_RECEIVED
from clarion.domain.profiles import ProfilePatch
from clarion.messages.whatsapp_compose import WhatsAppComposer
from clarion.runners.dispatch import ChannelBinding
from clarion.runners.worker import Worker
from clarion.services.identity import Identifiers
from clarion.store.schema import events, identities
from clarion.store.schema_delivery import campaigns, deliveries, delivery_log
from whatsapp_peer import WhatsAppPeer, inbound_text, sign, status_update

VERIFY_TOKEN = "meta-verify-token"
AUTUMN = {"default": {"whatsapp": {
    "template": "autumn_offer", "language": "en_US",
    "parameters": ["{{ contact.first_name }}", "{{ 0.2 | percent }}"],
    "text": "{{ contact.first_name }}, your code AUTUMN is worth {{ 0.2 | percent }}."}}}
TEXT_ONLY = {"default": {"whatsapp": {"text": "{{ contact.first_name }}, thanks for writing!"}}}


@pytest.fixture
def peer() -> Iterator[WhatsAppPeer]:
    with WhatsAppPeer() as running:
        yield running


@pytest.fixture
def hooks(app, peer) -> Iterator[TestClient]:
    served = Clarion.from_settings(app.settings.model_copy(update={
        "whatsapp_app_secret": peer.app_secret, "whatsapp_verify_token": VERIFY_TOKEN}))
    with TestClient(create_app(served)) as http:
        yield http
    served.close()


def add_contact(app, phone: str, first_name: str, consent: bool = True) -> int:
    with app.store.write() as conn:
        contact_id = app.contacts.identify(conn, Identifiers(phone=phone), ProfilePatch(first_name=first_name,
                                                                                         timezone="UTC"))
        if consent:  # a day ago: the consent ledger orders changes by when they happened
            app.consent.record(conn, contact_id, Channel.WHATSAPP, ConsentStatus.OPTED_IN, source="test",
                               occurred_at=datetime.now(UTC) - timedelta(days=1))
    return contact_id


def post(hooks, peer, value: dict, **signing):
    body, headers = peer.webhook(value, **signing)
    return hooks.post("/hooks/whatsapp", content=body, headers=headers)


def send_campaign(app, peer, name: str, document: dict, now: datetime) -> None:
    # The clock is real, so quiet hours are off: the test must not depend on the hour it runs at.
    make_campaign(app, name, channel="whatsapp", rule="phone exists", template_document=document,
                  clock=lambda: now, settings={"quiet_hours": {}})
    channel = WhatsAppChannel(WhatsAppSettings(phone_number_id=peer.phone_number_id, access_token=peer.access_token,
                                               base_url=peer.base_url, timeout=5.0))
    binding = ChannelBinding(WhatsAppComposer(app.settings), channel, concurrency=4)
    run(Worker(app, channels={"whatsapp": binding}, clock=lambda: now))


def rows_by_contact(app) -> dict[int, tuple]:
    with app.store.read() as conn:
        return {r.contact_id: (r.status, r.reason, r.provider_id) for r in conn.execute(select(deliveries))}


def test_inside_the_window_text_goes_and_outside_it_the_personalised_template(app, hooks, peer):
    # given Ana wrote an hour ago (a signed webhook), Bo never wrote, Cy wrote two days ago; Di has no consent
    now = datetime.now(UTC)
    ana = add_contact(app, "+14155550101", "Ana")
    bo = add_contact(app, "+14155550102", "Bo")
    cy = add_contact(app, "+14155550103", "Cy")
    di = add_contact(app, "+14155550104", "Di", consent=False)
    assert post(hooks, peer, inbound_text("14155550101", "hi!", at=(now - timedelta(hours=1)).timestamp())) \
        .status_code == 200
    assert post(hooks, peer, inbound_text("14155550103", "hello", at=(now - timedelta(days=2)).timestamp())) \
        .status_code == 200
    # when the campaign goes through the worker to the peer
    send_campaign(app, peer, "autumn", AUTUMN, now)
    # then Ana got free-form text; Bo and Cy the approved template with their own parameters; Di nothing
    sent = {m["to"]: m for m in peer.messages}
    assert set(sent) == {"14155550101", "14155550102", "14155550103"}
    assert sent["14155550101"]["type"] == "text"
    assert sent["14155550101"]["text"]["body"] == "Ana, your code AUTUMN is worth 20%."
    for to, name in (("14155550102", "Bo"), ("14155550103", "Cy")):
        assert sent[to]["type"] == "template" and sent[to]["template"]["name"] == "autumn_offer"
        assert [p["text"] for p in sent[to]["template"]["components"][0]["parameters"]] == [name, "20%"]
    # and the ledger keeps each wamid as the provider id
    rows = rows_by_contact(app)
    assert rows[ana] == ("sent", None, sent["14155550101"]["id"])
    assert rows[bo][:2] == rows[cy][:2] == ("sent", None)
    assert rows[di][:2] == ("skipped", "no_consent")


def test_text_only_content_skips_contacts_outside_the_window(app, hooks, peer):
    # given text without an approved template; Ana wrote 20 hours ago, Bo 30 hours ago
    now = datetime.now(UTC)
    ana = add_contact(app, "+14155550111", "Ana")
    bo = add_contact(app, "+14155550112", "Bo")
    post(hooks, peer, inbound_text("14155550111", "hi", at=(now - timedelta(hours=20)).timestamp()))
    post(hooks, peer, inbound_text("14155550112", "hi", at=(now - timedelta(hours=30)).timestamp()))
    # when
    send_campaign(app, peer, "thanks", TEXT_ONLY, now)
    # then only Ana gets the text; Bo is skipped by the session policy, nothing was attempted for him
    assert [(m["to"], m["text"]["body"]) for m in peer.messages] == [("14155550111", "Ana, thanks for writing!")]
    rows = rows_by_contact(app)
    assert rows[ana][:2] == ("sent", None)
    assert rows[bo] == ("skipped", "outside_session_window", None)


def test_an_undeliverable_number_fails_without_suppressing_the_shared_phone(app, peer):
    # given a number that is not on WhatsApp (the peer answers 131026 for "...0001")
    ana = add_contact(app, "+14155550001", "Ana")
    # when
    send_campaign(app, peer, "autumn", AUTUMN, datetime.now(UTC))
    # then the delivery failed as rejected, and SMS and voice can still use the phone
    assert rows_by_contact(app)[ana][:2] == ("failed", "rejected")
    with app.store.read() as conn:
        assert app.consent.suppression(conn, "phone", "+14155550001") is None


def test_a_contact_who_stopped_marketing_is_opted_out_of_whatsapp_not_suppressed(app, peer):
    # given a contact who stopped marketing messages from us (the peer answers 131050 for "...0002")
    ana = add_contact(app, "+14155550002", "Ana")
    # when
    send_campaign(app, peer, "autumn", AUTUMN, datetime.now(UTC))
    # then the delivery failed as a bad address, WhatsApp consent is withdrawn and the phone stays usable
    assert rows_by_contact(app)[ana][:2] == ("failed", "bad_address")
    with app.store.read() as conn:
        assert app.consent.state(conn, ana)[("whatsapp", "*")] == ConsentStatus.OPTED_OUT
        assert app.consent.ledger(conn, ana)[-1]["source"] == "whatsapp_provider"
        assert app.consent.suppression(conn, "phone", "+14155550002") is None


def test_an_unknown_template_pauses_the_campaign_and_gives_the_row_back(app, peer):
    # given content naming a template Meta does not know (132001)
    add_contact(app, "+14155550121", "Ana")
    document = {"default": {"whatsapp": {"template": "spring_sale", "language": "en_US"}}}
    # when
    send_campaign(app, peer, "spring", document, datetime.now(UTC))
    # then nothing was sent, the campaign is paused with Meta's reason, the delivery waits to be retried
    assert not peer.messages
    with app.store.read() as conn:
        status, reason = conn.execute(select(campaigns.c.status, campaigns.c.status_reason)).one()
    assert status == "paused" and "132001" in reason
    assert progress(app, "spring")["counts"]["queued"] == 1


# -- webhooks ------------------------------------------------------------------------------------------------


def test_the_subscription_handshake_echoes_the_challenge_only_for_our_token(hooks):
    # when Meta verifies the callback URL
    ok = hooks.get("/hooks/whatsapp", params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
                                              "hub.challenge": "1158201444"})
    # then the challenge comes back as plain text
    assert (ok.status_code, ok.text) == (200, "1158201444")
    assert ok.headers["content-type"].startswith("text/plain")
    # and a wrong token, another mode or no token at all is refused
    for params in ({"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"},
                   {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
                   {"hub.challenge": "1"}):
        assert hooks.get("/hooks/whatsapp", params=params).status_code == 403


def test_a_handshake_without_a_configured_token_is_refused(app):
    # given no verify token configured: an empty token must not match an empty one
    with TestClient(create_app(app)) as http:
        answer = http.get("/hooks/whatsapp", params={"hub.mode": "subscribe", "hub.verify_token": "",
                                                     "hub.challenge": "1"})
    assert answer.status_code == 403


def test_an_unsigned_forged_or_tampered_notification_changes_nothing(app, hooks, peer):
    # given Ana, opted in
    ana = add_contact(app, "+14155550131", "Ana")
    value = inbound_text("14155550131", "STOP")
    body, headers = peer.webhook(value)
    # when it is posted with another secret, without a signature, or with a body changed after signing
    forged = post(hooks, peer, value, secret="guess")
    unsigned = hooks.post("/hooks/whatsapp", content=body, headers={"Content-Type": "application/json"})
    tampered = hooks.post("/hooks/whatsapp", content=body.replace(b"STOP", b"stop"), headers=headers)
    # then each is 403, and no event, consent change or contact was recorded
    assert forged.status_code == unsigned.status_code == tampered.status_code == 403
    with app.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 0
        assert app.consent.state(conn, ana)[("whatsapp", "*")] == ConsentStatus.OPTED_IN


def test_an_oversized_or_non_json_notification_is_refused(hooks, peer):
    # when the body is past the bound (refused before the signature is computed), or signed but not JSON
    huge = hooks.post("/hooks/whatsapp", content=b"x" * (3 * 1024 * 1024 + 1),
                      headers={"X-Hub-Signature-256": "sha256=00"})
    garbage = hooks.post("/hooks/whatsapp", content=b"not json",
                         headers={"X-Hub-Signature-256": sign(peer.app_secret, b"not json")})
    # then
    assert huge.status_code == 413
    assert garbage.status_code == 400


def test_an_inbound_message_opens_the_window_once_and_creates_an_unknown_sender(app, hooks, peer):
    # given a number Clarion has never seen writes at a known time
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    value = inbound_text("14155550141", "Olá, is the offer still on?", wamid="wamid.HBgLMTQxNTU1NTAxNDE",
                         at=at.timestamp())
    # when Meta delivers it twice (it re-sends until it gets a 200)
    first = post(hooks, peer, value)
    again = post(hooks, peer, value)
    # then one contact with the E.164 phone and one event at the message's own time
    assert first.json()["messages"] == 1 and again.json() == first.json() | {"messages": 0, "replays": 1}
    with app.store.read() as conn:
        (contact_id,) = conn.execute(select(identities.c.contact_id).where(
            identities.c.kind == "phone", identities.c.value == "+14155550141")).scalars().all()
        found = conn.execute(select(events.c.contact_id, events.c.message_id, events.c.occurred_at)
                             .where(events.c.name == WHATSAPP_MESSAGE_RECEIVED)).all()
    assert [(r.contact_id, r.message_id, r.occurred_at) for r in found] == [
        (contact_id, "wamid.HBgLMTQxNTU1NTAxNDE", at)]


def test_stop_opts_out_of_whatsapp_and_start_opts_back_in(app, hooks, peer):
    # given Ana, opted in to WhatsApp and SMS
    ana = add_contact(app, "+14155550151", "Ana")
    with app.store.write() as conn:
        app.consent.record(conn, ana, Channel.SMS, ConsentStatus.OPTED_IN, source="test",
                           occurred_at=datetime.now(UTC) - timedelta(days=1))
    now = datetime.now(UTC).timestamp()
    # when she writes "stop", then a sentence that is not a keyword
    stop = post(hooks, peer, inbound_text("14155550151", " stop ", at=now - 60))
    post(hooks, peer, inbound_text("14155550151", "stop sending me deals", at=now - 50))
    # then WhatsApp (only) is opted out, with the keyword as the proof
    assert stop.json()["opt_outs"] == 1
    with app.store.read() as conn:
        assert app.consent.state(conn, ana)[("whatsapp", "*")] == ConsentStatus.OPTED_OUT
        assert app.consent.state(conn, ana)[("sms", "*")] == ConsentStatus.OPTED_IN
        last = app.consent.ledger(conn, ana)[-1]
    assert (last["source"], last["proof"]["keyword"]) == ("whatsapp_keyword", "stop")
    # when she writes START
    post(hooks, peer, inbound_text("14155550151", "START", at=now - 40))
    # then she is opted in again
    with app.store.read() as conn:
        assert app.consent.state(conn, ana)[("whatsapp", "*")] == ConsentStatus.OPTED_IN


def test_statuses_are_logged_on_the_delivery_and_131050_opts_out(app, hooks, peer):
    # given a template sent to Ana through the peer
    ana = add_contact(app, "+14155550161", "Ana")
    send_campaign(app, peer, "autumn", AUTUMN, datetime.now(UTC))
    with app.store.read() as conn:
        row = conn.execute(select(deliveries)).one()
    (message,) = peer.messages
    wamid, callback = message["id"], message["biz_opaque_callback_data"]
    assert (callback, row.provider_id) == (row.message_id, wamid)
    # when Meta reports it sent and delivered (with our message id), then read (named by the wamid only),
    # then failed because Ana stopped marketing messages
    for status, data in (("sent", callback), ("delivered", callback), ("read", None)):
        answer = post(hooks, peer, status_update(wamid, status, "14155550161", callback_data=data))
        assert answer.json()["statuses"] == 1
    failed = post(hooks, peer, status_update(wamid, "failed", "14155550161", callback_data=callback,
                                             error_code=131050))
    # then every status is in the delivery's history, with the error code
    assert failed.json()["opt_outs"] == 1
    with app.store.read() as conn:
        logged = conn.execute(select(delivery_log.c.outcome, delivery_log.c.code, delivery_log.c.provider_id)
                              .where(delivery_log.c.delivery_id == row.id).order_by(delivery_log.c.id)).all()
        assert [tuple(r) for r in logged] == [("sent", None, wamid), ("sent", None, wamid),
                                              ("delivered", None, wamid), ("read", None, wamid),
                                              ("failed", "131050", wamid)]
        # and Ana is opted out of WhatsApp, while the phone is not suppressed (SMS and voice share it)
        assert app.consent.state(conn, ana)[("whatsapp", "*")] == ConsentStatus.OPTED_OUT
        assert app.consent.ledger(conn, ana)[-1]["source"] == "whatsapp_provider"
        assert app.consent.suppression(conn, "phone", "+14155550161") is None
    # and a status for a message that is not ours is counted, not logged
    other = post(hooks, peer, status_update("wamid.someone-else", "delivered", "14155550161"))
    assert other.json()["unmatched"] == 1


def test_signed_but_odd_payloads_are_accepted_and_change_nothing_they_cannot_name(app, hooks, peer):
    # given an erased person (GDPR) and a signed payload with malformed items, another field and another object
    erased = add_contact(app, "+14155550171", "Eve")
    with app.store.write() as conn:
        app.gdpr.erase(conn, erased)
    value = inbound_text("14155550171", "hello") | {"statuses": ["not an object"]}
    value["messages"] += [{"from": "+1 415 555", "id": "wamid.x", "timestamp": "1", "type": "text"},
                          {"from": "14155550172", "type": "text"}]
    # when Meta delivers it, and a notification for another object type
    answer = post(hooks, peer, value)
    body, headers = peer.webhook({})
    other = hooks.post("/hooks/whatsapp", content=body.replace(b"whatsapp_business_account", b"page"),
                       headers=headers | {"X-Hub-Signature-256": sign(peer.app_secret, body.replace(
                           b"whatsapp_business_account", b"page"))})
    # then both answer 200 (Meta would re-send anything else), the erased person is not brought back
    assert answer.status_code == other.status_code == 200
    assert answer.json() | {"ignored": 0} == {"messages": 0, "replays": 0, "opt_outs": 0, "opt_ins": 0,
                                              "statuses": 0, "unmatched": 0, "ignored": 0}
    assert answer.json()["ignored"] == 3
    with app.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(identities).where(
            identities.c.value.in_(["+14155550171", "+14155550172"]))).scalar_one() == 0

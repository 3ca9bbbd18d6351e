"""SMS campaigns through the same ledger and policy chain: the phone is the address, STOP is an opt-out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from delivery_world import make_campaign, progress, run
from sqlalchemy import select

from clarion.bootstrap import Clarion
from clarion.channels.base import DeliveryResult, Outcome
from clarion.domain.consent import Channel, ConsentStatus
from clarion.domain.profiles import ProfilePatch
from clarion.messages.sms_compose import SmsComposer
from clarion.runners.dispatch import ChannelBinding
from clarion.runners.trial_send import send_test
from clarion.runners.worker import Worker
from clarion.services.identity import Identifiers
from clarion.store.schema_delivery import deliveries
from twilio_peer import TwilioPeer

SMS_TEMPLATE = {"default": {"sms": {"text": "{{ contact.first_name }}, 20% off today only."}}}


class ScriptedSms:
    def __init__(self, script: dict[str, DeliveryResult] | None = None) -> None:
        self.script = script or {}
        self.messages = []

    async def send(self, message):
        self.messages.append(message)
        return self.script.get(message.to) or DeliveryResult(Outcome.SENT, provider_id=f"SM{len(self.messages)}")


def add_phone_contact(app, phone: str, first_name: str = "Ana", consent: bool = True) -> int:
    with app.store.write() as conn:
        contact_id = app.contacts.identify(conn, Identifiers(phone=phone), ProfilePatch(first_name=first_name,
                                                                                         timezone="UTC"))
        if consent:
            app.consent.record(conn, contact_id, Channel.SMS, ConsentStatus.OPTED_IN, source="test")
    return contact_id


def sms_worker(app, channel) -> Worker:
    return Worker(app, channels={"sms": ChannelBinding(SmsComposer(app.settings), channel)},
                  clock=lambda: datetime(2026, 11, 23, 12, 0, tzinfo=UTC))


def test_an_sms_campaign_reaches_consenting_phones_with_the_opt_out_hint(app):
    # given two phones with SMS consent and one without
    ana = add_phone_contact(app, "+14155550101")
    add_phone_contact(app, "+14155550102", first_name="Bo")
    silent = add_phone_contact(app, "+14155550103", consent=False)
    make_campaign(app, "flash", channel="sms", rule="phone exists", template_document=SMS_TEMPLATE,
                  clock=lambda: datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    channel = ScriptedSms()
    # when the worker sends
    run(sms_worker(app, channel))
    # then the consenting phones get a personalised text ending with how to stop; the other is skipped
    assert sorted(m.to for m in channel.messages) == ["+14155550101", "+14155550102"]
    first = next(m for m in channel.messages if m.to == "+14155550101")
    assert first.body == "Ana, 20% off today only. Reply STOP to unsubscribe."
    with app.store.read() as conn:
        rows = {r.contact_id: (r.status, r.reason) for r in conn.execute(select(deliveries))}
    assert rows[ana] == ("sent", None) and rows[silent] == ("skipped", "no_consent")


def test_a_stopped_number_is_an_opt_out_and_an_invalid_one_is_suppressed(app):
    stopped = add_phone_contact(app, "+14155550111")
    add_phone_contact(app, "+14155550112")
    make_campaign(app, "flash", channel="sms", rule="phone exists", template_document=SMS_TEMPLATE,
                  clock=lambda: datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    channel = ScriptedSms({
        "+14155550111": DeliveryResult(Outcome.BAD_ADDRESS, code="21610", detail="unsubscribed recipient"),
        "+14155550112": DeliveryResult(Outcome.BAD_ADDRESS, code="21211", detail="invalid 'To' number")})
    run(sms_worker(app, channel))
    with app.store.read() as conn:
        assert app.consent.state(conn, stopped)[("sms", "*")] == ConsentStatus.OPTED_OUT
        assert app.consent.ledger(conn, stopped)[-1]["source"] == "sms_keyword"
        assert app.consent.suppression(conn, "phone", "+14155550111") is None
        assert app.consent.suppression(conn, "phone", "+14155550112")["reason"] == "hard_bounce"
    assert progress(app, "flash")["counts"]["failed"] == 2


def test_an_sms_campaign_goes_through_the_twilio_adapter_to_a_local_peer(app):
    # given the Twilio settings pointing at a local peer that speaks the Messages API
    ana = add_phone_contact(app, "+14155550120")
    stopped = add_phone_contact(app, "+14155550002", first_name="Bo")  # the peer answers 21610 for ...0002
    make_campaign(app, "flash", channel="sms", rule="phone exists", template_document=SMS_TEMPLATE,
                  clock=lambda: datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    with TwilioPeer() as peer:
        settings = app.settings.model_copy(update={
            "sms_transport": "twilio", "twilio_account_sid": peer.account_sid, "twilio_auth_token": peer.auth_token,
            "twilio_base_url": peer.base_url, "sms_from": "+14155550100"})
        sender = Clarion.from_settings(settings)
        try:
            run(Worker(sender, clock=lambda: datetime(2026, 11, 23, 12, 0, tzinfo=UTC)))
        finally:
            sender.close()
        # then Twilio got one message with the sender and the idempotency token; the STOPped number opted out
        (message,) = peer.messages
        assert message["to"] == "+14155550120" and message["from"] == "+14155550100"
        assert message["body"].endswith("Reply STOP to unsubscribe.")
        assert all(r.idempotency_token for r in peer.requests)
    with app.store.read() as conn:
        rows = {r.contact_id: (r.status, r.provider_id) for r in conn.execute(select(deliveries))}
        assert rows[ana] == ("sent", message["sid"])
        assert app.consent.state(conn, stopped)[("sms", "*")] == ConsentStatus.OPTED_OUT


def test_an_sms_test_send_goes_to_the_number_given(app):
    # given an SMS campaign
    add_phone_contact(app, "+14155550101")
    make_campaign(app, "flash", channel="sms", rule="phone exists", template_document=SMS_TEMPLATE,
                  clock=lambda: datetime(2026, 11, 23, 12, 0, tzinfo=UTC), start=False)
    channel = ScriptedSms()
    # when a tester sends it to her own number, written nationally
    result = asyncio.run(send_test(app, "flash", "(415) 555-0199", channels={
        "sms": ChannelBinding(SmsComposer(app.settings), channel)}))
    # then it went to that number in E.164, not to the contact
    assert result["outcome"] == "sent" and [m.to for m in channel.messages] == ["+14155550199"]

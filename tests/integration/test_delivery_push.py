"""Push campaigns through the ledger: one delivery per contact, fanned out to each live device; gone tokens
invalidated in the checkpoint; the in-app inbox stored with the sent row. Providers are scripted here (the
adapters are tested against their local peers in test_fcm.py, test_apns.py and test_webpush.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from delivery_world import Clock, make_campaign, run
from sqlalchemy import select, update

from clarion.channels.base import DeliveryResult, GoneToken, Outcome
from clarion.channels.push_fanout import PushFanout
from clarion.domain.consent import Channel, ConsentStatus
from clarion.domain.errors import FieldError
from clarion.domain.profiles import ProfilePatch
from clarion.messages.push_compose import PushComposer
from clarion.runners.dispatch import ChannelBinding
from clarion.runners.trial_send import send_test
from clarion.runners.worker import Worker
from clarion.services import devices
from clarion.services.identity import Identifiers
from clarion.store.schema import devices as devices_table
from clarion.store.schema_delivery import deliveries

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PUSH_TEMPLATE = {"default": {"push": {"title": "Hi {{ contact.first_name }}", "body": "Your cart misses you",
                                      "deep_link": "shop://cart", "badge": 1}}}


class ScriptedProvider:
    """Answers per token (SENT otherwise) and records (token, message) pairs."""

    def __init__(self, kind: str, answers: dict[str, DeliveryResult] | None = None) -> None:
        self.kind = kind
        self.answers = answers or {}
        self.sent: list[tuple[str, object]] = []

    async def send_to(self, message, target):
        self.sent.append((target.token, message))
        return self.answers.get(target.token) or DeliveryResult(Outcome.SENT, provider_id=f"id-{target.token[:6]}")

    async def aclose(self):
        pass


def contact_with_devices(app, email: str, *tokens: tuple[str, str], consent: bool = True) -> int:
    with app.store.write() as conn:
        contact_id = app.contacts.identify(conn, Identifiers(email=email), ProfilePatch(first_name="Ana",
                                                                                       timezone="UTC"))
        for kind, token in tokens:
            devices.register(conn, contact_id, kind, token)
        if consent:
            app.consent.record(conn, contact_id, Channel.PUSH, ConsentStatus.OPTED_IN, source="test")
    return contact_id


def push_worker(app, **providers) -> Worker:
    binding = ChannelBinding(PushComposer(app.settings), PushFanout(providers))
    return Worker(app, channels={"push": binding}, clock=Clock(NOW))


def fcm_token(n: int) -> str:
    return f"fcm-token-{n:020d}"


def test_a_contact_with_two_devices_gets_one_delivery_sent_to_both(app):
    # given Ana with an Android phone and an iPhone, and Bo with no device
    ana = contact_with_devices(app, "ana@example.com", ("fcm", fcm_token(1)), ("apns", "ab" * 32))
    contact_with_devices(app, "bo@example.com")
    make_campaign(app, "cart", channel="push", rule="email exists", template_document=PUSH_TEMPLATE,
                  clock=Clock(NOW))
    fcm, apns = ScriptedProvider("fcm"), ScriptedProvider("apns")
    # when the worker sends
    run(push_worker(app, fcm=fcm, apns=apns))
    # then each device got the personalised notification once, under one ledger row; Bo had no address
    assert [t for t, _ in fcm.sent] == [fcm_token(1)] and [t for t, _ in apns.sent] == ["ab" * 32]
    message = fcm.sent[0][1]
    assert (message.title, message.url, message.badge) == ("Hi Ana", "shop://cart", 1)
    assert message.data["message_id"] == message.message_id
    with app.store.read() as conn:
        rows = {r.contact_id: (r.status, r.reason) for r in conn.execute(select(deliveries))}
    assert rows[ana] == ("sent", None)
    assert sorted(rows.values()) == [("sent", None), ("skipped", "no_address")]


def test_a_gone_token_is_invalidated_and_the_next_campaign_skips_it(app):
    # given Ana's old phone (gone) and new phone, and Bo whose only token is gone
    ana = contact_with_devices(app, "ana@example.com", ("fcm", fcm_token(1)), ("fcm", fcm_token(2)))
    bo = contact_with_devices(app, "bo@example.com", ("fcm", fcm_token(3)))
    gone = {t: DeliveryResult(Outcome.BAD_ADDRESS, code="UNREGISTERED", gone=(GoneToken("fcm", t),))
            for t in (fcm_token(1), fcm_token(3))}
    make_campaign(app, "cart", channel="push", rule="email exists", template_document=PUSH_TEMPLATE,
                  clock=Clock(NOW))
    # when the campaign is sent
    run(push_worker(app, fcm=ScriptedProvider("fcm", gone)))
    # then Ana was reached on her new phone, Bo's delivery failed bad_address, and both gone tokens are
    # invalidated (the contact is never suppressed for it: push has no address to suppress)
    with app.store.read() as conn:
        rows = {r.contact_id: (r.status, r.reason) for r in conn.execute(select(deliveries))}
        live = {r.token for r in conn.execute(select(devices_table).where(devices_table.c.invalidated_at.is_(None)))}
    assert rows == {ana: ("sent", None), bo: ("failed", "bad_address")}
    assert live == {fcm_token(2)}
    # and a second campaign goes to the live phone only, and skips Bo for want of a device
    make_campaign(app, "cart-2", channel="push", rule="email exists", template_document=PUSH_TEMPLATE,
                  clock=Clock(NOW))
    second = ScriptedProvider("fcm")
    run(push_worker(app, fcm=second))
    assert [t for t, _ in second.sent] == [fcm_token(2)]


def test_an_apns_token_registered_again_after_apple_said_gone_is_kept(app):
    # given two iPhones: one registered before the moment APNs says its token went invalid, one after
    stale, reinstalled = "aa" * 32, "bb" * 32
    contact_with_devices(app, "ana@example.com", ("apns", stale))
    contact_with_devices(app, "bo@example.com", ("apns", reinstalled))
    gone_at = NOW - timedelta(hours=1)
    with app.store.write() as conn:
        conn.execute(update(devices_table).where(devices_table.c.token == stale)
                     .values(last_seen_at=gone_at - timedelta(days=3)))
        conn.execute(update(devices_table).where(devices_table.c.token == reinstalled)
                     .values(last_seen_at=gone_at + timedelta(minutes=5)))
    answers = {t: DeliveryResult(Outcome.BAD_ADDRESS, code="Unregistered", gone=(GoneToken("apns", t, gone_at),))
               for t in (stale, reinstalled)}
    make_campaign(app, "cart", channel="push", rule="email exists", template_document=PUSH_TEMPLATE,
                  clock=Clock(NOW))
    # when APNs answers 410 for both
    run(push_worker(app, apns=ScriptedProvider("apns", answers)))
    # then only the token last registered before APNs's timestamp is invalidated
    with app.store.read() as conn:
        state = {r.token: r.invalidated_at is not None for r in conn.execute(select(devices_table))}
    assert state == {stale: True, reinstalled: False}


def test_push_consent_is_checked_like_any_channel(app):
    # given a contact with a device but no push consent
    contact_with_devices(app, "ana@example.com", ("fcm", fcm_token(1)), consent=False)
    make_campaign(app, "cart", channel="push", rule="email exists", template_document=PUSH_TEMPLATE,
                  clock=Clock(NOW))
    provider = ScriptedProvider("fcm")
    run(push_worker(app, fcm=provider))
    # then nothing is sent, and the reason is recorded
    with app.store.read() as conn:
        assert [(r.status, r.reason) for r in conn.execute(select(deliveries))] == [("skipped", "no_consent")]
    assert provider.sent == []


def test_a_push_test_send_goes_to_the_testers_devices_outside_the_ledger(app):
    # given a push campaign, and a tester registered as a contact with her own phone
    contact_with_devices(app, "ana@example.com", ("fcm", fcm_token(1)))
    tester = contact_with_devices(app, "qa@example.com", ("fcm", fcm_token(9)))
    make_campaign(app, "cart", channel="push", rule="email exists", template_document=PUSH_TEMPLATE,
                  clock=Clock(NOW), start=False)
    fcm = ScriptedProvider("fcm")
    bindings = {"push": ChannelBinding(PushComposer(app.settings), PushFanout({"fcm": fcm}))}
    # when a test send names the tester
    result = asyncio.run(send_test(app, "cart", str(tester), channels=bindings))
    # then only the tester's phone got it, and no delivery was recorded
    assert result["outcome"] == "sent" and [t for t, _ in fcm.sent] == [fcm_token(9)]
    with app.store.read() as conn:
        assert conn.execute(select(deliveries)).first() is None
    # and naming someone without a device is refused with what --to must be
    with pytest.raises(FieldError, match="id of a contact with a live push device"):
        asyncio.run(send_test(app, "cart", "qa@example.com", channels=bindings))


def test_campaign_data_and_provider_overrides_reach_every_device(app):
    # given a push campaign with key/values for the app and an Android channel override
    contact_with_devices(app, "ana@example.com", ("fcm", fcm_token(1)))
    make_campaign(app, "cart", channel="push", rule="email exists", template_document=PUSH_TEMPLATE,
                  clock=Clock(NOW), settings={
                      "push_data": {"screen": "cart"}, "push_urgency": "high", "push_ttl_seconds": 600,
                      "push_overrides": {"android": {"notification": {"channel_id": "offers"}}}})
    fcm = ScriptedProvider("fcm")
    # when it is sent
    run(push_worker(app, fcm=fcm))
    # then the message carries them, beside the delivery's own ids
    (_, message), = fcm.sent
    assert message.data["screen"] == "cart" and message.data["campaign"] and message.data["message_id"]
    assert message.overrides == {"android": {"notification": {"channel_id": "offers"}}}
    assert (message.urgency, message.ttl_seconds) == ("high", 600)


def test_an_unknown_override_block_is_refused_when_the_campaign_is_created(app):
    with pytest.raises(FieldError, match="unknown push override block 'ios'"):
        make_campaign(app, "cart", channel="push", rule="email exists", template_document=PUSH_TEMPLATE,
                      clock=Clock(NOW), settings={"push_overrides": {"ios": {}}})

"""Combining the answers of a contact's devices into one delivery outcome."""

from __future__ import annotations

import asyncio

import pytest

from clarion.channels.base import DeliveryResult, GoneToken, OutboundPush, Outcome, PushTarget
from clarion.channels.push_fanout import PushFanout

PHONE = PushTarget("fcm", "phone-token-0000000000000001")
TABLET = PushTarget("fcm", "tablet-token-000000000000002")
IPHONE = PushTarget("apns", "ab" * 32)


def sent(name="ok"):
    return DeliveryResult(Outcome.SENT, provider_id=name)


def gone(target):
    return DeliveryResult(Outcome.BAD_ADDRESS, code="UNREGISTERED", gone=(GoneToken(target.kind, target.token),))


class Scripted:
    def __init__(self, answers):
        self.answers = answers
        self.seen = []

    async def send_to(self, message, target):
        self.seen.append(target.token)
        return self.answers[target.token]

    async def aclose(self):
        pass


def push(*targets):
    return OutboundPush(targets=targets, title="Hi", body="B", message_id="1.x", idempotency_key="k")


def send(providers, message):
    return asyncio.run(PushFanout(providers).send(message))


def test_one_device_reached_is_a_sent_delivery_and_the_gone_one_is_reported():
    # given a phone whose token is gone and a tablet that takes the message
    fcm = Scripted({PHONE.token: gone(PHONE), TABLET.token: sent("projects/p/messages/1")})
    # when the message fans out
    result = send({"fcm": fcm}, push(PHONE, TABLET))
    # then the contact was reached, and the phone's token travels to the checkpoint for invalidation
    assert result.outcome is Outcome.SENT and result.provider_id == "projects/p/messages/1"
    assert result.gone == (GoneToken("fcm", PHONE.token),)
    assert "1 of 2 devices" in result.detail and "bad_address" in result.detail


@pytest.mark.parametrize("answers, expected", [
    ((Outcome.RETRY, Outcome.BAD_ADDRESS), Outcome.RETRY),
    ((Outcome.FAILED, Outcome.BAD_ADDRESS), Outcome.FAILED),
    ((Outcome.CONFIG_ERROR, Outcome.RETRY), Outcome.CONFIG_ERROR),
    ((Outcome.BAD_ADDRESS, Outcome.BAD_ADDRESS), Outcome.BAD_ADDRESS),
])
def test_without_a_sent_device_the_most_actionable_answer_decides(answers, expected):
    # given two devices that both fail, each its own way
    first, second = (DeliveryResult(o, code=o.value, retry_after=30 if o is Outcome.RETRY else None)
                     for o in answers)
    fcm = Scripted({PHONE.token: first, TABLET.token: second})
    # when the message fans out
    result = send({"fcm": fcm}, push(PHONE, TABLET))
    # then: our own configuration first (pause), then retry, then failure, and "gone" only when all are gone
    assert result.outcome is expected
    if expected is Outcome.RETRY:
        assert result.retry_after == 30


def test_each_device_goes_to_the_provider_of_its_kind():
    # given an Android phone and an iPhone
    fcm, apns = Scripted({PHONE.token: sent("f")}), Scripted({IPHONE.token: sent("a")})
    # when the message fans out
    result = send({"fcm": fcm, "apns": apns}, push(PHONE, IPHONE))
    # then each provider saw only its own device
    assert fcm.seen == [PHONE.token] and apns.seen == [IPHONE.token]
    assert result.outcome is Outcome.SENT and sorted(result.provider_id.split(",")) == ["a", "f"]


def test_a_kind_without_a_provider_fails_and_no_devices_is_no_address():
    # given only an FCM provider, a contact with only an iPhone, and a contact with no device at all
    fcm = Scripted({})
    # then the iPhone cannot be reached (failed, naming why) and an empty target list is a bad address
    assert send({"fcm": fcm}, push(IPHONE)).code == "no_provider"
    assert send({"fcm": fcm}, push()).outcome is Outcome.BAD_ADDRESS

"""The policy chain as pure functions: order, exemptions of transactional messages, cap windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from clarion.delivery.policies import CampaignRules, DeliveryCase, Recipient, evaluate
from clarion.domain.campaigns import FrequencyCap
from clarion.domain.sending_time import QuietHours

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TOKYO = ZoneInfo("Asia/Tokyo")  # 21:00 at NOW


def rules(**overrides) -> CampaignRules:
    base = {"campaign_id": 1, "channel": "email", "marketing": True, "quiet_hours": QuietHours.parse("21:00-08:00")}
    return CampaignRules(**{**base, **overrides})


def case(**recipient) -> DeliveryCase:
    base = {"contact_id": 7, "address": "ana@example.com", "consented": True}
    return DeliveryCase(Recipient(**{**base, **recipient}), created_at=NOW, now=NOW)


def test_a_clean_case_passes_every_policy_in_order():
    result = evaluate(case(), rules())
    assert result.decision.action == "send"
    assert result.passed == ["contact", "address", "suppression", "consent", "holdout", "eligibility", "dedupe",
                             "session", "lifetime", "quiet_hours", "caps"]


@pytest.mark.parametrize(("recipient", "reason"), [
    ({"exists": False, "suppression": "hard_bounce"}, "erased"),
    ({"address": None, "consented": False}, "no_address"),
    ({"suppression": "complaint", "consented": False}, "suppressed"),
    ({"consented": False, "zone": TOKYO}, "no_consent"),
    ({"eligible": False, "zone": TOKYO}, "not_eligible"),
    ({"duplicate": True, "zone": TOKYO}, "duplicate_address"),
])
def test_the_first_objection_decides(recipient, reason):
    decision = evaluate(case(**recipient), rules()).decision
    assert (decision.action, decision.reason) == ("skip", reason)


def test_compliance_outranks_quiet_hours():
    # a suppressed contact in quiet hours is skipped, never merely deferred
    assert evaluate(case(suppression="manual", zone=TOKYO), rules()).decision.reason == "suppressed"


def test_transactional_messages_skip_consent_quiet_hours_caps_and_unsubscribes():
    cap = FrequencyCap(max=1, window_hours=24)
    sent = ((NOW - timedelta(hours=1), "email"),)
    tx = rules(marketing=False, caps=(cap,))
    assert evaluate(case(consented=False, zone=TOKYO, suppression="unsubscribe", recent=sent), tx).decision.action \
        == "send"
    assert evaluate(case(suppression="hard_bounce"), tx).decision.reason == "suppressed"


def test_quiet_hours_defer_to_the_end_of_the_window():
    decision = evaluate(case(zone=TOKYO), rules()).decision
    assert (decision.action, decision.reason) == ("defer", "quiet_hours")
    assert decision.until == datetime(2026, 11, 23, 23, 0, tzinfo=UTC)  # 08:00 in Tokyo


def test_a_rolling_cap_reopens_when_the_oldest_counted_send_ages_out():
    cap = FrequencyCap(max=2, window_hours=24)
    sends = ((NOW - timedelta(hours=20), "email"), (NOW - timedelta(hours=3), "sms"), (NOW - timedelta(hours=30),
                                                                                         "email"))
    skip = evaluate(case(recent=sends), rules(caps=(cap,))).decision
    assert (skip.action, skip.reason) == ("skip", "frequency_cap")
    defer = evaluate(case(recent=sends), rules(caps=(cap,), over_cap="defer")).decision
    assert defer.until == NOW + timedelta(hours=4)  # the send of 20 h ago leaves the 24 h window
    email_only = FrequencyCap(channel="email", max=2, window_hours=24)
    assert evaluate(case(recent=sends), rules(caps=(email_only,))).decision.action == "send"


def test_holdout_uses_the_deterministic_bucket():
    from clarion.segments.buckets import bucket_of

    held = [cid for cid in range(1, 200) if bucket_of(cid, "h") < 10]
    for cid in range(1, 200):
        decision = evaluate(case(contact_id=cid), rules(holdout_percent=10, holdout_salt="h")).decision
        assert (decision.reason == "holdout") == (cid in held)


def test_lifetime_fails_an_old_delivery():
    old = DeliveryCase(Recipient(7, address="a@example.com", consented=True), created_at=NOW - timedelta(hours=80),
                       now=NOW)
    decision = evaluate(old, rules(lifetime=timedelta(hours=72))).decision
    assert (decision.action, decision.reason) == ("fail", "expired")


WINDOW = timedelta(hours=24)


@pytest.mark.parametrize("last_inbound, action", [
    (NOW - timedelta(hours=23, minutes=59), "send"),  # inside the customer-service window
    (NOW - timedelta(hours=24), "skip"),  # the window is 24 hours, not a second more
    (None, "skip"),  # the contact never wrote to us
])
def test_whatsapp_free_form_text_needs_the_24_hour_window(last_inbound, action):
    # given a WhatsApp campaign whose content is free-form text only (it has a session window)
    whatsapp = rules(channel="whatsapp", session_window=WINDOW, quiet_hours=None)
    # when a contact is checked
    result = evaluate(case(address="+14155550101", last_inbound_at=last_inbound), whatsapp)
    # then only a contact who wrote within 24 hours may get it; the others are skipped with the reason
    assert result.decision.action == action
    if action == "skip":
        assert result.decision.reason == "outside_session_window"


def test_a_whatsapp_template_needs_no_window():
    # given a campaign with an approved template (no session window)
    result = evaluate(case(address="+14155550101"), rules(channel="whatsapp", quiet_hours=None))
    # then the contact who never wrote is sent the template
    assert result.decision.action == "send"


def test_a_transactional_voice_call_still_keeps_quiet_hours():
    # given a transactional call, and a transactional text, to a contact in Tokyo at 21:00 local
    call = rules(channel="voice", marketing=False)
    text = rules(channel="sms", marketing=False)
    # when both are checked
    called = evaluate(case(address="+81312345678", zone=TOKYO), call).decision
    texted = evaluate(case(address="+81312345678", zone=TOKYO), text).decision
    # then the phone does not ring at night (deferred to 08:00 local), while the receipt text goes
    assert called.action == "defer" and called.reason == "quiet_hours"
    assert called.until == datetime(2026, 11, 23, 23, 0, tzinfo=UTC)  # 08:00 in Tokyo
    assert texted.action == "send"

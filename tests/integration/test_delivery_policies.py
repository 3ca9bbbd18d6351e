"""The policy chain at send time, on both stores: every skip and deferral has its reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from delivery_world import Clock, ScriptedChannel, add_contact, make_campaign, progress, run, worker
from sqlalchemy import select, update

from clarion.domain.consent import SuppressionReason
from clarion.segments.buckets import bucket_of
from clarion.services.campaign_insight import CampaignInsight
from clarion.services.campaigns import CampaignService
from clarion.services.delivery_defaults import set_defaults
from clarion.store.schema import contacts
from clarion.store.schema_delivery import deliveries

NOON_UTC = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def statuses(app, name: str) -> dict[int, tuple[str, str | None]]:
    with app.store.read() as conn:
        campaign_id = CampaignService(app.settings).get(conn, name)["id"]
        return {r.contact_id: (r.status, r.reason) for r in conn.execute(
            select(deliveries).where(deliveries.c.campaign_id == campaign_id))}


def test_consent_and_suppression_decide_who_gets_a_broadcast(app):
    # given one consenting contact, one without consent and one whose address is suppressed
    yes = add_contact(app, "yes@example.com")
    no = add_contact(app, "no@example.com", consent=False)
    gone = add_contact(app, "gone@example.com")
    with app.store.write() as conn:
        app.consent.suppress(conn, "email", "gone@example.com", SuppressionReason.HARD_BOUNCE)
    make_campaign(app)
    channel = ScriptedChannel()
    # when a worker runs
    run(worker(app, channel))
    # then only the consenting contact got it, once, and every other delivery says why
    assert channel.recipients() == ["yes@example.com"]
    assert statuses(app, "spring") == {yes: ("sent", None), no: ("skipped", "no_consent"),
                                       gone: ("skipped", "suppressed")}
    assert progress(app, "spring")["counts"]["sent"] == 1
    assert progress(app, "spring")["audience"] == 3  # counted on both stores (psycopg needs preserve_rowcount)


def test_quiet_hours_defer_to_the_next_allowed_local_time_then_send(app):
    # given a contact in Tokyo, where noon UTC is 21:00, inside the default quiet hours 21:00-08:00
    tokyo = add_contact(app, "tokyo@example.com", timezone="Asia/Tokyo")
    lisbon = add_contact(app, "lisbon@example.com", timezone="Europe/Lisbon")
    clock = Clock(NOON_UTC)
    make_campaign(app, clock=clock)
    channel = ScriptedChannel()
    # when the worker runs at noon UTC
    run(worker(app, channel, clock))
    # then Lisbon gets it now and Tokyo is deferred to 08:00 Tokyo time (23:00 UTC)
    assert channel.recipients() == ["lisbon@example.com"]
    with app.store.read() as conn:
        row = conn.execute(select(deliveries).where(deliveries.c.contact_id == tokyo)).one()
    assert (row.status, row.reason) == ("deferred", "quiet_hours")
    assert row.due_at == datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
    # when the clock reaches 08:00 in Tokyo
    clock.now = datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
    run(worker(app, channel, clock))
    # then Tokyo gets it, and the campaign completes
    assert channel.recipients() == ["lisbon@example.com", "tokyo@example.com"]
    assert statuses(app, "spring")[tokyo] == ("sent", None) and lisbon in statuses(app, "spring")
    run(worker(app, channel, clock))
    assert progress(app, "spring")["status"] == "completed"


def test_transactional_messages_ignore_quiet_hours_consent_and_unsubscribes_but_not_bounces(app):
    # given a contact in quiet hours, without consent, who unsubscribed; and one who hard-bounced
    ana = add_contact(app, "ana@example.com", consent=False, timezone="Asia/Tokyo")
    bob = add_contact(app, "bob@example.com", consent=False)
    with app.store.write() as conn:
        app.consent.suppress(conn, "email", "ana@example.com", SuppressionReason.UNSUBSCRIBE)
        app.consent.suppress(conn, "email", "bob@example.com", SuppressionReason.HARD_BOUNCE)
    clock = Clock(NOON_UTC)
    make_campaign(app, "receipt", kind="transactional", clock=clock, segment=None)
    service = CampaignService(app.settings, clock=clock)
    with app.store.write() as conn:
        first = service.trigger(conn, "receipt", ana, key="order-1", data={"order": {"id": "A1"}})
        again = service.trigger(conn, "receipt", ana, key="order-1")
        service.trigger(conn, "receipt", bob, key="order-2")
    channel = ScriptedChannel()
    run(worker(app, channel, clock))
    # then the receipt reaches Ana once (the repeated key is the same delivery); Bob's address bounced
    assert first["delivery_id"] == again["delivery_id"] and again["created"] is False
    assert channel.recipients() == ["ana@example.com"]
    assert channel.messages[0].headers["Subject"] == "Hi Ana"
    with app.store.read() as conn:
        rows = {r.contact_id: (r.status, r.reason) for r in conn.execute(select(deliveries))}
    assert rows == {ana: ("sent", None), bob: ("skipped", "suppressed")}


def test_frequency_cap_per_local_day_skips_or_defers_the_second_campaign(app):
    # given a cap of one marketing email per local day, and a contact who got one today
    with app.store.write() as conn:
        set_defaults(conn, {"quiet_hours": {}, "caps": [{"channel": "email", "max": 1, "per_local_day": True}]})
    ana = add_contact(app, "ana@example.com", timezone="America/New_York")
    clock = Clock(NOON_UTC)
    make_campaign(app, "first", clock=clock)
    channel = ScriptedChannel()
    run(worker(app, channel, clock))
    # when two more campaigns go the same day, one skipping over the cap and one deferring
    make_campaign(app, "second", clock=clock)
    make_campaign(app, "third", clock=clock, settings={"over_cap": "defer"})
    run(worker(app, channel, clock))
    # then neither is sent; the deferral waits for midnight in New York (05:00 UTC)
    assert channel.recipients() == ["ana@example.com"]
    assert statuses(app, "second")[ana] == ("skipped", "frequency_cap")
    with app.store.read() as conn:
        third = conn.execute(select(deliveries).where(deliveries.c.status == "deferred")).one()
    assert third.reason == "frequency_cap" and third.due_at == datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
    # when the next local day begins, then the deferred one goes
    clock.now = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
    run(worker(app, channel, clock))
    assert channel.recipients() == ["ana@example.com"] * 2


def test_rolling_cap_counts_every_channel_when_star(app):
    with app.store.write() as conn:
        set_defaults(conn, {"quiet_hours": {}, "caps": [{"channel": "*", "max": 2, "window_hours": 24}]})
    add_contact(app, "ana@example.com")
    channel = ScriptedChannel()
    for name in ("a", "b", "c"):
        make_campaign(app, name)
        run(worker(app, channel))
    assert len(channel.messages) == 2
    assert progress(app, "c")["reasons"] == [{"status": "skipped", "reason": "frequency_cap", "count": 1}]


def test_eligibility_rule_is_checked_again_at_send_time(app):
    # given a Florida-only offer queued while both contacts lived in Florida
    fl = add_contact(app, "fl@example.com", region="FL", country="US")
    moved = add_contact(app, "moved@example.com", region="FL", country="US")
    make_campaign(app, "florida", eligibility='region = "FL"')
    # when one of them moves to California before the worker runs
    with app.store.write() as conn:
        conn.execute(update(contacts).where(contacts.c.id == moved).values(region="CA"))
    channel = ScriptedChannel()
    run(worker(app, channel))
    # then the Californian is not sent the offer
    assert channel.recipients() == ["fl@example.com"]
    assert statuses(app, "florida") == {fl: ("sent", None), moved: ("skipped", "not_eligible")}


def test_global_holdout_never_gets_marketing(app):
    with app.store.write() as conn:
        set_defaults(conn, {"quiet_hours": {}, "holdout_percent": 30, "holdout_salt": "lift"})
    ids = [add_contact(app, f"c{i}@example.com") for i in range(40)]
    make_campaign(app)
    run(worker(app, ScriptedChannel()))
    held = {cid for cid, (status, reason) in statuses(app, "spring").items() if reason == "holdout"}
    assert held == {cid for cid in ids if bucket_of(cid, "lift") < 30}
    assert 0 < len(held) < 40


def test_two_contacts_sharing_an_address_get_one_message(app):
    add_contact(app, "shared@example.com", first_name="A")
    with app.store.write() as conn:
        twin = conn.execute(contacts.insert().values(email="shared@example.com", timezone="UTC", created_at=NOON_UTC,
                                                     updated_at=NOON_UTC, custom_dates={}, attributes={}))
        twin_id = twin.inserted_primary_key[0]
        from clarion.domain.consent import Channel, ConsentStatus

        app.consent.record(conn, twin_id, Channel.EMAIL, ConsentStatus.OPTED_IN, source="test")
    make_campaign(app)
    channel = ScriptedChannel()
    run(worker(app, channel))
    assert channel.recipients() == ["shared@example.com"]
    assert statuses(app, "spring")[twin_id] == ("skipped", "duplicate_address")


def test_lifetime_expires_old_deliveries(app):
    add_contact(app, "ana@example.com", timezone="Asia/Tokyo")
    clock = Clock(NOON_UTC)
    make_campaign(app, clock=clock, settings={"lifetime_hours": 5})
    run(worker(app, ScriptedChannel(), clock))  # deferred by quiet hours until 23:00 UTC
    clock.now = NOON_UTC + timedelta(hours=11)
    run(worker(app, ScriptedChannel(), clock))
    assert list(statuses(app, "spring").values()) == [("failed", "expired")]


def test_dry_run_and_why_explain_decisions_without_sending(app):
    ana = add_contact(app, "ana@example.com", timezone="Asia/Tokyo")
    bob = add_contact(app, "bob@example.com", consent=False)
    make_campaign(app, start=False, settings={})  # the workspace's quiet hours: the dry run is at noon UTC
    with app.store.read() as conn:
        dry = CampaignInsight(app.settings).dry_run(conn, "spring", at=NOON_UTC)
    by_contact = {r["contact_id"]: r for r in dry["recipients"]}
    assert by_contact[ana]["action"] == "defer" and by_contact[ana]["reason"] == "quiet_hours"
    assert by_contact[ana]["send_at"] == datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
    assert by_contact[ana]["subject"] == "Hi Ana"
    assert by_contact[bob]["action"] == "skip" and by_contact[bob]["reason"] == "no_consent"
    with app.store.read() as conn:
        assert conn.execute(select(deliveries)).first() is None  # nothing stored
    with app.store.write() as conn:
        CampaignService(app.settings).send(conn, "spring")
    run(worker(app, ScriptedChannel()))
    with app.store.read() as conn:
        why = CampaignInsight(app.settings).why(conn, bob, "spring")
    assert why["deliveries"][0]["status"] == "skipped" and why["deliveries"][0]["reason"] == "no_consent"
    assert "consented" in why["deliveries"][0]["explanation"]
    assert why["deliveries"][0]["history"][0]["outcome"] == "skipped"
    assert why["now"]["reason"] == "no_consent" and why["now"]["passed"] == ["contact", "address", "suppression"]


@pytest.mark.parametrize("bad", ["25:00-08:00", "21:00", "21:00-08:00-09:00"])
def test_invalid_quiet_hours_are_refused_when_saved(app, bad):
    from clarion.domain.errors import FieldError

    add_contact(app, "ana@example.com")
    with pytest.raises(FieldError) as caught:
        make_campaign(app, settings={"quiet_hours": {"email": bad}})
    assert caught.value.field.startswith("settings.quiet_hours")


def test_a_transactional_campaign_sends_each_triggered_message_to_the_same_address(app):
    # given two orders by one contact: two distinct messages, not duplicates of one another
    ana = add_contact(app, "ana@example.com")
    make_campaign(app, "receipt", kind="transactional", segment=None)
    service = CampaignService(app.settings)
    channel = ScriptedChannel()
    for key in ("order-1", "order-2"):
        with app.store.write() as conn:
            service.trigger(conn, "receipt", ana, key=key)
        run(worker(app, channel))
    assert channel.recipients() == ["ana@example.com", "ana@example.com"]
    with app.store.read() as conn:
        why = CampaignInsight(app.settings).why(conn, ana, "receipt")
    assert why["now"]["action"] == "send"


def test_why_for_a_contact_already_sent_is_not_a_duplicate_of_itself(app):
    ana = add_contact(app, "ana@example.com")
    make_campaign(app)
    run(worker(app, ScriptedChannel()))
    with app.store.read() as conn:
        why = CampaignInsight(app.settings).why(conn, ana, "spring")
    assert why["deliveries"][0]["status"] == "sent" and why["now"]["reason"] != "duplicate_address"


def test_a_change_of_the_workspace_defaults_reaches_a_running_worker(app):
    add_contact(app, "a@example.com")
    add_contact(app, "b@example.com")
    clock = Clock(NOON_UTC)
    make_campaign(app, clock=clock)
    channel = ScriptedChannel()
    sender = worker(app, channel, clock)
    batch = sender.dispatcher.lease(progress(app, "spring")["id"], limit=1)
    import asyncio

    sender.dispatcher.checkpoint(batch, asyncio.run(sender.dispatcher.send(batch)))
    with app.store.write() as conn:
        set_defaults(conn, {"quiet_hours": {"*": "00:00-23:59"}})
    run(sender)
    assert len(channel.messages) == 1
    assert sorted(statuses(app, "spring").values()) == [("deferred", "quiet_hours"), ("sent", None)]


def test_a_scheduled_campaign_whose_segment_is_gone_pauses_alone(app):
    from clarion.services.segments import SegmentService

    add_contact(app, "ana@example.com")
    clock = Clock(NOON_UTC)
    make_campaign(app, "broken", clock=clock, start=False)
    make_campaign(app, "receipt", kind="transactional", segment=None, clock=clock)
    service = CampaignService(app.settings, clock=clock)
    with app.store.write() as conn:
        service.schedule(conn, "broken", {"mode": "at", "at": NOON_UTC.isoformat()})
        SegmentService(app.settings).delete(conn, "seg-broken")
        service.trigger(conn, "receipt", 1, key="k")
    channel = ScriptedChannel()
    run(worker(app, channel, clock))
    assert channel.recipients() == ["ana@example.com"]  # the receipt still went
    broken = progress(app, "broken")
    assert broken["status"] == "paused" and "could not start" in broken["status_reason"]


def test_erasure_leaves_no_address_in_suppressions_or_delivery_details(app):
    from clarion.channels.base import DeliveryResult, Outcome
    from clarion.store.schema import suppressions
    from clarion.store.schema_delivery import delivery_log

    ana = add_contact(app, "ana@example.com")
    make_campaign(app)
    bounce = DeliveryResult(Outcome.BAD_ADDRESS, code="550 5.1.1", detail="<ana@example.com>: no such user")
    run(worker(app, ScriptedChannel({"ana@example.com": bounce})))
    with app.store.write() as conn:
        app.gdpr.erase(conn, ana)
    with app.store.read() as conn:
        texts = [str(tuple(r)) for table in (suppressions, deliveries, delivery_log)
                 for r in conn.execute(select(table))]
    assert texts and not any("ana@example.com" in text for text in texts)
    assert progress(app, "spring")["counts"]["failed"] == 1

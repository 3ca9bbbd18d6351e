"""The send ledger on both stores: leases, checkpoints, retries, auto-pause, control, local-time sends."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from delivery_world import Clock, ScriptedChannel, add_contact, make_campaign, progress, run, worker
from sqlalchemy import func, select

from clarion.channels.base import DeliveryResult, Outcome
from clarion.delivery.throttle import claim_slots, take_tokens
from clarion.domain.sending_time import local_instant
from clarion.services.campaigns import CampaignService
from clarion.services.delivery_defaults import set_defaults
from clarion.store.schema_delivery import deliveries, delivery_log
from clarion.store.schema_scores import engagements

NOON_UTC = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SOFT = DeliveryResult(Outcome.RETRY, code="451 4.3.0", detail="try later")


def no_quiet_hours(app) -> None:
    with app.store.write() as conn:
        set_defaults(conn, {"quiet_hours": {}})


def delivery_rows(app):
    with app.store.read() as conn:
        return conn.execute(select(deliveries).order_by(deliveries.c.id)).all()


def test_a_crashed_worker_loses_nothing_and_the_retry_keeps_the_message_id(app):
    # given a worker that leased a batch and died before it checkpointed
    no_quiet_hours(app)
    for i in range(5):
        add_contact(app, f"c{i}@example.com")
    clock = Clock(NOON_UTC)
    make_campaign(app, clock=clock)
    dead = worker(app, ScriptedChannel(), clock)
    campaign_id = progress(app, "spring")["id"]
    batch = dead.dispatcher.lease(campaign_id)
    first_ids = {item.row.id: dead.dispatcher.channels["email"].composer.compose(batch.campaign, item, clock.now)
                 .message_id for item in batch.items}
    assert progress(app, "spring")["counts"]["leased"] == 5
    # when another worker runs before the lease expires, then it leaves those rows alone
    channel = ScriptedChannel()
    run(worker(app, channel, clock))
    assert channel.messages == []
    # when the lease (300 s) has expired, then another worker sends every message, with the same Message-IDs
    clock.now = NOON_UTC + timedelta(seconds=301)
    run(worker(app, channel, clock))
    assert sorted(channel.recipients()) == [f"c{i}@example.com" for i in range(5)]
    assert {row.id: row.message_id for row in delivery_rows(app)} == first_ids
    assert all(row.attempts == 2 and row.status == "sent" for row in delivery_rows(app))


def test_temporary_errors_are_retried_with_backoff_until_the_attempts_run_out(app):
    # given an address whose server answers 451 three times, then accepts; another that always answers 451
    no_quiet_hours(app)
    add_contact(app, "late@example.com")
    add_contact(app, "never@example.com")
    clock = Clock(NOON_UTC)
    make_campaign(app, clock=clock, settings={"max_attempts": 4})
    channel = ScriptedChannel({"late@example.com": [SOFT, SOFT, SOFT], "never@example.com": [SOFT] * 10})
    for _ in range(6):  # when the worker runs again each time the retries are due
        run(worker(app, channel, clock))
        clock.now += timedelta(hours=2)  # beyond the 1 h backoff cap
    # then the first is delivered on its fourth attempt; the second fails after four
    late, never = delivery_rows(app)
    assert (late.status, late.attempts) == ("sent", 4)
    assert (never.status, never.reason, never.attempts) == ("failed", "max_attempts", 4)
    with app.store.read() as conn:
        outcomes = conn.execute(select(delivery_log.c.outcome).where(delivery_log.c.delivery_id == late.id)
                                .order_by(delivery_log.c.id)).scalars().all()
    assert outcomes == ["retry", "retry", "retry", "sent"]


def test_a_retry_waits_at_least_what_the_provider_asked(app):
    no_quiet_hours(app)
    add_contact(app, "busy@example.com")
    clock = Clock(NOON_UTC)
    make_campaign(app, clock=clock)
    answer = DeliveryResult(Outcome.RETRY, code="429", retry_after=7200)
    run(worker(app, ScriptedChannel({"busy@example.com": [answer]}), clock))
    (row,) = delivery_rows(app)
    assert row.status == "deferred" and row.due_at >= NOON_UTC + timedelta(seconds=7200)


def test_a_bad_address_is_suppressed_and_a_policy_refusal_is_not(app):
    no_quiet_hours(app)
    add_contact(app, "gone@example.com")
    add_contact(app, "blocked@example.com")
    make_campaign(app)
    channel = ScriptedChannel({
        "gone@example.com": DeliveryResult(Outcome.BAD_ADDRESS, code="550 5.1.1", detail="no such user"),
        "blocked@example.com": DeliveryResult(Outcome.FAILED, code="550 5.7.1", detail="sender blocked")})
    run(worker(app, channel))
    gone, blocked = delivery_rows(app)
    assert (gone.status, gone.reason) == ("failed", "bad_address")
    assert (blocked.status, blocked.reason) == ("failed", "rejected")
    with app.store.read() as conn:
        assert app.consent.suppression(conn, "email", "gone@example.com")["reason"] == "hard_bounce"
        assert app.consent.suppression(conn, "email", "blocked@example.com") is None


def test_a_configuration_error_pauses_the_campaign_without_using_attempts(app):
    no_quiet_hours(app)
    add_contact(app, "ana@example.com")
    make_campaign(app)
    refused = DeliveryResult(Outcome.CONFIG_ERROR, code="535 5.7.8", detail="authentication failed")
    run(worker(app, ScriptedChannel({"ana@example.com": refused})))
    state = progress(app, "spring")
    assert state["status"] == "paused" and "535" in state["status_reason"]
    (row,) = delivery_rows(app)
    assert (row.status, row.attempts) == ("queued", 0)
    # when an operator fixes it and resumes, then the message goes
    with app.store.write() as conn:
        CampaignService(app.settings).resume(conn, "spring")
    channel = ScriptedChannel()
    run(worker(app, channel))
    assert channel.recipients() == ["ana@example.com"]


def test_the_campaign_pauses_itself_when_too_many_sends_fail(app):
    no_quiet_hours(app)
    for i in range(30):
        add_contact(app, f"c{i}@example.com")
    make_campaign(app, settings={"error_window": 20, "error_rate_pause": 0.5})
    bounce = DeliveryResult(Outcome.BAD_ADDRESS, code="550 5.1.1")
    channel = ScriptedChannel({f"c{i}@example.com": bounce for i in range(0, 30, 3)} |
                              {f"c{i}@example.com": bounce for i in range(1, 30, 3)})
    run(worker(app, channel))
    state = progress(app, "spring")
    assert state["status"] == "paused"
    assert state["status_reason"].startswith("auto-paused: 65% of the last 20 attempts failed (threshold 50%)")


def test_pause_resume_and_cancel_at_any_moment(app):
    no_quiet_hours(app)
    for i in range(4):
        add_contact(app, f"c{i}@example.com")
    make_campaign(app)
    service = CampaignService(app.settings)
    with app.store.write() as conn:
        service.pause(conn, "spring")
    channel = ScriptedChannel()
    run(worker(app, channel))
    assert channel.messages == []  # paused: nothing taken
    with app.store.write() as conn:
        service.resume(conn, "spring")
        service.cancel(conn, "spring")
    run(worker(app, channel))
    assert channel.messages == []
    assert progress(app, "spring")["counts"]["cancelled"] == 4


def test_sent_messages_are_recorded_as_received_engagement(app):
    no_quiet_hours(app)
    ana = add_contact(app, "ana@example.com")
    make_campaign(app)
    run(worker(app, ScriptedChannel()))
    with app.store.read() as conn:
        rows = conn.execute(select(engagements.c.contact_id, engagements.c.action)).all()
    assert [tuple(r) for r in rows] == [(ana, "received")]


def test_local_time_schedule_gives_each_zone_its_own_due_time(app):
    no_quiet_hours(app)
    add_contact(app, "ny@example.com", timezone="America/New_York")
    add_contact(app, "tokyo@example.com", timezone="Asia/Tokyo")
    add_contact(app, "nozone@example.com", timezone=None)
    clock = Clock(datetime(2026, 11, 30, 12, 0, tzinfo=UTC))  # 02:00 on 1 December in Kiritimati (UTC+14)
    make_campaign(app, start=False, clock=clock)
    service = CampaignService(app.settings, clock=clock)
    with app.store.write() as conn:
        scheduled = service.schedule(conn, "spring", {"mode": "local", "date": "2026-12-01", "time": "10:00"})
        assert scheduled["start_at"] == local_instant(date(2026, 12, 1), time(10), ZoneInfo("Pacific/Kiritimati"))
        assert service.start_due(conn) == []  # not yet 10:00 anywhere
        clock.now = scheduled["start_at"]
        assert service.start_due(conn) == ["spring"]
    due = {row.contact_id: row.due_at for row in delivery_rows(app)}
    assert sorted(due.values()) == [datetime(2026, 12, 1, 1, 0, tzinfo=UTC),  # Tokyo
                                    datetime(2026, 12, 1, 10, 0, tzinfo=UTC),  # no zone: the default, UTC
                                    datetime(2026, 12, 1, 15, 0, tzinfo=UTC)]  # New York


def test_rate_limit_tokens_are_shared_and_refill_at_the_rate(app):
    with app.store.write() as conn:
        assert take_tokens(conn, "email", 10, rate=2.0, burst=5, now=NOON_UTC) == 5
        assert take_tokens(conn, "email", 10, rate=2.0, burst=5, now=NOON_UTC) == 0
        assert take_tokens(conn, "email", 10, rate=2.0, burst=5, now=NOON_UTC + timedelta(seconds=1.5)) == 3


def test_connection_slots_are_limited_across_workers_and_expire(app):
    hold = timedelta(seconds=60)
    with app.store.write() as conn:
        assert claim_slots(conn, "smtp", "w1", 3, 4, NOON_UTC, hold) == 3
        assert claim_slots(conn, "smtp", "w2", 3, 4, NOON_UTC, hold) == 1
        assert claim_slots(conn, "smtp", "w1", 3, 4, NOON_UTC + timedelta(seconds=30), hold) == 3  # renewed
        # w2 died: its slot is free once expired
        assert claim_slots(conn, "smtp", "w3", 3, 4, NOON_UTC + timedelta(seconds=61), hold) == 1


def test_a_rate_limited_worker_leases_no_more_than_its_tokens(app):
    no_quiet_hours(app)
    for i in range(8):
        add_contact(app, f"c{i}@example.com")
    clock = Clock(NOON_UTC)
    make_campaign(app, clock=clock)
    channel = ScriptedChannel()
    sender = worker(app, channel, clock, rate_per_second=1.0, rate_burst=3)
    asyncio.run(sender.run_once())
    asyncio.run(sender.run_once())
    assert len(channel.messages) == 3
    clock.now += timedelta(seconds=2)
    asyncio.run(sender.run_once())
    assert len(channel.messages) == 5
    with app.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(deliveries).where(
            deliveries.c.status == "queued")).scalar_one() == 3


def test_a_weekday_schedule_becomes_the_next_such_date(app):
    add_contact(app, "ana@example.com", timezone="Europe/Paris")
    clock = Clock(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))  # a Wednesday
    make_campaign(app, start=False, clock=clock)
    with app.store.write() as conn:
        planned = CampaignService(app.settings, clock=clock).schedule(
            conn, "spring", {"mode": "local", "weekday": "tuesday", "time": "10:00"})
    assert planned["schedule"] == {"mode": "local", "date": "2026-12-01", "time": "10:00:00"}


def test_a_render_that_runs_out_of_time_is_retried_then_fails(app):
    # given a template whose every render needs far more than the 50 ms of CPU a message may use
    no_quiet_hours(app)
    add_contact(app, "ana@example.com")
    slow = {"default": {"email": {"subject": "Hi", "html": "{% for i in range(9000) %}{% for j in range(9) %}"
                                                           "{{ (i * j) | string | length }}{% endfor %}{% endfor %}"}}}
    clock = Clock(NOON_UTC)
    make_campaign(app, clock=clock, template_document=slow, settings={"max_attempts": 2})
    # when the worker tries, then the time cap is treated as a temporary failure, and then as final
    run(worker(app, ScriptedChannel(), clock))
    (row,) = delivery_rows(app)
    assert (row.status, row.reason) == ("deferred", "retry") and "CPU" in row.detail
    clock.now += timedelta(hours=2)
    run(worker(app, ScriptedChannel(), clock))
    (row,) = delivery_rows(app)
    assert (row.status, row.reason, row.attempts) == ("failed", "max_attempts", 2)

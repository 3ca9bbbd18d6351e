"""The segment scheduler refreshes due segments, and keeps going when one fails; both stores."""

from __future__ import annotations

import time

from clarion.domain.profiles import ProfilePatch
from clarion.runners.segment_scheduler import SegmentScheduler, refresh_due
from clarion.services.identity import Identifiers
from clarion.services.segments import SegmentService


def test_due_segments_are_refreshed_and_a_failing_one_does_not_stop_the_others(app):
    service = SegmentService(app.settings)
    with app.store.write() as conn:
        # given a scheduled segment, one on demand, and a scheduled one whose referenced segment is gone
        app.contacts.identify(conn, Identifiers(external_id="ana"), ProfilePatch(country="US"))
        service.create(conn, "base", 'country = "US"')
        service.create(conn, "hourly", 'country = "US"', refresh_minutes=60)
        service.create(conn, "manual", 'country = "US"')
        service.create(conn, "broken", 'in_segment("base")', refresh_minutes=60)
        conn.exec_driver_sql("DELETE FROM segments WHERE name = 'base'")  # behind the service's back
    # when a round runs
    results = refresh_due(app)
    # then the healthy due segment was refreshed, the broken one skipped, the manual one left alone
    assert [(r.segment, r.members) for r in results] == [("hourly", 1)]
    with app.store.read() as conn:
        assert service.get(conn, "manual")["refreshed_at"] is None
        assert service.due(conn) == ["broken"]


def test_the_scheduler_thread_runs_rounds_until_stopped(app):
    service = SegmentService(app.settings)
    with app.store.write() as conn:
        app.contacts.identify(conn, Identifiers(external_id="ana"), ProfilePatch(country="US"))
        service.create(conn, "hourly", 'country = "US"', refresh_minutes=60)
    scheduler = SegmentScheduler(app, interval=0.05).start()
    deadline = time.monotonic() + 60  # seconds: one round takes milliseconds; generous for a loaded CI machine
    while time.monotonic() < deadline:
        with app.store.read() as conn:
            if service.get(conn, "hourly")["member_count"] == 1:
                break
        time.sleep(0.05)
    scheduler.stop()
    with app.store.read() as conn:
        assert service.get(conn, "hourly")["member_count"] == 1

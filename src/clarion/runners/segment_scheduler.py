"""Refresh the segments whose schedule is due, now and then, in a background thread of ``clarion serve``.

Each segment refreshes in its own write transaction, so one failing rule does not stop the others
(its error is logged and it is tried again at the next round). Several servers against one
PostgreSQL may each run a scheduler: a refresh locks its segment's row, so two never interleave;
at worst a segment is refreshed twice in a row. Cron can do the same with
``clarion segments refresh --due``.
"""

from __future__ import annotations

import logging
import threading

from ..bootstrap import Clarion
from ..domain.errors import ClarionError
from ..services.segments import RefreshResult, SegmentService

log = logging.getLogger(__name__)


def refresh_due(app: Clarion) -> list[RefreshResult]:
    """One round: every due segment refreshed fully; the results of those that succeeded."""
    service = SegmentService(app.settings)
    with app.store.read() as conn:
        names = service.due(conn)
    results = []
    for name in names:
        try:
            with app.store.write() as conn:
                results.append(service.refresh(conn, name))
        except ClarionError as exc:  # e.g. a segment it uses was deleted meanwhile
            log.warning("scheduled refresh of segment %r failed: %s", name, exc)
    return results


class SegmentScheduler:
    """A daemon thread running :func:`refresh_due` every ``interval`` seconds until stopped."""

    def __init__(self, app: Clarion, interval: float) -> None:
        self.app = app
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="segment-scheduler", daemon=True)

    def start(self) -> SegmentScheduler:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                for result in refresh_due(self.app):
                    log.info("segment %s refreshed: +%d -%d, %d members", result.segment, result.entered,
                             result.left, result.members)
            except Exception:  # noqa: BLE001 - a database outage must not end the thread; the next round retries
                log.exception("segment scheduler round failed")

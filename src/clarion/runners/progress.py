"""What a worker has done for each campaign, for the progress lines of ``clarion worker``.

Counted from what the worker holds anyway (the lease's decisions, the checkpoint's summary), so it costs
the send path no query: a few dictionary updates per batch, not per message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

PROGRESS_SECONDS = 5.0  # a campaign's line at most this often while it sends; a cron log stays short
# A decision or a checkpoint outcome, as the ledger status it leaves the delivery in. A config_error
# releases the delivery back to the queue and pauses the campaign: nothing was decided, so it is not counted.
COUNTED_AS = {"sent": "sent", "skipped": "skipped", "deferred": "deferred", "retry": "deferred",
              "failed": "failed", "bad_address": "failed"}


@dataclass
class CampaignProgress:
    campaign_id: int
    name: str
    started: float  # time.monotonic() when this worker first turned to the campaign
    updated: float  # ... and when it last counted something for it
    sent: int = 0
    skipped: int = 0
    deferred: int = 0
    failed: int = 0

    @property
    def rate(self) -> float:
        """Messages sent per second since this worker first turned to the campaign."""
        elapsed = self.updated - self.started
        return self.sent / elapsed if elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"campaign_id": self.campaign_id, "campaign": self.name, "sent": self.sent, "skipped": self.skipped,
                "deferred": self.deferred, "failed": self.failed, "rate_per_second": round(self.rate, 1)}


class ProgressTracker:
    """Counts per campaign; ``report`` hands each changed campaign to a callback at a steady cadence."""

    def __init__(self, on_progress: Callable[[CampaignProgress], None] | None = None, *,
                 every: float = PROGRESS_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.on_progress = on_progress
        self.every = every
        self.clock = clock
        self.campaigns: dict[int, CampaignProgress] = {}
        self._began: dict[int, float] = {}
        self._changed: set[int] = set()
        self._reported_at: dict[int, float] = {}

    def begin(self, campaign_id: int) -> None:
        """The worker turns to a campaign: the start of its rate, the first time."""
        self._began.setdefault(campaign_id, self.clock())

    def count(self, campaign: Any, counts: Mapping[str, int]) -> None:
        """Add a batch's decisions or outcomes (kind -> number) for a campaign (anything with id and name)."""
        if not counts:
            return
        now = self.clock()
        progress = self.campaigns.get(campaign.id)
        if progress is None:
            started = self._began.get(campaign.id, now)
            progress = self.campaigns[campaign.id] = CampaignProgress(campaign.id, campaign.name, started, now)
        for kind, number in counts.items():
            field = COUNTED_AS.get(kind)
            if field is not None:
                setattr(progress, field, getattr(progress, field) + number)
        progress.updated = now
        self._changed.add(campaign.id)

    def report(self, *, final: bool = False) -> None:
        """Each campaign whose counts changed, unless its last report is under ``every`` seconds old;
        ``final`` (the worker is idle or stopping) reports every change at once."""
        if self.on_progress is None or not self._changed:
            return
        now = self.clock()
        for campaign_id in sorted(self._changed):
            last = self._reported_at.get(campaign_id)
            if final or last is None or now - last >= self.every:
                self._changed.discard(campaign_id)
                self._reported_at[campaign_id] = now
                self.on_progress(self.campaigns[campaign_id])

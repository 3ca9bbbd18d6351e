"""The policy chain: every delivery is checked at send time, and every "no" says why.

The order (documented in docs/delivery.md; the first policy that objects decides):

 1. ``contact``      the contact still exists and was not merged away          skip: erased, merged
 2. ``address``      an address for the channel                                skip: no_address
 3. ``suppression``  the address is not suppressed                             skip: suppressed
 4. ``consent``      consent to the channel and topic (marketing; not webhook) skip: no_consent
 5. ``holdout``      not in the global holdout group (marketing only)          skip: holdout
 6. ``eligibility``  the campaign's eligibility rule still holds               skip: not_eligible
 7. ``dedupe``       no other contact with this address got this campaign      skip: duplicate_address
 8. ``session``      WhatsApp free-form text only inside the 24-hour window     skip: outside_session_window
 9. ``lifetime``     the delivery is not older than the campaign's lifetime    fail: expired
10. ``quiet_hours``  outside quiet hours in the recipient's zone (marketing;   defer: quiet_hours
                     voice calls always)
11. ``caps``         under every frequency cap (marketing only)                skip or defer: frequency_cap

Compliance comes first, so a suppressed contact is never merely "deferred". Quiet hours come before
the caps so that a capped message is counted when it actually goes out. Transactional messages skip
4, 5, 10 and 11 (but a voice call never rings inside quiet hours), and an ``unsubscribe`` suppression
does not stop them (a receipt is not marketing); a hard bounce, complaint or manual suppression does.

Each policy is pure: it reads a :class:`DeliveryCase` (facts loaded in bulk by ``delivery.facts``) and
returns ``None`` (no objection) or a :class:`Decision`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from ..domain.campaigns import FrequencyCap
from ..domain.sending_time import QuietHours, local_day_start, next_local_day_start
from ..segments.buckets import bucket_of

Action = Literal["send", "defer", "skip", "fail"]


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str | None = None  # a code of delivery.reasons
    detail: str = ""
    until: datetime | None = None  # for "defer": when to look again (UTC)
    policy: str | None = None


SEND = Decision("send")


@dataclass(frozen=True)
class Recipient:
    """What the chain knows of one delivery's contact; ``recent`` holds the contact's marketing sends
    (UTC time, channel), in-flight ones included, for the caps."""

    contact_id: int | None
    exists: bool = True
    merged: bool = False
    zone: ZoneInfo = ZoneInfo("UTC")
    address: str | None = None
    suppression: str | None = None  # the suppression reason, when suppressed
    consented: bool = False
    eligible: bool = True
    duplicate: bool = False
    recent: tuple[tuple[datetime, str], ...] = ()
    targets: tuple = ()  # push channels: the live devices (channels.base.PushTarget), newest first
    last_inbound_at: datetime | None = None  # WhatsApp: the contact's last message to us (UTC)


@dataclass(frozen=True)
class CampaignRules:
    """A campaign's policies, resolved against the workspace defaults."""

    campaign_id: int
    channel: str
    marketing: bool
    quiet_hours: QuietHours | None = None
    caps: tuple[FrequencyCap, ...] = ()
    over_cap: Literal["skip", "defer"] = "skip"
    lifetime: timedelta = timedelta(hours=72)
    holdout_percent: int = 0
    holdout_salt: str = "global-holdout"
    # WhatsApp content without an approved template can only go inside the customer-service window.
    session_window: timedelta | None = None


@dataclass(frozen=True)
class DeliveryCase:
    recipient: Recipient
    created_at: datetime
    now: datetime


class Policy(Protocol):
    name: str

    def check(self, case: DeliveryCase, rules: CampaignRules) -> Decision | None: ...


@dataclass(frozen=True)
class ContactPolicy:
    name: str = "contact"

    def check(self, case: DeliveryCase, rules: CampaignRules) -> Decision | None:
        if not case.recipient.exists:
            return Decision("skip", "erased", policy=self.name)
        if case.recipient.merged:
            return Decision("skip", "merged", policy=self.name)
        return None


@dataclass(frozen=True)
class AddressPolicy:
    name: str = "address"

    def check(self, case: DeliveryCase, rules: CampaignRules) -> Decision | None:
        if not case.recipient.address:
            return Decision("skip", "no_address", f"no {rules.channel} address", policy=self.name)
        return None


@dataclass(frozen=True)
class SuppressionPolicy:
    name: str = "suppression"

    def check(self, case: DeliveryCase, rules: CampaignRules) -> Decision | None:
        reason = case.recipient.suppression
        if reason is None or (reason == "unsubscribe" and not rules.marketing):
            return None
        return Decision("skip", "suppressed", f"suppressed: {reason}", policy=self.name)


@dataclass(frozen=True)
class ConsentPolicy:
    name: str = "consent"

    def check(self, case: DeliveryCase, rules: CampaignRules) -> Decision | None:
        # A webhook hands the message to the business's own system, not to the person: nobody consents
        # to "webhook", and the system it feeds applies the consent of the channel it finally uses.
        if rules.marketing and rules.channel != "webhook" and not case.recipient.consented:
            return Decision("skip", "no_consent", policy=self.name)
        return None


@dataclass(frozen=True)
class HoldoutPolicy:
    name: str = "holdout"

    def check(self, case: DeliveryCase, rules: CampaignRules) -> Decision | None:
        contact_id = case.recipient.contact_id
        if not rules.marketing or not rules.holdout_percent or contact_id is None:
            return None
        bucket = bucket_of(contact_id, rules.holdout_salt)
        if bucket < rules.holdout_percent:
            return Decision("skip", "holdout", f"bucket {bucket} < {rules.holdout_percent}", policy=self.name)
        return None


@dataclass(frozen=True)
class EligibilityPolicy:
    name: str = "eligibility"

    def check(self, case: DeliveryCase, rules: CampaignRules) -> Decision | None:
        return None if case.recipient.eligible else Decision("skip", "not_eligible", policy=self.name)


@dataclass(frozen=True)
class DedupePolicy:
    name: str = "dedupe"

    def check(self, case: DeliveryCase, rules: CampaignRules) -> Decision | None:
        return Decision("skip", "duplicate_address", policy=self.name) if case.recipient.duplicate else None


@dataclass(frozen=True)
class SessionWindowPolicy:
    """WhatsApp Business policy: free-form messages only within 24 hours of the customer's last message;
    outside it only approved templates may be sent (which the composer then uses)."""

    name: str = "session"

    def check(self, case: DeliveryCase, rules: CampaignRules) -> Decision | None:
        window = rules.session_window
        if window is None:
            return None
        last = case.recipient.last_inbound_at
        if last is not None and case.now - last < window:
            return None
        said = f"last message from the contact {last.isoformat(timespec='minutes')}" if last else "never wrote to us"
        return Decision("skip", "outside_session_window", f"{said}; the template has only free-form text",
                        policy=self.name)


@dataclass(frozen=True)
class LifetimePolicy:
    name: str = "lifetime"

    def check(self, case: DeliveryCase, rules: CampaignRules) -> Decision | None:
        deadline = case.created_at + rules.lifetime
        if case.now > deadline:
            return Decision("fail", "expired", f"not sent by {deadline.isoformat()}", policy=self.name)
        return None


@dataclass(frozen=True)
class QuietHoursPolicy:
    name: str = "quiet_hours"

    def check(self, case: DeliveryCase, rules: CampaignRules) -> Decision | None:
        window = rules.quiet_hours
        # A ringing phone is as unwelcome at 3 a.m. for a "transactional" call: voice always keeps quiet hours.
        if (not rules.marketing and rules.channel != "voice") or window is None:
            return None
        zone = case.recipient.zone
        if not window.contains(case.now, zone):
            return None
        until = window.next_allowed(case.now, zone)
        local = until.astimezone(zone)
        return Decision("defer", "quiet_hours", f"quiet hours {window.to_text()} in {zone.key}; "
                        f"next allowed {local.isoformat(timespec='minutes')}", until=until, policy=self.name)


@dataclass(frozen=True)
class FrequencyCapPolicy:
    name: str = "caps"

    def check(self, case: DeliveryCase, rules: CampaignRules) -> Decision | None:
        if not rules.marketing:
            return None
        for cap in rules.caps:
            sends = sorted(at for at, channel in case.recipient.recent if cap.applies_to(channel))
            since, reopens = _cap_window(cap, sends, case)
            counted = [at for at in sends if at >= since]
            if len(counted) >= cap.max:
                until = reopens(counted)
                if rules.over_cap == "skip" or until is None:
                    return Decision("skip", "frequency_cap", cap.describe(), policy=self.name)
                return Decision("defer", "frequency_cap", cap.describe(), until=until, policy=self.name)
        return None


def _cap_window(cap: FrequencyCap, sends: Sequence[datetime], case: DeliveryCase):
    """The start of the cap's window, and a function giving when it next has room."""
    zone = case.recipient.zone
    if cap.per_local_day:
        return local_day_start(case.now, zone), lambda counted: next_local_day_start(case.now, zone)
    window = timedelta(hours=cap.window_hours or 0)

    def reopens(counted: list[datetime]) -> datetime:
        # The window has room once enough of the oldest counted sends have aged out of it.
        return counted[len(counted) - cap.max] + window

    return case.now - window, reopens


CHAIN: tuple[Policy, ...] = (
    ContactPolicy(), AddressPolicy(), SuppressionPolicy(), ConsentPolicy(), HoldoutPolicy(),
    EligibilityPolicy(), DedupePolicy(), SessionWindowPolicy(), LifetimePolicy(), QuietHoursPolicy(),
    FrequencyCapPolicy(),
)


@dataclass
class ChainResult:
    decision: Decision
    passed: list[str] = field(default_factory=list)


def evaluate(case: DeliveryCase, rules: CampaignRules, chain: Sequence[Policy] = CHAIN) -> ChainResult:
    """Runs the chain in order; the first objection decides. ``passed`` lists the policies that agreed."""
    result = ChainResult(SEND)
    for policy in chain:
        decision = policy.check(case, rules)
        if decision is not None:
            result.decision = decision
            return result
        result.passed.append(policy.name)
    return result

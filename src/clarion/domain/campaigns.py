"""Campaign settings and the workspace's delivery defaults: what the policy chain enforces.

Both are JSON documents (``campaigns.settings`` and ``workspace_settings`` key ``delivery``), checked
here so a bad value is refused when it is saved, with the field named, never discovered at send time.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .sending_time import QuietHours, next_local_time

# Channels the ledger knows; "*" in caps and quiet hours means "every channel".
CHANNELS = ("email", "sms", "whatsapp", "voice", "push", "webpush", "webhook", "inapp")
ANY_CHANNEL = "*"
# WhatsApp Business messaging policy: free-form messages within 24 hours of the customer's last message.
WHATSAPP_SESSION = dt.timedelta(hours=24)
# Calls keep to 8:00-21:00 local time even when no quiet hours are configured: the US TCPA rule for
# telemarketing calls (47 CFR 64.1200(c)(1)), a sensible floor everywhere.
VOICE_QUIET_HOURS = QuietHours.parse("21:00-08:00")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FrequencyCap(_Strict):
    """At most ``max`` marketing messages per contact on ``channel`` ("*": all channels together),
    within the last ``window_hours`` (rolling) or within the recipient's local calendar day."""

    channel: str = ANY_CHANNEL
    max: int = Field(ge=1, le=1_000)
    window_hours: float | None = Field(default=None, gt=0, le=24 * 366)
    per_local_day: bool = False

    @model_validator(mode="after")
    def _one_window(self) -> FrequencyCap:
        if (self.window_hours is None) == (not self.per_local_day):
            raise ValueError("a cap has either window_hours or per_local_day: true, not both or neither")
        if self.channel != ANY_CHANNEL and self.channel not in CHANNELS:
            raise ValueError(f"unknown channel {self.channel!r}; one of {', '.join(CHANNELS)} or '*'")
        return self

    def applies_to(self, channel: str) -> bool:
        return self.channel in (ANY_CHANNEL, channel)

    def describe(self) -> str:
        window = "local day" if self.per_local_day else f"{self.window_hours:g} h"
        return f"{self.max} per {window} on {'all channels' if self.channel == ANY_CHANNEL else self.channel}"


def _quiet_hours_map(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    for channel, window in value.items():
        if channel != ANY_CHANNEL and channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r} in quiet_hours")
        QuietHours.parse(window)  # raises ValueError naming what is wrong
    return value


def _window_for(windows: dict[str, str], channel: str) -> QuietHours | None:
    """The channel's own window, else the "*" one; none when neither is set (or it is empty)."""
    window = windows.get(channel, windows.get(ANY_CHANNEL))
    return QuietHours.parse(window) if window else None


class DeliveryDefaults(_Strict):
    """The workspace's defaults: quiet hours per channel, frequency caps, the global holdout."""

    # {"*": "21:00-08:00", "sms": "21:00-08:00"}: local wall-clock windows; "*" for channels not listed.
    quiet_hours: dict[str, str] = Field(default_factory=lambda: {ANY_CHANNEL: "21:00-08:00"})
    caps: tuple[FrequencyCap, ...] = ()
    # Percent of contacts (0-50) who never get marketing messages, so lift can be measured against them.
    holdout_percent: int = Field(default=0, ge=0, le=50)
    holdout_salt: str = Field(default="global-holdout", min_length=1, max_length=100)
    # Response tracking for campaigns that do not say: links rewritten to /c/..., the email open pixel.
    track_links: bool = True
    track_opens: bool = True

    @field_validator("quiet_hours")
    @classmethod
    def _check_quiet_hours(cls, value: dict[str, str]) -> dict[str, str]:
        return _quiet_hours_map(value)

    def quiet_hours_for(self, channel: str) -> QuietHours | None:
        return _window_for(self.quiet_hours, channel)


class TrackingSettings(_Strict):
    """Response tracking of one campaign; ``None``: the workspace's default (DeliveryDefaults)."""

    links: bool | None = None
    opens: bool | None = None  # the email open pixel
    utm: bool = True  # append utm_source, utm_medium (the channel), utm_campaign and utm_content (link name)
    utm_source: str = Field(default="clarion", min_length=1, max_length=100)
    utm_campaign: str | None = Field(default=None, max_length=100)  # None: the campaign's name


GoalValue = str | int | float | bool


class ConversionGoal(_Strict):
    """What counts as a conversion for a campaign, and for how long after each touch (days).

    Last touch wins in the order click > open > delivery: a conversion within ``click_days`` of a human
    click is credited to that click's message, else within ``open_days`` of a human open, else within
    ``delivery_days`` of a delivery (channels without clicks or opens: SMS without links, voice)."""

    event: str = Field(default="Order Completed", min_length=1, max_length=200)
    where: dict[str, GoalValue] = Field(default_factory=dict, max_length=20)  # property equals value
    click_days: float = Field(default=5, gt=0, le=90)
    open_days: float = Field(default=1, gt=0, le=90)
    delivery_days: float = Field(default=1, gt=0, le=90)


class Sender(_Strict):
    from_address: str | None = None  # None: the installation's CLARION_EMAIL_FROM
    from_name: str | None = None
    reply_to: str | None = None


class CampaignSettings(_Strict):
    """Per campaign; ``None`` means "the workspace default"."""

    quiet_hours: dict[str, str] | None = None  # replaces the workspace's map when given
    caps: tuple[FrequencyCap, ...] | None = None
    over_cap: Literal["skip", "defer"] = "skip"
    max_attempts: int = Field(default=6, ge=1, le=50)
    lifetime_hours: float = Field(default=72.0, gt=0, le=24 * 30)  # a delivery not sent by then expires
    # Auto-pause: over this share of failed attempts among the latest ``error_window`` attempts.
    error_rate_pause: float = Field(default=0.25, gt=0, le=1)
    error_window: int = Field(default=200, ge=20, le=10_000)
    sender: Sender = Field(default_factory=Sender)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    goal: ConversionGoal = Field(default_factory=ConversionGoal)
    # Webhook campaigns: the endpoint for this campaign (else the workspace's CLARION_WEBHOOK_URL). Its
    # address is checked again when each message is sent (channels.webhook), so a DNS change cannot
    # point it inside the network.
    webhook_url: str | None = Field(default=None, max_length=2_000, pattern=r"^https?://")
    # Push campaigns: how long the provider keeps an undelivered notification (seconds), and "high" to
    # wake the device (time-sensitive messages only: providers throttle apps that overuse it).
    push_ttl_seconds: int = Field(default=86_400, ge=0, le=28 * 86_400)  # FCM's maximum is 28 days
    push_urgency: Literal["normal", "high"] = "normal"
    # Push campaigns: key/values for the app beside the notification (FCM wants strings), and provider
    # blocks merged into the FCM message as given ({"android": {...}, "apns": {...}, "webpush": {...}};
    # APNs direct takes the "apns" block's headers and payload).
    push_data: dict[str, str] = Field(default_factory=dict, max_length=50)
    push_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("push_overrides")
    @classmethod
    def _known_override_blocks(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        unknown = sorted(set(value) - {"android", "apns", "webpush"})
        if unknown:
            raise ValueError(f"unknown push override block {unknown[0]!r}; android, apns or webpush")
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _check_quiet_hours(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _quiet_hours_map(value)

    def quiet_hours_for(self, channel: str, defaults: DeliveryDefaults) -> QuietHours | None:
        if self.quiet_hours is None:
            return defaults.quiet_hours_for(channel)
        return _window_for(self.quiet_hours, channel)

    def caps_for(self, channel: str, defaults: DeliveryDefaults) -> tuple[FrequencyCap, ...]:
        caps = defaults.caps if self.caps is None else self.caps
        return tuple(cap for cap in caps if cap.applies_to(channel))


_EXAMPLE_INSTANT = "2026-12-01T09:00:00+00:00"
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_WALL_CLOCK = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?")  # ASCII digits only
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class Schedule(_Strict):
    """``now``; ``at`` an instant; ``local``: ``time`` on ``date`` in each recipient's zone.

    A local schedule may name a ``weekday`` instead of a date ("Tuesday 10:00"): it becomes the date of
    the next such day on which 10:00 has not yet come anywhere on Earth (:meth:`resolved`). Text is read
    strictly (HH:MM, YYYY-MM-DD, ISO 8601 with an offset), each refusal saying what is expected: pydantic
    alone would also take "10:00+02:00" or a count of seconds as a time.
    """

    mode: Literal["now", "at", "local"] = "now"
    at: dt.datetime | None = None
    date: dt.date | None = None
    weekday: Literal[WEEKDAYS] | None = None  # type: ignore[valid-type]
    time: dt.time | None = None

    @field_validator("at", mode="before")
    @classmethod
    def _instant(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(f"{value!r} is not an instant; use ISO 8601 with its UTC offset, "
                                 f"e.g. {_EXAMPLE_INSTANT}") from None
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            raise ValueError(f"{value.isoformat()} has no UTC offset; add one, e.g. {_EXAMPLE_INSTANT}")
        return value

    @field_validator("date", mode="before")
    @classmethod
    def _calendar_date(cls, value: Any) -> Any:
        if value is None or (isinstance(value, dt.date) and not isinstance(value, dt.datetime)):
            return value
        text = str(value).strip()
        try:
            if _ISO_DATE.fullmatch(text):
                return dt.date.fromisoformat(text)
        except ValueError:  # 2026-02-30
            pass
        raise ValueError(f"{text!r} is not a date; use YYYY-MM-DD, e.g. 2026-12-09")

    @field_validator("weekday", mode="before")
    @classmethod
    def _day_name(cls, value: Any) -> Any:
        if value is None:
            return None
        name = str(value).strip().lower()
        if name not in WEEKDAYS:
            raise ValueError(f"{str(value)!r} is not a day of the week; one of {', '.join(WEEKDAYS)}")
        return name

    @field_validator("time", mode="before")
    @classmethod
    def _wall_clock(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, dt.time):
            if value.tzinfo is not None:
                raise ValueError("a local time is a wall-clock time in each recipient's zone; drop its offset")
            return value
        text = str(value).strip()
        match = _WALL_CLOCK.fullmatch(text)
        if match is None or int(match[1]) > 23 or int(match[2]) > 59 or int(match[3] or 0) > 59:
            raise ValueError(f"{text!r} is not a time; use HH:MM from 00:00 to 23:59, e.g. 10:00")
        return dt.time(int(match[1]), int(match[2]), int(match[3] or 0))

    @model_validator(mode="after")
    def _complete(self) -> Schedule:
        if self.mode == "at" and self.at is None:
            raise ValueError(f"a schedule 'at' needs an instant with its UTC offset, e.g. {_EXAMPLE_INSTANT}")
        if self.mode == "local" and (self.time is None or (self.date is None) == (self.weekday is None)):
            raise ValueError("a 'local' schedule needs a local time (10:00) and either a date or a weekday")
        return self

    def resolved(self, now: dt.datetime, earliest_zone: ZoneInfo) -> Schedule:
        """A weekday schedule with its date fixed: the next one whose local time is still ahead in the
        earliest zone (where the local time comes first)."""
        if self.mode != "local" or self.weekday is None or self.time is None:
            return self
        first = next_local_time(now, self.time, earliest_zone, frozenset({WEEKDAYS.index(self.weekday)}))
        return self.model_copy(update={"date": first.astimezone(earliest_zone).date(), "weekday": None})

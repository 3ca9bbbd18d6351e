"""Tables for templates, campaigns and the send ledger: on the same metadata as :mod:`schema`.

The ledger (``deliveries``) is the source of truth for what was sent: one row per (campaign, step,
contact, channel), whose ``status`` moves queued → leased → sent | deferred | failed | skipped |
cancelled. ``due_at`` is when the row next needs a worker's attention: the send time of a queued row,
the retry or quiet-hours end of a deferred one, and the lease expiry of a leased one, so a single
index finds the work that is due, a dead worker's rows included.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from .schema import metadata
from .types import Id, Json, UtcDateTime

DELIVERY_STATES = ("queued", "leased", "sent", "deferred", "failed", "skipped", "cancelled")
CAMPAIGN_STATES = ("draft", "scheduled", "running", "paused", "cancelled", "completed")

templates = Table(
    "templates",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("description", Text),
    # The template as saved (delivery.template_store): default content, locale variants, default locale.
    # MJML is compiled when saving, so the document holds the HTML the sends render.
    Column("document", Json, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    # broadcast: to a segment, once; transactional: one contact at a time, through the API.
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("template_id", Id, ForeignKey("templates.id", ondelete="RESTRICT"), nullable=False),
    Column("segment_id", Id, ForeignKey("segments.id", ondelete="SET NULL")),
    # Consent topic (newsletter, offers ...); NULL: consent to the channel as a whole.
    Column("topic", String(100)),
    # Marketing messages obey consent, quiet hours, caps and the holdout; transactional ones do not.
    Column("marketing", Boolean, nullable=False),
    # The send-time eligibility rule's canonical JSON (segments.rule_json), or NULL.
    Column("eligibility", Json),
    # When and how: {"mode": "now" | "at" | "local", "at": ISO instant, "date": ..., "time": "10:00"}.
    Column("schedule", Json, nullable=False, default=dict),
    # Policy and sender settings (domain.campaigns.CampaignSettings as JSON).
    Column("settings", Json, nullable=False, default=dict),
    # When the audience is to be put in the ledger (the first zone's local time for "local" sends).
    Column("start_at", UtcDateTime),
    Column("audience_count", Integer),
    Column("status_reason", Text),  # why it paused itself, or who cancelled it
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    CheckConstraint("kind IN ('broadcast', 'transactional')", name="kind"),
    CheckConstraint(f"status IN {CAMPAIGN_STATES}", name="status"),
    Index(None, "status", "start_at"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("campaign_id", Id, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    # "main" for a broadcast; a journey step; "tx:<key>" for a transactional send.
    Column("step", String(120), nullable=False),
    # SET NULL: an erased contact's deliveries stay in the counts, without the person.
    Column("contact_id", Id, ForeignKey("contacts.id", ondelete="SET NULL")),
    Column("channel", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", String(40)),  # why skipped, deferred or failed: a code from delivery.reasons
    Column("detail", Text),
    Column("due_at", UtcDateTime, nullable=False),
    Column("lease_owner", String(80)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("marketing", Boolean, nullable=False),
    # The message's own data for a transactional send ({"order": {...}}), as ``data`` in templates.
    Column("data", Json),
    Column("message_id", String(250)),
    Column("provider_id", String(250)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("first_attempt_at", UtcDateTime),
    Column("sent_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    UniqueConstraint("campaign_id", "step", "contact_id", "channel"),
    CheckConstraint(f"status IN {DELIVERY_STATES}", name="status"),
    # Leasing: per campaign and state, in due order.
    Index(None, "campaign_id", "status", "due_at"),
    # Frequency caps: what a contact was sent lately.
    Index(None, "contact_id", "sent_at"),
    # Reports and lift: a campaign's rows by state, read from the index alone. Named: the generated name
    # would pass PostgreSQL's 63 characters and be truncated there only.
    Index("ix_deliveries_campaign_report", "campaign_id", "status", "contact_id", "sent_at", "finished_at", "reason"),
)

# Everything that happened to a delivery: each attempt with the provider's answer, each deferral and skip.
delivery_log = Table(
    "delivery_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("delivery_id", Id, ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("campaign_id", Id, nullable=False),  # denormalised: auto-pause reads a campaign's latest attempts
    Column("at", UtcDateTime, nullable=False),
    Column("attempt", Integer, nullable=False),
    # An outcome of channels.base.Outcome, or deferred, skipped, cancelled, expired.
    Column("outcome", String(16), nullable=False),
    Column("reason", String(40)),
    Column("code", String(40)),
    Column("provider_id", String(250)),
    Column("detail", Text),
    Column("worker", String(80)),
    Index(None, "delivery_id"),
    Index(None, "campaign_id", "id"),
)

# Token buckets shared by every worker: messages per second per channel or provider.
throttle_buckets = Table(
    "throttle_buckets",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Connection slots shared by every worker: at most N concurrent connections to one provider.
throttle_slots = Table(
    "throttle_slots",
    metadata,
    Column("key", String(100), nullable=False),
    Column("slot", Integer, nullable=False),
    Column("holder", String(80)),
    Column("expires_at", UtcDateTime),
    PrimaryKeyConstraint("key", "slot"),
)


# The in-app inbox: messages an "inapp" campaign delivered, kept per contact until read or expired. The row
# is written in the same transaction that checkpoints the delivery as sent, so it exists exactly once.
inbox_messages = Table(
    "inbox_messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("contact_id", Id, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("campaign_id", Id, ForeignKey("campaigns.id", ondelete="SET NULL")),
    Column("delivery_id", Id, ForeignKey("deliveries.id", ondelete="SET NULL"), unique=True),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("url", Text),
    Column("image", Text),
    Column("data", Json),
    Column("created_at", UtcDateTime, nullable=False),
    Column("read_at", UtcDateTime),
    Column("expires_at", UtcDateTime),
    Index(None, "contact_id", "created_at"),
)


# The links of each sent message, written with the delivery's ``sent`` checkpoint. A click's token names
# (delivery, position) and is signed, and the redirect goes only to the URL stored here.
tracked_links = Table(
    "tracked_links",
    metadata,
    Column("delivery_id", Id, ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("url", Text, nullable=False),  # with the campaign's UTM parameters
    Column("name", String(100), nullable=False),  # utm_content: data-clarion-name, the link text, or link-N
    PrimaryKeyConstraint("delivery_id", "position"),
)

"""Tables for segments, scores and engagement: on the same metadata as :mod:`schema`."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    false,
)

from .schema import _contact_fk, metadata
from .types import Id, Json, UtcDateTime

segments = Table(
    "segments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("description", Text),
    # The rule's canonical JSON (segments.rule_json); the text form is printed from it.
    Column("rule", Json, nullable=False),
    # Scheduled full refresh every N minutes; NULL: on demand (and incremental) only.
    Column("refresh_minutes", Integer),
    Column("member_count", Integer, nullable=False, default=0),
    Column("refreshed_at", UtcDateTime),
    # The last full refresh: what the schedule counts from (incremental refreshes do not see time pass).
    Column("full_refreshed_at", UtcDateTime),
    # What the last refresh had seen: an incremental refresh looks only at contacts with events,
    # consent changes, engagement or profile updates past these marks.
    Column("event_mark", Id, nullable=False, default=0),
    Column("ledger_mark", Id, nullable=False, default=0),
    Column("engagement_mark", Id, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

segment_members = Table(
    "segment_members",
    metadata,
    Column("segment_id", Id, ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True),
    Column("contact_id", Id, ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
    Column("entered_at", UtcDateTime, nullable=False),
    Index(None, "contact_id"),
)

# Entering and leaving, for journeys that trigger on "entered segment" and for the history.
segment_changes = Table(
    "segment_changes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("segment_id", Id, ForeignKey("segments.id", ondelete="CASCADE"), nullable=False),
    _contact_fk(),
    Column("change", String(8), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    CheckConstraint("change IN ('entered', 'left')", name="change"),
    Index(None, "segment_id", "id"),
    Index(None, "contact_id"),
)

# One row per scored contact: RFM, lead score and the BG/NBD + Gamma-Gamma predictions.
contact_scores = Table(
    "contact_scores",
    metadata,
    Column("contact_id", Id, ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
    Column("rfm_r", Integer),  # 1..5 quintile scores; 5 is best (most recent, most frequent, most spent)
    Column("rfm_f", Integer),
    Column("rfm_m", Integer),
    Column("rfm_segment", String(32)),  # champions, loyal, ... (scoring.rfm.SEGMENT_GRID)
    Column("rfm_at", UtcDateTime),
    Column("lead_score", Float),
    Column("lead_at", UtcDateTime),
    Column("p_alive", Float),  # BG/NBD probability that the customer is still active
    Column("expected_purchases", Float),  # in the horizon of the fit's settings
    Column("expected_order_value", Float),  # Gamma-Gamma, in the orders' currency
    Column("lifetime_value", Float),  # discounted, over the fit's horizon
    Column("predicted_at", UtcDateTime),
    Index(None, "rfm_segment"),
)

# "Moved from Loyal to At risk": one row per contact whose RFM segment changed in a recompute.
rfm_transitions = Table(
    "rfm_transitions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _contact_fk(),
    Column("from_segment", String(32)),
    Column("to_segment", String(32)),
    Column("at", UtcDateTime, nullable=False),
    Index(None, "contact_id"),
    Index(None, "at"),
)

# Fitted model parameters (bgnbd, gamma_gamma), kept so they can be shown and compared over time.
model_fits = Table(
    "model_fits",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("model", String(32), nullable=False),
    Column("params", Json, nullable=False),
    Column("customers", Integer, nullable=False),
    Column("log_likelihood", Float),
    Column("settings", Json, nullable=False, default=dict),
    Column("fitted_at", UtcDateTime, nullable=False),
    Index(None, "model", "fitted_at"),
)

# Workspace-wide documents edited through the API or a file: the lead scoring rules, for now.
workspace_settings = Table(
    "workspace_settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("document", Json, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# What recipients did with our messages, one row per engagement (tracking.engagements writes it; segments,
# reports and attribution read it). ``machine`` rows (mail privacy proxies, link scanners, HEAD requests)
# are kept beside the human ones with the rule that caught them in ``reason``; everything downstream
# counts human rows unless asked otherwise.
ENGAGEMENT_ACTIONS = ("received", "delivered", "opened", "clicked", "converted", "bounced", "complained",
                      "unsubscribed")
engagements = Table(
    "engagements",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _contact_fk(),
    Column("campaign_id", Id),
    Column("channel", String(16), nullable=False),
    Column("action", String(16), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    # The delivery (send ledger row) it answers; NULL for engagement written before tracking existed.
    Column("delivery_id", Id),
    Column("step", String(120)),
    Column("link", Integer),  # clicks: the link's position in the message (tracked_links.position)
    Column("machine", Boolean, nullable=False, default=False, server_default=false()),
    # Why a row is machine (tracking.classify), or where an open came from (pixel, click, app, receipt).
    Column("reason", String(40)),
    Column("agent", String(16)),  # the user agent's class: browser, mobile, email_client, proxy, bot ...
    Column("ip_prefix", String(48)),  # the client's network, never its address: IPv4 /24, IPv6 /48
    # Conversions: the goal event credited (once: unique) and its revenue in the workspace currency.
    Column("event_id", Id, unique=True),
    Column("revenue", Float),
    CheckConstraint(f"action IN {ENGAGEMENT_ACTIONS}", name="action"),
    Index(None, "contact_id", "action", "occurred_at"),
    # Reports read a campaign's engagement from this index alone (services.reports, bench/report.py).
    Index(None, "campaign_id", "action", "machine", "delivery_id", "revenue"),
    Index(None, "delivery_id", "action"),
)

# Incremental segment refresh finds the contacts whose profile changed since its last run.
Index("ix_contacts_updated_at", metadata.tables["contacts"].c.updated_at)

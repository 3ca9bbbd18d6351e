"""A campaign as a worker uses it: its row, parsed template, settings and resolved policies.

Loading parses the stored JSON once per campaign version (``updated_at``), not once per batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from ..config import Settings
from ..content.model import Template
from ..content.template_store import template_from_document
from ..delivery.facts import LONGEST_CAP_WINDOW, BatchScope
from ..delivery.policies import CampaignRules
from ..domain.campaigns import VOICE_QUIET_HOURS, WHATSAPP_SESSION, CampaignSettings, DeliveryDefaults
from ..domain.rules import Rule
from ..messages.link_tracking import TrackingOptions
from ..segments.compiler import CompileContext
from ..segments.rule_json import rule_from_json
from ..services.segments import SegmentService
from ..store.schema_delivery import campaigns, templates


@dataclass(frozen=True)
class LoadedCampaign:
    id: int
    name: str
    kind: str
    channel: str
    topic: str | None
    marketing: bool
    version: Any  # (campaign updated_at, defaults updated_at): see Dispatcher._campaign
    template: Template
    settings: CampaignSettings
    rules: CampaignRules
    eligibility: Rule | None
    scope: BatchScope
    tracking: TrackingOptions = field(default_factory=TrackingOptions)

    @property
    def render_view(self) -> dict[str, Any]:
        """What templates see as ``campaign``."""
        return {"id": self.id, "name": self.name}


def load_campaign(conn: Connection, campaign_id: int, defaults: DeliveryDefaults, settings: Settings,
                  version: Any = None) -> LoadedCampaign:
    row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).one()
    document = conn.execute(select(templates.c.document).where(templates.c.id == row.template_id)).scalar_one()
    options = CampaignSettings.model_validate(row.settings or {})
    caps = options.caps_for(row.channel, defaults)
    template = template_from_document(document)
    quiet_hours = options.quiet_hours_for(row.channel, defaults)
    if quiet_hours is None and row.channel == "voice":
        quiet_hours = VOICE_QUIET_HOURS
    rules = CampaignRules(
        campaign_id=row.id, channel=row.channel, marketing=row.marketing,
        quiet_hours=quiet_hours, caps=caps, over_cap=options.over_cap,
        lifetime=timedelta(hours=options.lifetime_hours), holdout_percent=defaults.holdout_percent,
        holdout_salt=defaults.holdout_salt, session_window=_session_window(row.channel, template))
    eligibility = rule_from_json(row.eligibility) if row.eligibility else None
    lookback = _cap_lookback(caps) if row.marketing else None
    scope = BatchScope(campaign_id=row.id, channel=row.channel, topic=row.topic, marketing=row.marketing,
                       eligibility=eligibility, default_timezone=settings.default_timezone, cap_lookback=lookback)
    return LoadedCampaign(id=row.id, name=row.name, kind=row.kind, channel=row.channel, topic=row.topic,
                          marketing=row.marketing, version=version or row.updated_at,
                          template=template, settings=options, rules=rules,
                          eligibility=eligibility, scope=scope, tracking=tracking_options(row, options, defaults))


def tracking_options(row: Any, options: CampaignSettings, defaults: DeliveryDefaults) -> TrackingOptions:
    """The campaign's tracking settings with the workspace's defaults filled in."""
    tracking = options.tracking
    utm = {"utm_source": tracking.utm_source, "utm_medium": row.channel,
           "utm_campaign": tracking.utm_campaign or row.name} if tracking.utm else {}
    return TrackingOptions(links=defaults.track_links if tracking.links is None else tracking.links,
                           opens=defaults.track_opens if tracking.opens is None else tracking.opens, utm=utm)


def eligibility_context(conn: Connection, settings: Settings, campaign: LoadedCampaign,
                        now: datetime) -> CompileContext | None:
    """What the campaign's eligibility rule is compiled against at ``now`` (None: it has no rule)."""
    if campaign.eligibility is None:
        return None
    return SegmentService(settings, clock=lambda: now).context(conn)


def _session_window(channel: str, template: Template) -> timedelta | None:
    """WhatsApp content with free-form text only (no approved template in some locale) needs the window."""
    if channel != "whatsapp":
        return None
    contents = [content.over(template.default) for _, content in template.contents()]
    needs = any(content.whatsapp is not None and not content.whatsapp.template for content in contents)
    return WHATSAPP_SESSION if needs else None


def _cap_lookback(caps) -> timedelta | None:
    if not caps:
        return None
    longest = max(timedelta(hours=cap.window_hours) if cap.window_hours else timedelta(hours=50) for cap in caps)
    return min(longest, LONGEST_CAP_WINDOW)  # a local day spans at most 26 hours; 50 leaves room for any zone

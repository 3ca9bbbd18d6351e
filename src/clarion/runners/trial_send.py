"""A test send (``clarion campaigns test-send``): one campaign message, rendered for a chosen contact,
sent to an address of your choice: an email address, a phone number (SMS, WhatsApp, voice), or for push
campaigns the id of a contact whose live devices get it (the tester's own, registered as usual).
The inbox and webhook channels have no test send: the first would write to a real inbox.

It goes straight through the campaign's channel (the same composer and adapter a worker uses) and is
not written to the ledger: it is not a delivery to the contact, and it never counts against caps.
Policies are not applied either; the subject is marked ``[Test]``.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select

from ..bootstrap import Clarion
from ..content.model import Template
from ..delivery.facts import device_targets, load_contacts
from ..domain.errors import FieldError, NotFound
from ..domain.profiles import normalize_email, normalize_phone
from ..segments.reachable import DEVICE_KINDS, PHONE_CHANNELS
from ..services.campaigns import CampaignService
from ..services.clock import utcnow
from ..services.delivery_defaults import get_defaults
from ..store.schema import contacts
from .channels import build_channels, close_channels
from .dispatch import ChannelBinding, Leased
from .loaded_campaign import load_campaign


async def send_test(app: Clarion, campaign_name: str, to: str, contact_id: int | None = None,
                    channels: dict[str, ChannelBinding] | None = None) -> dict[str, Any]:
    bindings = channels or build_channels(app.settings)
    now = utcnow()
    try:
        with app.store.read() as conn:
            row = CampaignService(app.settings).row(conn, campaign_name)
            campaign = load_campaign(conn, row.id, get_defaults(conn), app.settings)
            profile = _profile(conn, contact_id)
            address, targets = _test_address(conn, app, campaign.channel, to)
        binding = bindings.get(campaign.channel)
        if binding is None:
            raise FieldError("channel", f"no {campaign.channel} channel is configured")
        marked = replace(campaign, template=_marked(campaign.template))
        # contact_id 0: the test's unsubscribe link names no one, so a tester clicking it changes nothing.
        fake = SimpleNamespace(id=0, step=f"test:{uuid.uuid4().hex}", contact_id=0, data=None, message_id=None)
        message = binding.composer.compose(marked, Leased(fake, profile, address, targets), now)
        result = await binding.channel.send(message)
    finally:
        if channels is None:
            await close_channels(bindings)
    return {"campaign": campaign.name, "to": address, "contact_id": profile["id"], "outcome": result.outcome.value,
            "code": result.code, "detail": result.detail, "message_id": message.message_id}


def _test_address(conn, app: Clarion, channel: str, to: str) -> tuple[str, tuple]:
    """The address a test goes to, and for push channels the devices of the contact ``to`` names."""
    try:
        if channel == "email":
            return normalize_email(to), ()
        if channel in PHONE_CHANNELS:
            return normalize_phone(to, app.settings.default_phone_region), ()
    except FieldError as exc:
        raise FieldError("to", exc.reason) from None
    if channel in DEVICE_KINDS:
        owner = int(to) if to.isascii() and to.isdecimal() else None
        targets = device_targets(conn, channel, [owner]).get(owner, ()) if owner else ()
        if not targets:
            raise FieldError("to", f"for a {channel} campaign, the id of a contact with a live {channel} device")
        return targets[0].token, targets
    raise FieldError("channel", f"a {channel} campaign has no test send (email, phone and push channels do)")


def _profile(conn, contact_id: int | None) -> dict[str, Any]:
    if contact_id is None:
        contact_id = conn.execute(select(contacts.c.id).order_by(contacts.c.id).limit(1)).scalar()
    found = load_contacts(conn, [contact_id]) if contact_id is not None else {}
    if contact_id not in found:
        raise NotFound("contact", contact_id)
    return found[contact_id]


def _marked(template: Template) -> Template:
    """The template with "[Test] " before every email subject (default and variants)."""
    def mark(content):
        if content.email is None:
            return content
        return replace(content, email=replace(content.email, subject="[Test] " + content.email.subject))

    return Template(default=mark(template.default), variants={k: mark(v) for k, v in template.variants.items()},
                    default_locale=template.default_locale)


"""From a leased delivery to the bytes an SMTP server receives: render, build, sign.

Message-ID and idempotency key are derived from the delivery's unique key (campaign, step, contact,
channel) with a keyed hash, so every attempt of one delivery, even after a crash and a new lease,
carries the same Message-ID: a receiving system that removes duplicates by Message-ID sees one mail.
Marketing mail carries List-Unsubscribe (the signed https one-click URL, and a mailto when one is
configured) with ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058), and List-Id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..channels.base import OutboundEmail
from ..config import Settings
from ..content.context import RenderContext
from ..content.errors import RenderError
from ..content.render import RenderSettings, render
from ..tracking.links import UnsubscribeTarget, sign_unsubscribe, unsubscribe_url
from .compose import idempotency_key, link_tracker
from .dkim_signing import DkimSigner
from .email_message import EmailSpec, build_email


def domain_of(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


class EmailComposer:
    def __init__(self, settings: Settings, signer: DkimSigner | None = None) -> None:
        self.settings = settings
        self.signer = signer
        self.render_settings = RenderSettings(default_timezone=settings.default_timezone)

    def compose(self, campaign: Any, item: Any, now: datetime) -> OutboundEmail:
        """Raises :class:`RenderError` when this contact's message cannot be made."""
        row, profile = item.row, item.profile
        sender = campaign.settings.sender
        from_address = sender.from_address or self.settings.email_from
        key = idempotency_key(self.settings.link_secret, campaign.id, row.step, row.contact_id, "email")
        message_id = f"{row.id}.{key[:20]}@{domain_of(from_address)}"
        url = self._unsubscribe(campaign, row.contact_id)
        context = RenderContext(contact=profile, campaign=campaign.render_view, links={"unsubscribe": url},
                                now=now, data=row.data or {})
        email = render(campaign.template, context, self.render_settings, channels=("email",)).email
        if email is None:
            raise RenderError("email", "the template has no email content")
        tracker = link_tracker(self.settings, campaign, item)
        html = tracker.finish_html(tracker.html(email.html)) if email.html else None
        text = tracker.text(email.text or "")
        spec = EmailSpec(
            from_name=sender.from_name or self.settings.email_from_name, from_address=from_address,
            to_address=item.address, to_name=_full_name(profile), subject=email.subject, text=text,
            html=html, message_id=message_id, date=now, reply_to=sender.reply_to,
            # RFC 8058 one-click needs https: on an http:// install (development) List-Unsubscribe carries only
            # the mailto, when one is configured, and there is no one-click URL.
            list_unsubscribe_url=url if campaign.marketing and url.startswith("https://") else None,
            list_unsubscribe_mailto=self._mailto(campaign, url),
            list_id=f"{_list_name(campaign.name)} <c{campaign.id}.{domain_of(from_address)}>" if campaign.marketing
            else None,
            headers={"X-Clarion-Delivery": str(row.id)})
        try:
            data = build_email(spec)
        except ValueError as exc:  # a header value the contact's data made invalid (CR/LF, bad address)
            raise RenderError("email.headers", str(exc)) from None
        if self.signer is not None:
            data = self.signer.sign(data)
        return OutboundEmail(sender=from_address, recipient=item.address, data=data, message_id=message_id,
                             idempotency_key=key, headers={"Subject": email.subject, "To": item.address})

    def _unsubscribe(self, campaign: Any, contact_id: int) -> str:
        token = sign_unsubscribe(self.settings.link_secret,
                                 UnsubscribeTarget(contact_id, campaign.id, "email", campaign.topic))
        return unsubscribe_url(self.settings.public_url, token)

    def _mailto(self, campaign: Any, url: str) -> str | None:
        mailbox = self.settings.email_unsubscribe_mailto
        if not campaign.marketing or not mailbox:
            return None
        return f"mailto:{mailbox}?subject=unsubscribe%20{url.rsplit('/', 1)[-1]}"


def _full_name(profile: dict[str, Any]) -> str:
    return " ".join(part for part in (profile.get("first_name"), profile.get("last_name")) if part)


def _list_name(name: str) -> str:
    # List-Id's phrase: the campaign name without characters that would need quoting.
    return "".join(ch for ch in name if ch.isalnum() or ch in " -_.")[:60].strip() or "Clarion"

"""Building blocks for delivery tests: contacts with consent, a template, a campaign, and a worker.

``ScriptedChannel`` is a Channel adapter that answers per recipient from a script (and records what it
was given); the SMTP adapter itself is tested against a real SMTP server elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from clarion.bootstrap import Clarion
from clarion.channels.base import DeliveryResult, OutboundEmail, Outcome
from clarion.domain.campaigns import CHANNELS
from clarion.domain.consent import Channel, ConsentStatus
from clarion.domain.profiles import ProfilePatch
from clarion.messages.email_compose import EmailComposer
from clarion.runners.dispatch import ChannelBinding
from clarion.runners.worker import Worker
from clarion.services.campaigns import CampaignService
from clarion.services.identity import Identifiers
from clarion.services.segments import SegmentService
from clarion.services.templates import TemplateService

TEMPLATE = {"default": {"email": {
    "subject": "Hi {{ contact.first_name | default('there') }}",
    "html": "<p>Hello {{ contact.first_name }}, we miss you. <a href=\"{{ links.unsubscribe }}\">Unsubscribe</a></p>"}}}


class ScriptedChannel:
    """Answers ``script[address]`` (a DeliveryResult, or a list consumed one per attempt); SENT otherwise."""

    def __init__(self, script: dict[str, Any] | None = None) -> None:
        self.script = dict(script or {})
        self.messages: list[OutboundEmail] = []

    async def send(self, message: OutboundEmail) -> DeliveryResult:
        self.messages.append(message)
        answer = self.script.get(message.recipient)
        if isinstance(answer, list):
            answer = answer.pop(0) if answer else None
        return answer or DeliveryResult(Outcome.SENT, provider_id=f"q-{len(self.messages)}")

    def recipients(self) -> list[str]:
        return [m.recipient for m in self.messages]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def add_contact(app: Clarion, email: str, *, consent: bool = True, timezone: str = "UTC",
                first_name: str = "Ana", **fields: Any) -> int:
    with app.store.write() as conn:
        contact_id = app.contacts.identify(conn, Identifiers(email=email), ProfilePatch(
            first_name=first_name, timezone=timezone, **fields))
        if consent:
            app.consent.record(conn, contact_id, Channel.EMAIL, ConsentStatus.OPTED_IN, source="test")
    return contact_id


def make_campaign(app: Clarion, name: str = "spring", *, rule: str = "email exists", clock: Callable | None = None,
                  start: bool = True, **spec: Any) -> dict[str, Any]:
    # The tests' workers are given their channels (ScriptedChannel, local peers), not built from the settings.
    service = CampaignService(app.settings, clock=clock or (lambda: datetime.now(UTC)), channels=CHANNELS)
    if clock is None and "settings" not in spec:
        # On the real clock, quiet hours would make a test depend on the hour it runs at.
        spec["settings"] = {"quiet_hours": {}}
    with app.store.write() as conn:
        segment = f"seg-{name}"
        SegmentService(app.settings).create(conn, segment, rule)
        TemplateService().save(conn, f"tpl-{name}", spec.pop("template_document", TEMPLATE))
        created = service.create(conn, {"name": name, "template": f"tpl-{name}", "segment": segment, **spec})
        return service.send(conn, name) if start else created


def worker(app: Clarion, channel: ScriptedChannel, clock: Callable | None = None, **binding: Any) -> Worker:
    bindings = {"email": ChannelBinding(EmailComposer(app.settings), channel, **binding)}
    return Worker(app, channels=bindings, clock=clock or (lambda: datetime.now(UTC)))


def run(worker_: Worker) -> None:
    asyncio.run(worker_.run(until_idle=True))


def progress(app: Clarion, name: str) -> dict[str, Any]:
    with app.store.read() as conn:
        return CampaignService(app.settings).progress(conn, name)

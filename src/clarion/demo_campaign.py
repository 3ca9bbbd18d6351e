"""The demo's campaign: "we miss you" to CDNOW's At risk and Can't lose them customers, over real SMTP.

The demo starts its own SMTP server (aiosmtpd on 127.0.0.1, a free port), signs every message with a
DKIM key it makes for the occasion, and runs one delivery worker until nothing is due. The clock is
fixed at 14:00 UTC on a weekday, so the default quiet hours (21:00-08:00 local) hold back the customers
whose local time is then at night (the US west coast, Japan, Australia) while the others get the mail.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path
from typing import Any

import dkim
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from .bootstrap import Clarion
from .config import Settings
from .runners.worker import Worker
from .services.campaigns import CampaignService
from .services.segments import SegmentService
from .services.templates import TemplateService
from .store.schema import contacts
from .store.schema_delivery import deliveries

SEND_AT = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # a Tuesday afternoon in Europe, night in Tokyo
SEGMENT = "we_miss_you"
RULE = 'rfm.segment in ("at_risk", "cant_lose")'
DKIM_DOMAIN, DKIM_SELECTOR = "demo.clarion.example", "demo"
MJML = """<mjml><mj-body><mj-section><mj-column>
<mj-text font-size="20px">We miss you, {{ contact.first_name | default("friend") }}!</mj-text>
<mj-text>It has been a while. Here is {{ 10 | money("USD") }} off your next CD, valid until
{{ now | date("long") }}.</mj-text>
<mj-button href="https://shop.example/comeback">Pick something</mj-button>
<mj-text font-size="11px"><a href="{{ links.unsubscribe }}">Unsubscribe</a></mj-text>
</mj-column></mj-section></mj-body></mjml>"""


@dataclass
class Inbox:
    """What the demo's SMTP server received."""

    messages: list[bytes] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        with self.lock:
            self.messages.append(envelope.original_content or envelope.content)
            self.recipients.extend(envelope.rcpt_tos)
        return "250 2.0.0 Ok: queued"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _dkim_key(directory: Path) -> tuple[Path, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = directory / "dkim-demo.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return path, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def run_campaign(database_url: str, directory: Path) -> dict[str, Any]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        key_file, dns_record = _dkim_key(directory)
        settings = Settings(database_url=database_url, _env_file=None, email_transport="smtp",
                            smtp_host="127.0.0.1", smtp_port=controller.port,
                            email_from="news@demo.clarion.example", email_from_name="CD Shop",
                            public_url="https://demo.clarion.example", dkim_domain=DKIM_DOMAIN,
                            dkim_selector=DKIM_SELECTOR, dkim_key_file=str(key_file))
        app = Clarion.from_settings(settings)
        try:
            return _send(app, inbox, dns_record)
        finally:
            app.close()
    finally:
        controller.stop()


def _send(app: Clarion, inbox: Inbox, dns_record: bytes) -> dict[str, Any]:
    clock = lambda: SEND_AT  # noqa: E731 - the demo's fixed "now"
    with app.store.write() as conn:
        SegmentService(app.settings, clock=clock).create(conn, SEGMENT, RULE)
        TemplateService(app.settings.default_timezone).save(conn, "we-miss-you", {"default": {"email": {
            "subject": "{{ contact.first_name | default('Hello') }}, we miss you", "mjml": MJML}}})
        campaigns = CampaignService(app.settings, clock=clock)
        campaigns.create(conn, {"name": "We miss you", "template": "we-miss-you", "segment": SEGMENT})
        campaigns.send(conn, "We miss you")
    asyncio.run(Worker(app, clock=clock).run(until_idle=True))
    with app.store.read() as conn:
        progress = CampaignService(app.settings).progress(conn, "We miss you")
        deferred = conn.execute(select(contacts.c.timezone, func.count(), func.min(deliveries.c.due_at))
                                .select_from(deliveries.join(contacts, contacts.c.id == deliveries.c.contact_id))
                                .where(deliveries.c.status == "deferred").group_by(contacts.c.timezone)
                                .order_by(func.count().desc())).all()
    sample = inbox.messages[0] if inbox.messages else b""
    verified = bool(sample) and dkim.verify(sample, dnsfunc=lambda name, timeout=5: dns_record)
    return {"progress": progress, "received": len(inbox.messages), "dkim_verified": verified,
            "deferred_by_zone": [(zone, count, due) for zone, count, due in deferred],
            "sample_headers": _headers(sample)}


def show_campaign(result: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    progress = result["progress"]
    console.print(f"[bold]Campaign \"We miss you\"[/bold] to {RULE}, at {SEND_AT:%Y-%m-%d %H:%M} UTC: "
                  f"{progress['total']:,} recipients; the demo's SMTP server received {result['received']:,} "
                  f"messages (DKIM {'verified' if result['dkim_verified'] else 'NOT verified'})", highlight=False)
    table = Table(title="Outcome per state and reason", title_justify="left")
    for column in ("state", "reason", "deliveries"):
        table.add_column(column)
    reasons = {(r["status"], r["reason"]): r["count"] for r in progress["reasons"]}
    for state, count in progress["counts"].items():
        if count:
            explained = [(reason, n) for (s, reason), n in reasons.items() if s == state] or [("", count)]
            for reason, n in explained:
                table.add_row(state, reason or "", f"{n:,}")
    console.print(table)
    zones = Table(title="Held back by quiet hours (21:00-08:00 local), per zone", title_justify="left")
    for column in ("time zone", "deliveries", "goes out at (UTC)"):
        zones.add_column(column)
    for zone, count, due in result["deferred_by_zone"][:8]:
        zones.add_row(zone or "(default)", f"{count:,}", f"{due:%Y-%m-%d %H:%M}")
    console.print(zones)
    for name, value in result["sample_headers"].items():
        console.print(f"  {name}: {value}", highlight=False, markup=False)


def _headers(raw: bytes) -> dict[str, str]:
    if not raw:
        return {}
    parsed = message_from_bytes(raw)
    names = ("From", "To", "Subject", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id")
    return {name: str(parsed[name]) for name in names if parsed[name]}

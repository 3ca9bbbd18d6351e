"""The demo's campaigns over real SMTP, and what their recipients do with them.

"We miss you" goes to CDNOW's At risk and Can't lose them customers, "Picked for you" (another template,
another subject) to the Champions and Loyal customers with ten orders or more. The demo starts its own
SMTP server (aiosmtpd on 127.0.0.1, a free port), signs every message with a DKIM key it makes for the
occasion, holds 10% of the contacts back as the global holdout, and runs one delivery worker until
nothing is due. The campaigns' clock is the latest weekday 14:00 UTC at least an hour before now
(:func:`send_time`), so the default quiet hours (21:00-08:00 local) hold back the customers whose local
time is then at night (the US west coast, Japan, Australia) while the others get the mail, and the
recipients' responses (:mod:`.demo_response`), recorded at the real time, come an hour or more later.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
from .demo_response import respond
from .runners.worker import Worker
from .services.campaigns import CampaignService
from .services.delivery_defaults import set_defaults
from .services.segments import SegmentService
from .services.templates import TemplateService
from .store.schema import contacts
from .store.schema_delivery import deliveries

SEND_HOUR = 14  # UTC: the afternoon in Europe, the morning in New York, night in Tokyo and Sydney
HOLDOUT_PERCENT = 10  # percent of the contacts who never get marketing messages: the lift's baseline
RULE = 'rfm.segment in ("at_risk", "cant_lose")'
DKIM_DOMAIN, DKIM_SELECTOR = "demo.clarion.example", "demo"
MJML = """<mjml><mj-body><mj-section><mj-column>
<mj-text font-size="20px">We miss you, {{ contact.first_name | default("friend") }}!</mj-text>
<mj-text>It has been a while. Here is {{ 10 | money("USD") }} off your next CD, valid until
{{ now | date("long") }}.</mj-text>
<mj-button href="https://shop.example/comeback">Pick something</mj-button>
<mj-text font-size="11px"><a href="{{ links.unsubscribe }}">Unsubscribe</a></mj-text>
</mj-column></mj-section></mj-body></mjml>"""
PICKED_MJML = """<mjml><mj-body><mj-section><mj-column>
<mj-text font-size="20px">New this week, {{ contact.first_name | default("friend") }}</mj-text>
<mj-text>Thank you for being one of our best customers. We picked these for you.</mj-text>
<mj-button href="https://shop.example/new">See the new releases</mj-button>
<mj-text><a href="https://shop.example/charts">This week's charts</a></mj-text>
<mj-text font-size="11px"><a href="{{ links.unsubscribe }}">Unsubscribe</a></mj-text>
</mj-column></mj-section></mj-body></mjml>"""


@dataclass(frozen=True)
class DemoCampaign:
    name: str
    template: str
    segment: str
    rule: str
    subject: str
    mjml: str


CAMPAIGNS = (
    DemoCampaign("We miss you", "we-miss-you", "we_miss_you", RULE,
                 "{{ contact.first_name | default('Hello') }}, we miss you", MJML),
    DemoCampaign("Picked for you", "picked-for-you", "best_customers",
                 'rfm.segment in ("champions", "loyal") and orders.count >= 10',
                 "New this week, picked for you", PICKED_MJML),
)


def send_time(now: datetime) -> datetime:
    """The latest weekday 14:00 UTC at least an hour before ``now``: the responses, recorded at the real time,
    come well after their messages, and all within the 5-day windows of attribution and lift (at most 3 days
    and 1 hour: Monday 14:59 goes back to Friday 14:00)."""
    at = (now - timedelta(hours=1)).astimezone(UTC)
    at = at.replace(hour=SEND_HOUR, minute=0, second=0, microsecond=0) - timedelta(
        days=1 if at.hour < SEND_HOUR else 0)
    while at.weekday() >= 5:  # Saturday, Sunday
        at -= timedelta(days=1)
    return at


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


def run_campaign(database_url: str, directory: Path, seed: int = 1997, now: datetime | None = None) -> dict[str, Any]:
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
            send_at = send_time(now or datetime.now(UTC))
            result = _send(app, inbox, dns_record, send_at)
            result["response"] = respond(app, list(inbox.messages), send_at, seed)
            return result
        finally:
            app.close()
    finally:
        controller.stop()


def _send(app: Clarion, inbox: Inbox, dns_record: bytes, send_at: datetime) -> dict[str, Any]:
    clock = lambda: send_at  # noqa: E731 - the demo's fixed "now"
    campaigns = CampaignService(app.settings, clock=clock)
    with app.store.write() as conn:
        set_defaults(conn, {"holdout_percent": HOLDOUT_PERCENT})
        for campaign in CAMPAIGNS:
            SegmentService(app.settings, clock=clock).create(conn, campaign.segment, campaign.rule)
            TemplateService(app.settings.default_timezone).save(conn, campaign.template, {"default": {"email": {
                "subject": campaign.subject, "mjml": campaign.mjml}}})
            campaigns.create(conn, {"name": campaign.name, "template": campaign.template,
                                    "segment": campaign.segment})
            campaigns.send(conn, campaign.name)
    asyncio.run(Worker(app, clock=clock).run(until_idle=True))
    with app.store.read() as conn:
        progress = {campaign.name: campaigns.progress(conn, campaign.name) for campaign in CAMPAIGNS}
        first = progress[CAMPAIGNS[0].name]["id"]
        deferred = conn.execute(select(contacts.c.timezone, func.count(), func.min(deliveries.c.due_at))
                                .select_from(deliveries.join(contacts, contacts.c.id == deliveries.c.contact_id))
                                .where(deliveries.c.campaign_id == first, deliveries.c.status == "deferred")
                                .group_by(contacts.c.timezone).order_by(func.count().desc())).all()
    sample = inbox.messages[0] if inbox.messages else b""
    verified = bool(sample) and dkim.verify(sample, dnsfunc=lambda name, timeout=5: dns_record)
    return {"send_at": send_at, "progress": progress[CAMPAIGNS[0].name], "campaigns": progress,
            "received": len(inbox.messages), "dkim_verified": verified,
            "deferred_by_zone": [(zone, count, due) for zone, count, due in deferred],
            "sample_headers": _headers(sample)}


def show_campaign(result: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    progress, other = result["progress"], result["campaigns"][CAMPAIGNS[1].name]
    console.print(f"[bold]Campaign \"We miss you\"[/bold] to {RULE}, at {result['send_at']:%a %Y-%m-%d %H:%M} UTC: "
                  f"{progress['total']:,} recipients (and \"{other['campaign']}\" to {CAMPAIGNS[1].rule}: "
                  f"{other['total']:,}); the demo's SMTP server received {result['received']:,} messages "
                  f"(DKIM {'verified' if result['dkim_verified'] else 'NOT verified'}); "
                  f"{HOLDOUT_PERCENT}% of the contacts are the global holdout", highlight=False)
    table = Table(title="Outcome per state and reason", title_justify="left")
    for column in ("state", "reason", "deliveries"):  # of "We miss you"
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


def show_response(response: dict[str, Any], console: Any) -> None:
    """The campaign reports side by side, then the templates ranked by what their click rate surely is."""
    from rich.table import Table

    statuses = ", ".join(f"{count:,} × {status}" for status, count in sorted(response["statuses"].items()))
    orders = response["orders"]
    console.print(f"[bold]Responses[/bold]: {response['requests']:,} HTTP requests to the served API in "
                  f"{response['seconds']:.1f} s ({statuses}); {orders['after_click']} orders after a click, "
                  f"{orders['anyway']} placed anyway (the holdout's too)", highlight=False)
    if response["redirect"]:
        path, location = response["redirect"]
        console.print(f"  a click: {path[:40]}... → 302 {location}", highlight=False, markup=False)
    reports = response["reports"]
    table = Table(title="Campaign report: messages (all rows); people and machines apart", title_justify="left")
    table.add_column("")
    for report in reports:
        table.add_column(f"{report['campaign']['name']}\n({report['campaign']['template']})", justify="right")
    for label, cell in _REPORT_ROWS:
        table.add_row(label, *(cell(report, response["machine_reasons"][report["campaign"]["name"]])
                               for report in reports))
    console.print(table)
    console.print(f"The attribution pass credited {response['attribution']['credited']} orders, each to its last "
                  "touch (a click, an open, or the delivery itself); the lift against the holdout is what the "
                  "campaign added:", highlight=False)
    for report in reports:
        console.print(f"  {report['campaign']['name']}: {_verdict(report['lift'])}", highlight=False)
    ranking = Table(title="Which messages work: templates by the Wilson 95% lower bound of their click rate",
                    title_justify="left")
    for column in ("#", "template", "n (sent)", "clicked", "click rate", "95% interval", "ranked"):
        ranking.add_column(column, justify="left" if column in ("template", "ranked") else "right")
    for place, row in enumerate(response["ranking"], 1):
        ranking.add_row(str(place), row["template"], f"{row['n']:,}", f"{row['successes']:,}", _pct(row["rate"]),
                        f"{_pct(row['lower'])} – {_pct(row['upper'])}", "yes" if row["ranked"] else "too few")
    console.print(ranking)


def _pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def _counts(counts: dict[str, int]) -> str:
    return f"{counts['unique']:,} ({counts['total']:,})"


def _rules(reasons: dict[str, int], action: str) -> str:
    return "\n".join(f"{key.split(' ', 1)[1]} {count}" for key, count in reasons.items()
                     if key.startswith(action + " ")) or "—"


def _lift(lift: dict[str, Any]) -> str:
    if lift.get("absolute") is None:
        return "—"  # the reason follows the table
    low, high = lift["ci95"]
    return f"{lift['absolute'] * 100:+.2f} [{low * 100:+.2f}, {high * 100:+.2f}]"


def _verdict(lift: dict[str, Any]) -> str:
    if lift.get("ci95") is None:
        return lift.get("reason") or "no lift measured"
    low, high = lift["ci95"]
    if low > 0 or high < 0:
        return f"{'more' if low > 0 else 'fewer'} buyers than the holdout, beyond chance (95%)"
    return (f"the 95% interval includes 0: a holdout of {lift['holdout']['contacts']:,} cannot tell a lift this "
            "small from chance")


def _group(lift: dict[str, Any], name: str) -> str:
    group = lift.get(name)
    return f"{group['converters']:,}/{group['contacts']:,} = {_pct(group['rate'], 2)}" if group else "—"


def _money(value: float | None) -> str:
    return "—" if value is None else f"{'-' if value < 0 else ''}${abs(value):,.2f}"


_REPORT_ROWS = (
    ("sent", lambda r, m: f"{r['sent']:,}"),
    ("delivered", lambda r, m: "— (no receipts)" if r["delivered"] is None else f"{r['delivered']:,}"),
    ("human opens", lambda r, m: _counts(r["human"]["opens"])),
    ("human clicks", lambda r, m: _counts(r["human"]["clicks"])),
    ("machine opens", lambda r, m: _counts(r["machine"]["opens"])),
    ("  by rule", lambda r, m: _rules(m, "opened")),
    ("machine clicks", lambda r, m: _counts(r["machine"]["clicks"])),
    ("  by rule", lambda r, m: _rules(m, "clicked")),
    ("CTR / CTOR", lambda r, m: f"{_pct(r['ctr'], 2)} / {_pct(r['ctor'])}"),
    ("conversions (rate)", lambda r, m: f"{r['conversions']:,} ({_pct(r['conversion_rate'], 2)})"),
    ("revenue", lambda r, m: _money(r["revenue"])),
    ("  per message", lambda r, m: _money(r["revenue_per_message"])),
    ("bought: recipients", lambda r, m: _group(r["lift"], "treated")),
    ("bought: holdout", lambda r, m: _group(r["lift"], "holdout")),
    ("lift, points [95% CI]", lambda r, m: _lift(r["lift"])),
    ("  relative", lambda r, m: "—" if r["lift"].get("relative") is None else f"{r['lift']['relative']:+.0%}"),
    ("incremental revenue", lambda r, m: _money(r["lift"].get("incremental_revenue"))),
)


def _headers(raw: bytes) -> dict[str, str]:
    if not raw:
        return {}
    parsed = message_from_bytes(raw)
    names = ("From", "To", "Subject", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id")
    return {name: str(parsed[name]) for name in names if parsed[name]}

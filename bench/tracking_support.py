"""Helpers of ``bench/tracking.py``: the N-link email, a small sent campaign, ``clarion serve`` and the click client.

Nothing here is timed by itself; ``tracking.py`` decides what the clock covers.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import bindparam, text

from clarion.bootstrap import Clarion

SECRET = "bench-link-secret"
SENDER = {"from_address": "news@shop.example", "from_name": "Boutique Élodie"}
# Browsers people click from: none of them is a bot, proxy or scanner to tracking.classify.
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
    "Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile "
    "Safari/537.36",
)
# The campaign is sent this long before the clicks, so no click is "too soon" after its delivery (classify).
SENT_BEFORE = timedelta(hours=1)

# One product card: ~1 KB of HTML with one tracked link, as marketing email lays them out.
_CARD = """
      <tr><td class="card" style="padding:16px 24px;border-bottom:1px solid #edf0f4">
        <table role="presentation" width="100%" cellspacing="0" cellpadding="0"><tr>
          <td width="96" valign="top"><img src="https://cdn.shop.example/img/p{n}.jpg" width="96" height="96"
               alt="Product {n}" style="display:block;border:0;border-radius:6px"></td>
          <td valign="top" style="padding-left:16px">
            <h3 style="margin:0 0 6px;font-size:17px;color:#1d2533">Seasonal pick number {n}</h3>
            <p style="margin:0 0 10px;font-size:14px;line-height:21px;color:#4a5568">Hand-made from recycled
              materials by a small workshop in {{ contact.city | default("your city") }}: durable, light and
              easy to care for, the kind of thing people ask you about. Ships in two days, returns are free.</p>
            <a class="button" href="https://shop.example/p/{n}?ref=news&amp;sku=SKU-{n}" data-clarion-name="product-{n}"
               style="display:inline-block;padding:10px 18px;background:#2b6cb0;color:#fff;border-radius:4px;
               text-decoration:none;font-weight:bold">Shop pick {n}</a>
          </td></tr></table>
      </td></tr>"""

_HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ campaign.name }}</title>
<style>
  body { margin:0; padding:0; background:#f4f5f7; font-family: Helvetica, Arial, sans-serif; }
  .main { width:600px; max-width:600px; background:#ffffff; }
  .footer p { font-size:11px; color:#8a94a6; line-height:16px; }
  @media only screen and (max-width: 620px) { .main { width:100% !important; } }
</style></head>
<body>
<table role="presentation" width="100%" cellspacing="0" cellpadding="0"><tr><td align="center">
  <table class="main" role="presentation" cellspacing="0" cellpadding="0">
    <tr><td style="padding:24px">
      <a href="https://shop.example/"><img src="https://cdn.shop.example/logo.png" width="140"
        alt="Boutique Élodie"></a>
    </td></tr>
    <tr><td style="padding:0 24px 16px">
      <h1 style="margin:0 0 12px;font-size:24px;color:#1d2533">Hello {{ contact.first_name | default("there") }}!</h1>
      <p style="margin:0;font-size:15px;line-height:23px;color:#4a5568">Here are a few things we picked for you
        this week. <a href="mailto:help@shop.example">Questions?</a> Write to us, or call
        <a href="tel:+33400000000">+33 4 00 00 00 00</a>.</p>
    </td></tr>"""

_FOOT = """
    <tr><td class="footer" style="padding:24px">
      <p>You receive this email because you subscribed to news from Boutique Élodie with {{ contact.email }}.</p>
      <p><a href="{{ links.unsubscribe }}" style="color:#8a94a6">Unsubscribe</a> in one click, at any time.
        Boutique Élodie, 12 rue des Lilas, 69001 Lyon, France.</p>
    </td></tr>
  </table>
</td></tr></table>
</body></html>
"""


def email_html(links: int) -> str:
    """An HTML email with ``links`` tracked links (the logo and ``links - 1`` product cards), plus a mailto,
    a tel and the unsubscribe link, which are never rewritten. About 1 KB per link."""
    return _HEAD + "".join(_CARD.replace("{n}", str(n)) for n in range(1, links)) + _FOOT


def template(links: int) -> dict:
    return {"default_locale": "en", "default": {"email": {"subject": "{{ contact.first_name }}, this week's picks",
                                                          "html": email_html(links)}}}


def settings_values(url: str, workdir: Path, public_url: str = "https://news.shop.example") -> dict[str, str]:
    """CLARION_* settings (lower-case field names) of the set-up and of ``clarion serve``."""
    return {"database_url": url, "email_transport": "file", "email_file_dir": str(workdir / "outbox"),
            "public_url": public_url, "link_secret": SECRET, "email_from": SENDER["from_address"],
            "serve_worker": "false", "segment_scheduler_seconds": "0"}


# -- a small campaign, really sent ---------------------------------------------------------------------
def sent_campaign(app: Clarion, name: str, recipients: int, links: int, *, worker: bool = True) -> int:
    """A campaign of the ``links``-link email to ``recipients`` new contacts, started ``SENT_BEFORE`` ago and
    (``worker``) sent by a real Worker into the file channel, which stores each message's link rows."""
    from send_support import load_audience

    from clarion.runners.worker import Worker
    from clarion.services.campaigns import CampaignService
    from clarion.services.delivery_defaults import set_defaults
    from clarion.services.segments import SegmentService
    from clarion.services.templates import TemplateService

    then = datetime.now(UTC) - SENT_BEFORE
    clock = lambda: then  # noqa: E731 - the campaign's and the worker's "now"
    with app.store.write() as conn:
        if not conn.execute(text("SELECT count(*) FROM contacts")).scalar():
            load_audience(conn, recipients)
            set_defaults(conn, {"quiet_hours": {}})  # nothing deferred to the morning, whatever the hour
        TemplateService().save(conn, f"{name}-template", template(links))
        SegmentService(app.settings).create(conn, name, f"attributes.bucket < {min(100, recipients)}")
        campaigns = CampaignService(app.settings, clock=clock)
        campaigns.create(conn, {"name": name, "template": f"{name}-template", "segment": name,
                                "settings": {"sender": SENDER}})
        campaign_id = campaigns.send(conn, name)["id"]
    if worker:
        asyncio.run(Worker(app, worker_id=f"bench-{name}", clock=clock).run(until_idle=True))
    return campaign_id


@dataclass(frozen=True)
class Link:
    path: str  # /c/{token}
    url: str  # the stored target (ASCII here, so the Location header is the URL as stored)


def tracked(app: Clarion, campaign_id: int) -> list[Link]:
    """Every stored link row of the campaign but the hidden honeypot (it answers 200, not 302)."""
    from clarion.tracking.tokens import sign_click

    with app.store.read() as conn:
        rows = conn.execute(text(
            "SELECT l.delivery_id, l.position, l.url FROM tracked_links l JOIN deliveries d ON d.id = l.delivery_id "
            "WHERE d.campaign_id = :c AND l.url <> '' ORDER BY l.delivery_id, l.position"), {"c": campaign_id}).all()
    return [Link(f"/c/{sign_click(SECRET, row.delivery_id, row.position)}", row.url) for row in rows]


def engagement_counts(app: Clarion, campaign_ids: list[int]) -> dict[str, int]:
    """Engagement rows of the campaigns by action, human or machine, and the machine rules."""
    with app.store.read() as conn:
        rows = conn.execute(text(
            "SELECT action, machine, coalesce(reason, '') AS reason, count(*) AS n FROM engagements "
            "WHERE campaign_id IN :c GROUP BY action, machine, coalesce(reason, '')")
            .bindparams(bindparam("c", expanding=True)), {"c": campaign_ids}).all()
    counts: dict[str, int] = {}
    for row in rows:
        key = f"{row.action} {'machine:' + row.reason if row.machine else 'human'}"
        if row.action == "opened" and not row.machine:
            key = f"opened ({row.reason})"
        elif row.action not in ("opened", "clicked"):
            key = row.action
        counts[key] = counts.get(key, 0) + row.n
    return dict(sorted(counts.items()))


def clicked(app: Clarion, campaign_id: int) -> int:
    with app.store.read() as conn:
        return conn.execute(text("SELECT count(*) FROM engagements WHERE campaign_id = :c AND action = 'clicked'"),
                            {"c": campaign_id}).scalar()


# -- clarion serve -------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m clarion.cli.main serve --port P`` with CLARION_* settings, its worker and scheduler off."""

    def __init__(self, values: dict[str, str], workdir: Path, port: int | None = None) -> None:
        import psutil

        self.port = port or free_port()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLARION_")},
               **{f"CLARION_{k.upper()}": v for k, v in values.items()}}
        self.log = open(workdir / f"serve-{self.port}.log", "w+")  # noqa: SIM115 - closed in stop()
        self.proc = psutil.Popen([sys.executable, "-m", "clarion.cli.main", "serve", "--port", str(self.port)],
                                 env=env, cwd=workdir, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"clarion serve exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise SystemExit(f"clarion serve did not listen on port {self.port}")

    def cpu_seconds(self) -> float:
        times = self.proc.cpu_times()
        return times.user + times.system

    def threads(self) -> int:
        return self.proc.num_threads()

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# -- the click client ----------------------------------------------------------------------------------
@dataclass
class Run:
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, one per request
    wrong: list[str] = field(default_factory=list)  # the first few answers that were not the expected ones
    wrong_count: int = 0
    client_cpu: float = 0.0  # this process's CPU seconds during the run
    offered: float | None = None  # requests/s offered (open loop), None: closed loop
    server_cpu: float = 0.0  # the server's CPU seconds during the run (the caller measures it)
    db_cpu: float = 0.0  # PostgreSQL backends' CPU seconds during the run

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """The ``p``-th percentile latency in ms (nearest rank)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))] * 1000

    def note_wrong(self, what: str) -> None:
        self.wrong_count += 1
        if len(self.wrong) < 5:
            self.wrong.append(what)


def click(port: int, links: list[Link], requests: int, concurrency: int, rate: float | None = None,
          health: bool = False) -> Run:
    """``requests`` GETs of the links (request ``i``: link ``(i * 7919) % len(links)``, a stride that
    visits every link before repeating one and spreads consecutive requests over messages), from
    ``concurrency`` connections with browser user agents, never following the redirect.

    Closed loop (``rate`` None): each connection sends its next request when the previous one is answered.
    Open loop (``rate``): request ``i`` is due at ``i / rate`` s and its latency counts from then, so a server
    that falls behind is charged for the wait (no coordinated omission). ``health``: GET /health instead."""
    return asyncio.run(_click(port, links, requests, concurrency, rate, health))


async def _click(port: int, links: list[Link], requests: int, concurrency: int, rate: float | None,
                 health: bool) -> Run:
    import aiohttp

    run = Run(requests=requests, offered=rate)
    stride = 7919 if len(links) % 7919 else 7907  # primes: coprime with the number of links
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    queue = iter(range(requests))

    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def one(i: int, due: float) -> None:
            link = links[(i * stride) % len(links)]
            headers = {"User-Agent": USER_AGENTS[i % len(USER_AGENTS)], "Accept": "text/html,*/*;q=0.8",
                       "Accept-Language": "en-GB,en;q=0.9"}
            async with session.get("/health" if health else link.path, headers=headers,
                                   allow_redirects=False) as response:
                await response.read()
                run.latencies.append(time.perf_counter() - due)
                if health:
                    if response.status != 200:
                        run.note_wrong(f"/health: {response.status}")
                elif response.status != 302 or response.headers.get("Location") != link.url:
                    run.note_wrong(f"{link.path}: {response.status} {response.headers.get('Location')!r} "
                                   f"(expected 302 {link.url!r})")

        async def closed() -> None:
            for i in queue:
                await one(i, time.perf_counter())

        async def paced() -> None:
            for i in queue:
                due = started + i / rate
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                await one(i, due)

        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*((paced if rate else closed)() for _ in range(concurrency)))
        run.seconds, run.client_cpu = time.perf_counter() - started, time.process_time() - cpu
    return run

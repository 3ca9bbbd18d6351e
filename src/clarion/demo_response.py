"""The demo's recipients respond: opens, clicks and purchases over real HTTP, then the report and ranking.

After the campaigns are sent (:mod:`.demo_campaign`), the real API is served on a free 127.0.0.1 port
(uvicorn in a thread) and a seeded share of the recipients respond. The paths of the open pixel and the
links come from the HTML the demo's SMTP server received: the messages name the public host
(https://demo.clarion.example), and the same path is requested on the local server.

- People (browser and mail-client user agents) load the pixel; some click a link (a few twice, a few with
  images off, so the click is their open), and some of the clickers buy, after their click.
- Machines: Apple's Mail Privacy Protection (the bare ``Mozilla/5.0``) and Google's image proxy load
  pixels; security gateways (Barracuda, Proofpoint) load the pixel and follow every link, the hidden
  honeypot too, some with HEAD requests.
- Everyone, the holdout included, may buy anyway (:data:`BASELINE`), at a time between the send and now:
  the lift compares that baseline in the holdout with the recipients' rate.

Times: the campaigns' clock is ``send_at`` (a weekday 14:00 UTC at least an hour before now), while the
API records clicks and opens at the real time: every click comes an hour or more after its message
(never ``too_soon``), and every purchase falls within the 5-day windows of attribution and lift.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from typing import Any

import httpx
import uvicorn
from sqlalchemy import Connection, func, select

from .api.app import create_app
from .bootstrap import Clarion
from .services.attribution import AttributionService
from .services.clock import utcnow
from .services.reports import campaign_report, messages_ranking
from .store.schema import contact_aggregates, contacts
from .store.schema_delivery import campaigns, deliveries, templates
from .store.schema_scores import engagements


@dataclass(frozen=True)
class Shares:
    """How one message is answered, as shares (0-1). Illustrative, and small so that the demo makes a few
    hundred requests; published email benchmarks put human clicks at a few percent of recipients too."""

    opens: float  # recipients who open with images on (the pixel)
    clicks: float  # of those, who click a link
    buys: float  # of the clickers, who buy after the click


SHARES = {"we-miss-you": Shares(opens=0.08, clicks=0.25, buys=0.30),
          "picked-for-you": Shares(opens=0.12, clicks=0.40, buys=0.35)}
DEFAULT_SHARES = Shares(opens=0.08, clicks=0.25, buys=0.25)
IMAGES_OFF = 0.005  # recipients who click without loading images: the click is their open
TWICE = 0.15  # clickers who click the same link again (counted in the totals, once in the unique counts)
# Recipients behind each kind of machine. Far fewer than in life (Apple Mail, whose privacy protection loads
# every pixel, has about half of all opens in Litmus' client market share), to keep the requests few.
APPLE_PROXY, GOOGLE_PROXY, SCANNED = 0.02, 0.01, 0.008
BASELINE = 0.03  # anyone, holdout included, who buys within the window anyway
CONCURRENCY = 8  # recipients answering at once; SQLite takes one writer at a time anyway
SERVER_WAIT = 30.0  # seconds for uvicorn to start

PEOPLE = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
          "Safari/537.36",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/18.1 Mobile/15E148 Safari/604.1",
          "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 "
          "Safari/605.1.15",
          "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile "
          "Safari/537.36",
          "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
          "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Microsoft Outlook 16.0.18129; ms-office; MSOffice 16)")
APPLE = "Mozilla/5.0"  # what Apple's Mail Privacy Protection sends, and nothing else
GOOGLE = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
SCANNERS = ("Mozilla/5.0 (compatible; Barracuda Sentinel link protection)",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 "
            "Safari/537.36 Proofpoint URL Defense")

Visit = tuple[str, str, str]  # (method, path, user agent)
_PIXEL = re.compile(r'<img src="https?://[^/"]+(/o/[^"]+)"')
_ANCHOR = re.compile(r'<a href="https?://[^/"]+(/c/[^"]+)"([^>]*)>')


@dataclass
class Received:
    """One message as the recipient's mailbox has it."""

    email: str
    campaign: str
    template: str
    pixel: str | None
    links: list[str]  # visible links, in order
    hidden: list[str]  # the honeypot no person can see


@dataclass(frozen=True)
class Customer:
    external_id: str
    usual_order: float  # the customer's average CDNOW order (USD)


@dataclass(frozen=True)
class Order:
    customer: str  # external id
    revenue: float
    at: datetime | None  # None: when the API receives it (after the customer's click)


@dataclass
class Plan:
    visits: list[list[Visit]] = field(default_factory=list)  # per recipient, in order
    after_click: list[Order] = field(default_factory=list)  # clickers who buy
    anyway: list[Order] = field(default_factory=list)  # buyers who would have bought without the message
    expected: Counter = field(default_factory=Counter)  # messages opened and clicked, by people and machines


def parse(raw: bytes, template_of: dict[str, str]) -> Received | None:
    message = message_from_bytes(raw, policy=policy.default)
    body = message.get_body(preferencelist=("html",))
    if body is None:
        return None
    html = body.get_content()
    campaign = str(message["List-Id"] or "").split("<", 1)[0].strip()
    pixel = _PIXEL.search(html)
    links, hidden = [], []
    for path, attributes in _ANCHOR.findall(html):
        (hidden if "display:none" in attributes else links).append(path)
    return Received(message["To"].addresses[0].addr_spec.lower(), campaign, template_of.get(campaign, ""),
                    pixel.group(1) if pixel else None, list(dict.fromkeys(links)), hidden)


def plan(received: list[Received], people: dict[str, Customer], holdout: list[Customer],
         span: tuple[datetime, datetime], seed: int) -> Plan:
    """Who does what. Each recipient draws from a generator of its own (the seed, the campaign and the address),
    so what one does depends on nothing else: not on who else got mail that day, nor in what order."""
    result = Plan()
    for message in sorted(received, key=lambda m: (m.campaign, m.email)):
        customer = people.get(message.email)
        if customer is None:
            continue
        rng = random.Random(f"{seed}:{message.campaign}:{message.email}")
        shares = SHARES.get(message.template, DEFAULT_SHARES)
        machine, machines = machine_visits(message, rng)
        visits, clicked = person_visits(message, shares, rng, machine)
        result.visits += [machines + visits] if machines or visits else []
        result.expected.update({"human opens": bool(visits), "human clicks": clicked,
                                "machine opens": any("/o/" in path for _, path, _ in machines),
                                "machine clicks": any("/c/" in path for _, path, _ in machines)})
        if clicked and rng.random() < shares.buys:
            result.after_click.append(Order(customer.external_id, _amount(customer, rng), None))
        if rng.random() < BASELINE:
            result.anyway.append(Order(customer.external_id, _amount(customer, rng), _between(span, rng)))
    for customer in holdout:
        rng = random.Random(f"{seed}:holdout:{customer.external_id}")
        if rng.random() < BASELINE:
            result.anyway.append(Order(customer.external_id, _amount(customer, rng), _between(span, rng)))
    return result


def machine_visits(message: Received, rng: random.Random) -> tuple[str | None, list[Visit]]:
    """The machine between the message and its reader, if any ("proxy" or "scanner"), and its requests."""
    draw = rng.random()
    if message.pixel and draw < APPLE_PROXY:
        return "proxy", [("GET", message.pixel, APPLE)]
    if message.pixel and draw < APPLE_PROXY + GOOGLE_PROXY:
        return "proxy", [("GET", message.pixel, GOOGLE)]
    if draw >= APPLE_PROXY + GOOGLE_PROXY + SCANNED:
        return None, []
    # A security gateway fetches everything on arrival, the hidden link too, some with HEAD requests.
    agent, method = rng.choice(SCANNERS), rng.choice(("GET", "GET", "HEAD"))
    pixel = [("GET", message.pixel, agent)] if message.pixel else []
    return "scanner", pixel + [(method, path, agent) for path in message.links + message.hidden]


def person_visits(message: Received, shares: Shares, rng: random.Random,
                  machine: str | None) -> tuple[list[Visit], bool]:
    """A person's requests (the pixel, then maybe a click or two on one link) and whether they clicked.

    Behind a mail proxy the person's open is the proxy's (already fetched); only a click shows. Messages a
    gateway scanned are left to it: here the person's click would follow the scan within the same second,
    which no person does (and the ``link_burst`` rule would rightly call it a machine)."""
    agent, visits = rng.choice(PEOPLE), []
    opens = message.pixel is not None and rng.random() < shares.opens
    if opens and machine is None:
        visits.append(("GET", message.pixel, agent))
    clicks = rng.random() < (shares.clicks if opens else IMAGES_OFF)
    if not (clicks and message.links) or machine == "scanner":
        return visits, False
    link = rng.choice(message.links)
    return visits + [("GET", link, agent)] * (2 if rng.random() < TWICE else 1), True


def _amount(customer: Customer, rng: random.Random) -> float:
    """About the customer's usual CDNOW basket, at least one CD ($11.99)."""
    return round(max(11.99, customer.usual_order * rng.uniform(0.6, 1.5)), 2)


def _between(span: tuple[datetime, datetime], rng: random.Random) -> datetime:
    return span[0] + (span[1] - span[0]) * rng.random()


def respond(app: Clarion, messages: list[bytes], send_at: datetime, seed: int) -> dict[str, Any]:
    """Serve the API, play the plan against it, credit the conversions, and read the reports."""
    with app.store.write() as conn:
        _record, ingest_key = app.keys.create(conn, "demo shop", "ingest")
    with app.store.read() as conn:
        template_of = dict(conn.execute(select(campaigns.c.name, templates.c.name).join(
            templates, templates.c.id == campaigns.c.template_id).order_by(campaigns.c.id)).all())
        people, holdout = _customers(conn)
    received = [found for found in (parse(raw, template_of) for raw in messages) if found]
    # Purchases "anyway" happen between the send and a minute ago: before now, inside every window.
    todo = plan(received, people, holdout, (send_at, utcnow() - timedelta(minutes=1)), seed)
    started = time.perf_counter()
    with served(app) as base:
        statuses, redirect = asyncio.run(_play(base, ingest_key, todo))
    elapsed = time.perf_counter() - started
    with app.store.write() as conn:
        credited = AttributionService(app.settings).run(conn)
    with app.store.read() as conn:
        reports = [campaign_report(conn, name, default_timezone=app.settings.default_timezone)
                   for name in template_of]
        machine = {report["campaign"]["name"]: _machine_reasons(conn, report["campaign"]["id"]) for report in reports}
        ranking = messages_ranking(conn, metric="click", by="template")
    held = {customer.external_id for customer in holdout}
    buyers = {order.customer for order in todo.after_click + todo.anyway}
    expected = {**todo.expected, "buyers": len(buyers - held), "holdout buyers": len(buyers & held)}
    return {"requests": sum(statuses.values()), "statuses": dict(statuses), "seconds": elapsed, "redirect": redirect,
            "orders": {"after_click": len(todo.after_click), "anyway": len(todo.anyway)}, "attribution": credited,
            "expected": expected, "reports": reports, "machine_reasons": machine, "ranking": ranking}


def _customers(conn: Connection) -> tuple[dict[str, Customer], list[Customer]]:
    """The recipients by address, and the contacts the holdout kept back."""
    d, c, a = deliveries.c, contacts.c, contact_aggregates.c
    query = (select(d.status, c.email, c.external_id, a.avg_order_value).join(contacts, c.id == d.contact_id)
             .outerjoin(contact_aggregates, a.contact_id == c.id)
             .where((d.status == "sent") | ((d.status == "skipped") & (d.reason == "holdout"))).order_by(d.id))
    rows = conn.execute(query).all()
    people = {(email or "").lower(): Customer(external_id, usual or 0.0)
              for status, email, external_id, usual in rows if status == "sent"}
    return people, [Customer(external_id, usual or 0.0) for status, _, external_id, usual in rows if status != "sent"]


def _machine_reasons(conn: Connection, campaign_id: int) -> dict[str, int]:
    """Machine opens and clicks per rule ("clicked honeypot_link": 3), which the report counts together."""
    e = engagements.c
    rows = conn.execute(select(e.action, e.reason, func.count())
                        .where(e.campaign_id == campaign_id, e.machine.is_(True)).group_by(e.action, e.reason)
                        .order_by(e.action, e.reason))
    return {f"{action} {reason}": count for action, reason, count in rows}


class served:  # noqa: N801 - used like a function: ``with served(app) as base_url``
    """The real API on a free 127.0.0.1 port, in a thread, for the length of the block."""

    def __init__(self, app: Clarion) -> None:
        config = uvicorn.Config(create_app(app), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + SERVER_WAIT
        while not self.server.started:  # set once the socket listens
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the demo's API server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


async def _play(base: str, key: str, todo: Plan) -> tuple[Counter, tuple[str, str] | None]:
    """The visits (a few recipients at once, each one's requests in order), then the orders. Returns the
    answers' statuses and a person's click with where it led (path, Location)."""
    statuses: Counter = Counter()
    redirects: list[tuple[str, str]] = []
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, timeout=30, follow_redirects=False) as http:
        async def visit(steps: list[Visit]) -> None:
            async with gate:
                for method, path, agent in steps:
                    answer = await http.request(method, path, headers={"User-Agent": agent})
                    statuses[answer.status_code] += 1
                    if answer.status_code == 302 and agent in PEOPLE:
                        redirects.append((path, answer.headers["location"]))

        await asyncio.gather(*(visit(steps) for steps in todo.visits))
        # Only now the clickers' orders: the API stamps them on arrival, after every click.
        for number, order in enumerate(todo.after_click):
            answer = await http.post("/v1/track", auth=(key, ""), json=_order(order, f"click-{number}"))
            statuses[answer.status_code] += 1
        # The shop's other orders come in batches, each with the time it was placed.
        orders = [{"type": "track", **_order(order, f"shop-{number}")} for number, order in enumerate(todo.anyway)]
        for start in range(0, len(orders), 100):
            answer = await http.post("/v1/batch", auth=(key, ""), json={"batch": orders[start:start + 100]})
            statuses[answer.status_code] += 1
    return statuses, min(redirects, default=None)


def _order(order: Order, number: str) -> dict[str, Any]:
    body = {"userId": order.customer, "event": "Order Completed", "messageId": f"demo-order-{number}",
            "properties": {"order_id": f"demo-{number}", "revenue": order.revenue}}
    return body | ({"timestamp": order.at.isoformat()} if order.at else {})

"""Response tracking benchmark: the click redirect under `clarion serve`, and the compose cost of link rewriting.

    .venv/bin/python bench/tracking.py                          # both stores, 3,000 clicks per run
    .venv/bin/python bench/tracking.py --quick                  # 1,000 clicks per run, fewer compose rounds
    .venv/bin/python bench/tracking.py --stores sqlite --profile --concurrency 64

(1) Redirects. Setup, not timed: a fresh database (SQLite file, or a scratch PostgreSQL database created and
dropped here) with ``--deliveries`` contacts, and a campaign of a ``--links``-link HTML email sent to them an
hour ago by a real Worker into the file channel, which stores the link rows (default 100 x 10 = 1,000
distinct links; each message also has its hidden honeypot link, not clicked here). The signed click tokens
are made with ``clarion.tracking.tokens.sign_click``. Then ``python -m clarion.cli.main serve`` runs in its
own process (its delivery worker and segment scheduler off) and aiohttp clients in this process, with
browser user agents, never following the redirect, send:

  * warm-up: 200 clicks, not timed;
  * limit: ``--requests`` GET /health (no database) from the same client pool: what this client, uvicorn and
    FastAPI manage together on this machine; the redirect cannot be faster;
  * closed loop: ``--requests`` clicks from ``--concurrency`` connections, each sending its next request when
    the previous one is answered: the throughput at saturation. Its latency is mostly queueing (Little's
    law: concurrency / throughput), so it is not the latency target's figure;
  * open loop: ``--requests`` clicks due at the target's 2,000/s (latency counted from the time each was due,
    so a server that falls behind is charged for it), and, when the closed loop was slower than that, at 80 %
    of its throughput: the latency the redirect has when the server keeps up.

Each click is a write transaction (one ``clicked`` engagement row, and an ``opened`` one for a delivery's
first human click). With 1,000 links and several thousand clicks, each message collects tens of clicks (more
than a real one does), and most come within a second of a click on another link of the same message, which
tracking.classify calls a machine (``link_burst``): the split is printed.

Every answer must be a 302 to the URL stored for its link row, and the ``clicked`` rows must equal the
requests sent. Printed: redirects/s, p50/p95/p99 latency (ms), the server's CPU µs per request (steadier than
wall-clock rates on a shared machine), PostgreSQL backends' CPU, and this client's CPU. When a target is
missed on SQLite (or with ``--profile``, on each store): where a click's time goes, the route's body (a write
transaction around ``ResponseService.click``) in this process, one thread, in CPU µs per click with its SQL
statements timed, and cProfile's top functions.

(2) Compose. A 20-link HTML email (~20 KB) composed by ``EmailComposer`` (DKIM-signed, as the worker does)
for the campaign's deliveries: ``LinkTracker`` alone (html() + text() + finish_html()) in µs per link and
per message, the whole compose with tracking on and off (``TrackingOptions(links=False, opens=False)``),
and the compose's CPU split by phase (render, rewrite, MIME, DKIM), as ``bench/send.py --profile`` prints
it for the worker. Best of ``--rounds`` rounds.

Figures are printed, never asserted. Targets (issue 12): >= 2,000 redirects/s and p99 <= 20 ms on SQLite;
link rewriting <= 30 µs per link.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from ingest import pg_database  # noqa: E402
from send import DbCpu, Phases, StatementTimes  # noqa: E402
from tracking_support import (  # noqa: E402
    SECRET,
    USER_AGENTS,
    Link,
    Run,
    Server,
    click,
    clicked,
    engagement_counts,
    sent_campaign,
    settings_values,
    tracked,
)

from clarion.bootstrap import Clarion  # noqa: E402
from clarion.config import Settings  # noqa: E402

TARGET_RATE = 2_000.0  # redirects/s (issue 12)
TARGET_P99 = 20.0  # ms, on SQLite
TARGET_LINK_US = 30.0  # µs per link rewritten
WARM_UP = 200
COMPOSE_LINKS = 20


def _load() -> str:
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def machine() -> str:
    """The machine's speed now, to compare runs on machines that differ or are loaded differently (lower is
    faster): CPU µs for a tight loop (summing 1,000 ints) and for call-heavy code like the route's (building one
    SQLAlchemy ``select ... where a = :x and b = :y``), best of 5 rounds each."""
    from sqlalchemy import Column, Integer, MetaData, Table, select

    table = Table("t", MetaData(), Column("a", Integer), Column("b", Integer), Column("c", Integer))
    numbers = list(range(1_000))

    def best(action, count: int) -> float:
        times = []
        for _ in range(5):
            cpu = time.process_time()
            for _ in range(count):
                action()
            times.append((time.process_time() - cpu) / count * 1e6)
        return min(times)

    loop = best(lambda: sum(numbers), 2_000)
    build = best(lambda: select(table.c.c).where(table.c.a == 1, table.c.b == 2), 500)
    return (f"{os.cpu_count()} CPUs, {_load()}; yardsticks: sum of 1,000 ints {loop:.1f} µs, one select() built "
            f"{build:.0f} µs")


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


# -- (1) redirects ---------------------------------------------------------------------------------------
RUNS = ("warm-up", "closed", "paced", "paced 80%", "profile")  # each clicks the links of a campaign of its own
LABELS = {"limit": "limit: GET /health (no database)", "closed": "clicks, closed loop",
          "paced": f"clicks, open loop at {TARGET_RATE:,.0f}/s", "paced 80%": "clicks, open loop at 80 % of closed"}


def bench_redirects(store: str, url: str, workdir: Path, args) -> dict:
    values = settings_values(url, workdir)
    app = Clarion.from_settings(Settings(**values))
    app.migrate()
    started = time.perf_counter()
    campaigns = {}
    for label in RUNS:  # each run its own 1,000 links, so no run inherits another's clicks (see classify)
        campaign_id = sent_campaign(app, f"bench-{label.replace(' ', '-').replace('%', '')}", args.deliveries,
                                    args.links)
        campaigns[label] = (campaign_id, tracked(app, campaign_id))
        if len(campaigns[label][1]) != args.deliveries * args.links:
            raise SystemExit(f"expected {args.deliveries * args.links:,} link rows, found {len(campaigns[label][1]):,}")
    print(f"\n{store}: {len(RUNS)} campaigns (one per run) of {args.deliveries:,} messages with {args.links} tracked "
          f"links each, sent by a worker: {args.deliveries * args.links:,} distinct link rows per run; set up in "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    server = Server(values, workdir)
    try:
        runs, threads = serve_clicks(server, store, url, campaigns, args)
    finally:
        server.stop()
    result = check_clicks(app, campaigns, runs, threads, store)
    if args.profile or (store == "sqlite" and not result["met"] and not args.no_profile):
        profile_route(app, campaigns["profile"][1], args.profile_clicks, runs)
    app.close()
    return result


def serve_clicks(server: Server, store: str, url: str, campaigns: dict, args) -> tuple[dict[str, Run], int]:
    """The runs against one ``clarion serve``: ({label: run}, the server's threads at the end)."""
    db_cpu = DbCpu(make_url(url).database if store == "postgresql" else None)
    runs = {"warm-up": click(server.port, campaigns["warm-up"][1], WARM_UP, args.concurrency)}

    def measured(label: str, **options) -> Run:
        db_cpu.sample()
        cpu, db = server.cpu_seconds(), db_cpu.seconds()
        links = campaigns["closed" if label == "limit" else label][1]
        run = click(server.port, links, args.requests, args.concurrency, **options)
        db_cpu.sample()
        run.server_cpu, run.db_cpu = server.cpu_seconds() - cpu, db_cpu.seconds() - db
        _print_run(label, run, store == "postgresql")
        runs[label] = run
        return run

    print(f"  {args.concurrency} client connections, {args.requests:,} requests per run; {_load()}", flush=True)
    print(f"  {'':<36}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'server CPU':>13}"
          f"{'db CPU':>10}{'client CPU':>13}", flush=True)
    measured("limit", health=True)
    closed = measured("closed")
    measured("paced", rate=TARGET_RATE)
    if closed.rate < TARGET_RATE:
        measured("paced 80%", rate=0.8 * closed.rate)
    return runs, server.threads()


def _print_run(label: str, run: Run, postgresql: bool) -> None:
    per = 1e6 / max(run.requests, 1)
    db = f"{run.db_cpu * per:>7,.0f} µs" if postgresql else f"{'-':>10}"
    name = LABELS[label].replace("80 % of closed", f"{run.offered:,.0f}/s (80 %)") if run.offered else LABELS[label]
    print(f"  {name:<36}{run.rate:>8,.0f}{run.percentile(50):>9.1f}{run.percentile(95):>9.1f}"
          f"{run.percentile(99):>9.1f}{run.server_cpu * per:>10,.0f} µs{db}{run.client_cpu * per:>10,.0f} µs"
          + (f"  {run.wrong_count} WRONG" if run.wrong_count else ""), flush=True)


def check_clicks(app: Clarion, campaigns: dict, runs: dict[str, Run], threads: int, store: str) -> dict:
    """Every answer a 302 to the stored URL, one ``clicked`` row per request; the figures beside the targets."""
    clicks = {label: run for label, run in runs.items() if label != "limit"}
    wrong = sum(run.wrong_count for run in clicks.values())
    sent = sum(run.requests for run in clicks.values())
    rows = sum(clicked(app, campaigns[label][0]) for label in clicks)
    mismatched = [label for label, run in clicks.items() if clicked(app, campaigns[label][0]) != run.requests]
    print(f"  answers: {sent:,} clicks sent, {wrong:,} not a 302 to the stored URL"
          + (f": {[w for run in clicks.values() for w in run.wrong][:3]}" if wrong else "")
          + f"; 'clicked' engagement rows {rows:,} " + (f"<-- MISMATCH in {mismatched}" if mismatched else
                                                        "= requests, run by run") + f"; server threads {threads}",
          flush=True)
    print(f"  engagements: {engagement_counts(app, [campaigns[label][0] for label in clicks])}", flush=True)
    closed, paced = runs["closed"], runs["paced"]
    rate_ok, p99_ok = closed.rate >= TARGET_RATE, paced.percentile(99) <= TARGET_P99
    print(f"  targets (SQLite): >= {TARGET_RATE:,.0f} redirects/s: {closed.rate:,.0f} {_verdict(rate_ok)}; p99 <= "
          f"{TARGET_P99:.0f} ms at {TARGET_RATE:,.0f}/s offered: {paced.percentile(99):,.1f} ms {_verdict(p99_ok)}",
          flush=True)
    return {"store": store, "rate": closed.rate, "limit": runs["limit"].rate, "paced_rate": paced.rate,
            "p50": paced.percentile(50), "p95": paced.percentile(95), "p99": paced.percentile(99),
            "p99_80": runs["paced 80%"].percentile(99) if "paced 80%" in runs else float("nan"),
            "ok": wrong == 0 and not mismatched, "met": rate_ok and p99_ok}


def profile_route(app: Clarion, links: list[Link], clicks: int, runs: dict[str, Run]) -> None:
    """Where a click's time goes: the server's CPU per /health and per click (from the runs), then the route's body
    (a write transaction around ResponseService.click) in this process, one thread, with its SQL statements
    timed, and under cProfile (CPU time)."""
    from clarion.services.response import ResponseService
    from clarion.tracking.classify import Request

    service = ResponseService(app.settings)
    tokens = [link.path.removeprefix("/c/") for link in links]
    requests = [Request("GET", agent, "127.0.0.1") for agent in USER_AGENTS]

    def clicks_from(first: int, count: int) -> None:
        for i in range(first, first + count):
            with app.store.write() as conn:
                service.click(conn, tokens[(i * 7919) % len(tokens)], requests[i % len(requests)])

    def empty(count: int) -> None:
        for _ in range(count):
            with app.store.write():
                pass

    clicks_from(0, 100)  # warm: statement caches, crawlerdetect
    per = {label: run.server_cpu / run.requests * 1e6 for label, run in runs.items()}
    print(f"\n  profile: server CPU per request {per['limit']:,.0f} µs for GET /health (uvicorn, FastAPI, the "
          f"gate, the access log, a thread hop), {per['closed']:,.0f} µs per click: "
          f"{per['closed'] - per['limit']:,.0f} µs more for the route's body and its thread contention", flush=True)
    transaction = _cpu_per_call(empty, clicks)
    statements = StatementTimes(app.store.engine)
    try:
        body, wall = _cpu_per_call(lambda n: clicks_from(100, n), clicks, wall=True)
    finally:
        statements.remove()
    executing = sum(spent for _, (_, spent) in statements.top(100)) / clicks * 1e6
    print(f"  the route's body in this process, one thread, {clicks:,} clicks: {body:,.0f} µs CPU "
          f"({wall:,.0f} µs wall) per click, of which an empty write transaction (lock, BEGIN IMMEDIATE, COMMIT) "
          f"{transaction:,.0f} µs CPU and the statements' cursor.execute {executing:,.0f} µs wall; the rest is "
          f"Python: building and compiling the statements, reading rows, classifying", flush=True)
    for sql, (calls, spent) in statements.top(8):
        print(f"    {spent / clicks * 1e6:>6,.0f} µs/click {calls:>6,} calls {spent / calls * 1e6:>6,.0f} µs each  "
              f"{sql}", flush=True)
    cprofiled(lambda: clicks_from(100 + clicks, clicks), f"{clicks:,} clicks")


def cprofiled(action, what: str) -> None:
    """cProfile (CPU time of this thread) of ``action``: the top 20 functions by own and by cumulative time."""
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    action()
    profiler.disable()
    for order in ("tottime", "cumulative"):
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).strip_dirs().sort_stats(order).print_stats(20)
        out = stream.getvalue()
        print(f"\n  cProfile, {what}, top 20 by {order} (CPU s)\n{out[out.find('   ncalls'):].rstrip()}", flush=True)


def _cpu_per_call(action, count: int, wall: bool = False):
    """CPU µs (this thread) per call of ``action(count)``, and wall µs when asked."""
    started, cpu = time.perf_counter(), time.thread_time()
    action(count)
    cpu, seconds = (time.thread_time() - cpu) / count * 1e6, (time.perf_counter() - started) / count * 1e6
    return (cpu, seconds) if wall else cpu


# -- (2) compose -----------------------------------------------------------------------------------------
@dataclasses.dataclass
class ComposeWorld:
    """The campaign's deliveries ready to compose, with the DKIM-signing composer the worker would use."""

    settings: Settings
    campaign: object  # runners.loaded_campaign.LoadedCampaign
    items: list  # runners.dispatch.Leased
    composer: object  # messages.email_compose.EmailComposer
    now: datetime


def bench_compose(args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="clarion-bench-compose-"))
    try:
        world = compose_world(workdir)
        html, plain, links = rendered(world)
        print(f"\ncompose: a {COMPOSE_LINKS}-link HTML email, {len(html.encode()) / 1024:.1f} KB of HTML and "
              f"{len(plain.encode()) / 1024:.1f} KB of text after rendering; {links} links tracked (+ the honeypot, "
              f"the pixel); mailto:, tel: and the unsubscribe link left as they are; UTM "
              f"{world.campaign.tracking.utm}; best of {args.rounds} rounds; {_load()}", flush=True)
        per_message = rewrite_cost(world, html, plain, links, args)
        added = tracking_on_off(world, links, args)
        compose_phases(world, args.compose_messages)
        return {"links": links, "rewrite": per_message, "added": added}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def compose_world(workdir: Path) -> ComposeWorld:
    """A store with the 20-link campaign's deliveries queued (not sent), loaded as the worker loads them."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from sqlalchemy import select

    from clarion.delivery.facts import load_contacts
    from clarion.messages.email_compose import EmailComposer
    from clarion.runners.channels import email_signer
    from clarion.runners.dispatch import Leased
    from clarion.runners.loaded_campaign import load_campaign
    from clarion.services.delivery_defaults import get_defaults
    from clarion.store.schema_delivery import deliveries

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (workdir / "dkim.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    settings = Settings(**settings_values(f"sqlite:///{workdir / 'compose.db'}", workdir),
                        dkim_domain="shop.example", dkim_selector="bench", dkim_key_file=str(workdir / "dkim.pem"))
    app = Clarion.from_settings(settings)
    app.migrate()
    campaign_id = sent_campaign(app, "bench-compose", 100, COMPOSE_LINKS, worker=False)
    with app.store.read() as conn:
        campaign = load_campaign(conn, campaign_id, get_defaults(conn), settings)
        rows = conn.execute(select(deliveries).where(deliveries.c.campaign_id == campaign_id)
                            .order_by(deliveries.c.id)).all()
        profiles = load_contacts(conn, [row.contact_id for row in rows])
    app.close()
    items = [Leased(row, profiles[row.contact_id], profiles[row.contact_id]["email"]) for row in rows]
    return ComposeWorld(settings, campaign, items, EmailComposer(settings, email_signer(settings)), datetime.now(UTC))


def rendered(world: ComposeWorld) -> tuple[str, str, int]:
    """(HTML, text part, tracked links) of the first delivery's message, as compose renders it."""
    from clarion.content.context import RenderContext
    from clarion.content.render import render
    from clarion.messages.link_tracking import LinkTracker

    first = world.items[0]
    context = RenderContext(contact=first.profile, campaign=world.campaign.render_view, now=world.now,
                            links={"unsubscribe": f"{world.settings.public_url}/u/x"})
    email = render(world.campaign.template, context, world.composer.render_settings, channels=("email",)).email
    probe = LinkTracker(SECRET, world.settings.public_url, first.row.id, world.campaign.tracking)
    probe.finish_html(probe.html(email.html))
    probe.text(email.text)
    return email.html, email.text, len([link for link in probe.links if link.url])


def rewrite_cost(world: ComposeWorld, html: str, plain: str, links: int, args) -> float:
    from clarion.messages.link_tracking import LinkTracker

    def rewrite() -> None:
        for item in world.items:
            tracker = LinkTracker(SECRET, world.settings.public_url, item.row.id, world.campaign.tracking)
            tracker.finish_html(tracker.html(html))
            tracker.text(plain)

    per_message = _best(rewrite, args.rounds, args.compose_messages, len(world.items))
    print(f"  LinkTracker html() + text() + finish_html(): {per_message:,.0f} µs per message, "
          f"{per_message / links:,.1f} µs per link (limit {TARGET_LINK_US:.0f} µs per link: "
          f"{_verdict(per_message / links <= TARGET_LINK_US)})", flush=True)
    return per_message


def tracking_on_off(world: ComposeWorld, links: int, args) -> float:
    """The whole compose with the campaign's tracking and with none, interleaved round by round."""
    from clarion.messages.link_tracking import TrackingOptions

    variants = {"on": world.campaign,
                "off": dataclasses.replace(world.campaign, tracking=TrackingOptions(links=False, opens=False))}
    sizes = {label: len(world.composer.compose(campaign, world.items[0], world.now).data)
             for label, campaign in variants.items()}
    timings: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(args.rounds):  # interleaved, so the machine's load changes hit both alike
        for label, campaign in variants.items():
            timings[label].append(_per_message(
                lambda c=campaign: [world.composer.compose(c, item, world.now) for item in world.items],
                args.compose_messages, len(world.items)))
    on, off = min(timings["on"]), min(timings["off"])
    print(f"  EmailComposer.compose (render, rewrite, MIME, DKIM): tracking on {on:,.0f} µs/msg "
          f"({sizes['on'] / 1024:.1f} KB), off {off:,.0f} µs/msg ({sizes['off'] / 1024:.1f} KB): "
          f"+{on - off:,.0f} µs/msg (+{(on - off) / off:.0%}), {(on - off) / links:,.1f} µs per link; medians "
          f"{statistics.median(timings['on']):,.0f} / {statistics.median(timings['off']):,.0f} µs", flush=True)
    return on - off


def _per_message(action, messages: int, batch: int) -> float:
    """CPU µs per message of ``action`` (which handles ``batch`` messages), run until ``messages`` are done."""
    rounds = max(1, messages // batch)
    cpu = time.process_time()
    for _ in range(rounds):
        action()
    return (time.process_time() - cpu) / (rounds * batch) * 1e6


def _best(action, rounds: int, messages: int, batch: int) -> float:
    return min(_per_message(action, messages, batch) for _ in range(rounds))


def compose_phases(world: ComposeWorld, messages: int) -> None:
    """CPU per message of each phase of compose with tracking on, as bench/send.py --profile splits the worker's."""
    from clarion.messages import email_compose
    from clarion.messages.link_tracking import LinkTracker

    composer, campaign, items, now = world.composer, world.campaign, world.items, world.now
    phases = Phases()
    saved = {"render": email_compose.render, "build_email": email_compose.build_email,
             "html": LinkTracker.html, "text": LinkTracker.text, "finish_html": LinkTracker.finish_html,
             "compose": composer.compose, "sign": composer.signer.sign}
    try:
        composer.compose = phases.wrap("compose", composer.compose)
        email_compose.render = phases.wrap("  render (Jinja, Babel; html + text)", email_compose.render)
        for name in ("html", "text", "finish_html"):
            setattr(LinkTracker, name, phases.wrap("  link rewriting (html, text, finish_html)", saved[name]))
        email_compose.build_email = phases.wrap("  build_email (MIME, QP)", email_compose.build_email)
        composer.signer.sign = phases.wrap("  DKIM sign (RSA-2048)", composer.signer.sign)
        count = max(len(items), messages)
        for i in range(count):
            composer.compose(campaign, items[i % len(items)], now)
    finally:
        email_compose.render, email_compose.build_email = saved["render"], saved["build_email"]
        for name in ("html", "text", "finish_html"):
            setattr(LinkTracker, name, saved[name])
        composer.compose, composer.signer.sign = saved["compose"], saved["sign"]
    total = phases.cpu["compose"]
    accounted = sum(spent for name, spent in phases.cpu.items() if name != "compose")
    print(f"  compose by phase, tracking on, {count:,} messages (one run; the wrappers add ~1 µs per call):",
          flush=True)
    for name, spent in [*phases.cpu.items(), ("  the rest (ids, unsubscribe token, context, spec)", total - accounted)]:
        print(f"    {name:<50} {spent / count * 1e6:>7,.0f} µs/msg  {spent / total:>4.0%}", flush=True)


# -- main --------------------------------------------------------------------------------------------------
def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--quick", action="store_true",
                        help="1,000 requests per run, 1,000 messages per compose round, 3 rounds")
    parser.add_argument("--requests", type=int, default=None, help="requests per run (default 3,000; quick 1,000)")
    parser.add_argument("--concurrency", type=int, default=32, help="client connections (default 32)")
    parser.add_argument("--deliveries", type=int, default=100, help="messages sent (default 100)")
    parser.add_argument("--links", type=int, default=10, help="tracked links per message (default 10)")
    parser.add_argument("--rounds", type=int, default=None, help="compose rounds, best taken (default 5; quick 3)")
    parser.add_argument("--compose-messages", type=int, default=None,
                        help="messages per compose round (default 2,000; quick 1,000)")
    parser.add_argument("--profile", action="store_true", help="profile the route's body on every store")
    parser.add_argument("--no-profile", action="store_true", help="not even when a SQLite target is missed")
    parser.add_argument("--profile-clicks", type=int, default=2_000)
    parser.add_argument("--skip-redirects", action="store_true")
    parser.add_argument("--skip-compose", action="store_true")
    args = parser.parse_args()
    args.requests = args.requests or (1_000 if args.quick else 3_000)
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.compose_messages = args.compose_messages or (1_000 if args.quick else 2_000)
    if args.quick:
        args.profile_clicks = min(args.profile_clicks, 1_000)
    return args


def main() -> None:
    args = arguments()
    results = []
    print(f"machine: {machine()}", flush=True)
    if not args.skip_redirects:
        for store in [s.strip() for s in args.stores.split(",") if s.strip()]:
            workdir = Path(tempfile.mkdtemp(prefix=f"clarion-bench-tracking-{store}-"))
            url, drop = f"sqlite:///{workdir / 'bench.db'}", None
            if store == "postgresql":
                url, drop = pg_database()
            try:
                results.append(bench_redirects(store, url, workdir, args))
            finally:
                if drop:
                    drop()
                shutil.rmtree(workdir, ignore_errors=True)
    compose = None if args.skip_compose else bench_compose(args)
    print(f"\nmachine: {machine()}", flush=True)
    if results:
        print(f"\n{'store':<11}{'redirects/s':>12}{'limit /s':>10}{'at 2,000/s: got':>17}{'p50 ms':>8}{'p95 ms':>8}"
              f"{'p99 ms':>8}{'p99 at 80 %':>13}   checks   (targets on SQLite: >= 2,000/s, p99 <= 20 ms)")
        for row in results:
            print(f"{row['store']:<11}{row['rate']:>12,.0f}{row['limit']:>10,.0f}{row['paced_rate']:>17,.0f}"
                  f"{row['p50']:>8.1f}{row['p95']:>8.1f}{row['p99']:>8.1f}{row['p99_80']:>13.1f}   "
                  f"{'ok' if row['ok'] else 'FAILED'}")
    if compose:
        links = compose["links"]
        print(f"link rewriting: {compose['rewrite'] / links:,.1f} µs per link (limit {TARGET_LINK_US:.0f}), "
              f"{compose['rewrite']:,.0f} µs per {links}-link message; whole compose +{compose['added']:,.0f} µs "
              f"per message with tracking on")


if __name__ == "__main__":
    main()

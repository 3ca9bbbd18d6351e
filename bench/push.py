"""Mobile push benchmark: a personalised push campaign through the real pipeline into a local FCM, vs a raw blast.

    .venv/bin/python bench/push.py                                   # 100,000 recipients, SQLite
    .venv/bin/python bench/push.py --recipients 20000 --stores sqlite,postgresql --workers 2
    .venv/bin/python bench/push.py --recipients 20000 --client httpx --profile

Setup, not timed: a fresh database with N contacts (bench/send_support.load_audience), each with one FCM
device (a 160-character token) and push consent; quiet hours off; a push template personalised with the
first name, a money and a date filter and a deep link; a segment of everyone and a ``push`` campaign, put in
the ledger by ``send``. The FCM peer (tests/fcm_peer.py: OAuth token endpoint checking the RS256
assertion, messages:send checking the Bearer token and the message) runs in a process of its own, so it
does not share a worker's CPU; a fresh service-account key points google-auth at it.

Timed ("clarion"): ``--workers`` processes (bench/push_support.py worker: ``Worker`` with
``ChannelBinding(PushComposer, PushFanout({"fcm": FcmProvider}))``, ``--concurrency`` requests in flight
each), from their start until the ledger has no open delivery: lease + policy chain, render, the FCM body,
HTTP, checkpoint. The limit ("raw"): the same JSON bodies (built by clarion for the first 1,000 deliveries,
cycled), the same Bearer token and the same concurrency, POSTed with aiohttp from one process to a fresh
peer. For reference, not the limit: the same messages through ``FcmProvider.send_to`` alone (no ledger),
with aiohttp and with httpx (``--provider-messages`` of them).

Prints msgs/s for both and their ratio (target >= 0.5), CPU µs per message (workers; the raw blast's
client), the peer's CPU, and the peak RSS of a worker; figures are printed, never asserted. ``--profile``:
afterwards one worker in this process under cProfile (CPU time) on a campaign to about 5,000 contacts.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from ingest import free_port, pg_database  # noqa: E402
from push_support import TEMPLATE, PeerProcess, provider_blast, push_bindings, raw_blast  # noqa: E402
from send import DbCpu, has_open  # noqa: E402
from send_support import load_audience  # noqa: E402

from clarion.bootstrap import Clarion  # noqa: E402
from clarion.config import Settings  # noqa: E402
from fcm_peer import write_service_account  # noqa: E402

CAMPAIGN = "bench-push"
SAMPLE = 1_000  # distinct pre-built bodies for the raw blast, cycled
POLL = 0.2  # seconds between progress samples
PROGRESS = (0.10, 0.25, 0.50, 0.75, 1.00)


def settings_for(url: str, key_file: Path, base_url: str, concurrency: int, batch: int) -> dict[str, str]:
    return {"database_url": url, "fcm_service_account_file": str(key_file), "fcm_base_url": base_url,
            "push_concurrency": str(concurrency), "worker_batch_size": str(batch), "email_transport": "console",
            "public_url": "https://news.shop.example", "link_secret": "bench-link-secret"}


def setup(url: str, recipients: int, base: dict[str, str]) -> tuple[Clarion, int, float, float]:
    """A loaded store and a started push campaign: (app, campaign id, load seconds, enqueue seconds)."""
    from push_support import add_devices

    from clarion.services.campaigns import CampaignService
    from clarion.services.delivery_defaults import set_defaults
    from clarion.services.segments import SegmentService
    from clarion.services.templates import TemplateService
    from clarion.store.maintenance import refresh_statistics

    settings = Settings(**base)
    app = Clarion.from_settings(settings)
    app.migrate()
    started = time.perf_counter()
    with app.store.write() as conn:
        load_audience(conn, recipients)
        add_devices(conn)
    refresh_statistics(app.store.engine, ["contacts", "identities", "consents", "consent_ledger", "devices"],
                       vacuum=True)
    loaded = time.perf_counter() - started
    campaigns = CampaignService(settings)
    with app.store.write() as conn:
        set_defaults(conn, {"quiet_hours": {}})  # nothing deferred to the morning, whatever the hour
        TemplateService().save(conn, "bench-push-template", TEMPLATE)
        SegmentService(settings).create(conn, "everyone", "email exists")
        campaign = campaigns.create(conn, {"name": CAMPAIGN, "template": "bench-push-template",
                                           "segment": "everyone", "channel": "push"})
    started = time.perf_counter()
    with app.store.write() as conn:
        campaigns.send(conn, CAMPAIGN)
    return app, campaign["id"], loaded, time.perf_counter() - started


def sample_messages(app: Clarion, settings: Settings, campaign_id: int, count: int) -> list:
    """Clarion's own OutboundPush for the first ``count`` deliveries (the raw blast's bodies are built from them)."""
    from clarion.channels.base import PushTarget
    from clarion.delivery.facts import load_contacts
    from clarion.messages.push_compose import PushComposer
    from clarion.runners.dispatch import Leased
    from clarion.runners.loaded_campaign import load_campaign
    from clarion.services.delivery_defaults import get_defaults
    from clarion.store.schema import devices
    from clarion.store.schema_delivery import deliveries

    with app.store.read() as conn:
        campaign = load_campaign(conn, campaign_id, get_defaults(conn), settings)
        rows = conn.execute(select(deliveries).where(deliveries.c.campaign_id == campaign_id)
                            .order_by(deliveries.c.id).limit(count)).all()
        profiles = load_contacts(conn, [row.contact_id for row in rows])
        tokens = dict(conn.execute(select(devices.c.contact_id, devices.c.token)
                                   .where(devices.c.contact_id.in_([row.contact_id for row in rows]))).all())
    composer, now = PushComposer(settings), datetime.now(UTC)
    return [composer.compose(campaign, Leased(row, profiles[row.contact_id], tokens[row.contact_id],
                                              (PushTarget("fcm", tokens[row.contact_id]),)), now) for row in rows]


def run_workers(app: Clarion, campaign_id: int, base: dict[str, str], workers: int, expected: int,
                peer: PeerProcess, workdir: Path, client: str) -> dict:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLARION_")},
           **{f"CLARION_{k.upper()}": v for k, v in base.items()}, "PYTHONUNBUFFERED": "1", "BENCH_FCM_CLIENT": client}
    database = make_url(base["database_url"]).database if base["database_url"].startswith("postgresql") else None
    db_cpu = DbCpu(database)
    db_cpu.sample()
    db_base, peer_base = db_cpu.seconds(), peer.cpu_seconds()
    rusage = resource.getrusage(resource.RUSAGE_CHILDREN)
    outputs = [open(workdir / f"worker-{i}.out", "w+") for i in range(workers)]  # noqa: SIM115
    started = time.perf_counter()
    procs = [psutil.Popen([sys.executable, str(HERE / "push_support.py"), "worker", "--id", f"bench-{i}"], env=env,
                          cwd=workdir, stdout=outputs[i], stderr=subprocess.STDOUT) for i in range(workers)]
    peak, marks, last, drained = [0] * workers, list(PROGRESS), [0.0, 0], None
    print("    progress   messages  elapsed s  msgs/s since previous   RSS MB per worker", flush=True)
    while True:
        elapsed = time.perf_counter() - started
        rss = []
        for i, proc in enumerate(procs):
            try:
                rss.append(proc.memory_info().rss)
            except psutil.Error:
                rss.append(0)
            peak[i] = max(peak[i], rss[-1])
        received = peer.stats().get("sent", 0)
        db_cpu.sample()
        while marks and received >= marks[0] * expected:
            _progress(marks.pop(0), received, elapsed, rss, last)
        alive = [proc.poll() is None for proc in procs]
        if drained is None and (received >= expected or not all(alive)) and not has_open(app, campaign_id):
            drained = elapsed
        if not any(alive):
            break
        time.sleep(POLL)
    exited = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    logs = []
    for i, out in enumerate(outputs):
        out.seek(0)
        logs.append(out.read())
        out.close()
        if procs[i].returncode != 0:
            print(f"    worker {i} exited with {procs[i].returncode}:\n{logs[i][-3000:]}", flush=True)
    return {"drained": drained or exited, "exited": exited, "peak": peak, "logs": logs,
            "worker_cpu": (after.ru_utime - rusage.ru_utime) + (after.ru_stime - rusage.ru_stime),
            "db_cpu": db_cpu.seconds() - db_base, "peer_cpu": peer.cpu_seconds() - peer_base}


def _progress(mark: float, received: int, elapsed: float, rss: list[int], last: list) -> None:
    per_worker = "  ".join(f"{value / 2**20:6.0f}" if value else "exited" for value in rss)
    rate = (received - last[1]) / max(elapsed - last[0], 1e-9)
    last[:] = [elapsed, received]
    print(f"    {mark:>7.0%}  {received:>9,}  {elapsed:9.1f}  {rate:>21,.0f}   {per_worker}", flush=True)


def _load() -> str:
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def blasts(args, app: Clarion, settings: Settings, campaign_id: int, key_file: Path, port: int, workdir: Path) -> dict:
    """The raw aiohttp blast (the limit) and the provider-only reference runs, each against a fresh peer on
    ``port`` (where the key file's token_uri points)."""
    from clarion.channels.fcm import FcmProvider, build_body

    messages = sample_messages(app, settings, campaign_id, min(SAMPLE, args.recipients))
    bodies = [build_body(m, m.targets[0].token) for m in messages]
    total = args.raw_messages or args.recipients
    peer = PeerProcess(key_file, port, workdir)
    try:
        provider = FcmProvider.from_settings(settings.model_copy(update={"fcm_base_url": peer.base_url}))
        bearer = asyncio.run(_bearer(provider))
        peer_cpu = peer.cpu_seconds()
        seconds, cpu = raw_blast(str(provider.url), bearer, bodies, total, args.concurrency)
        peer_cpu = peer.cpu_seconds() - peer_cpu
        got = peer.stats().get("sent", 0)
    finally:
        peer.stop()
    size = sum(map(len, bodies)) / len(bodies)
    print(f"  raw blast: {total:,} requests of {size:,.0f} bytes (clarion's bodies), aiohttp, {args.concurrency} "
          f"connections: {seconds:.1f} s, {total / seconds:,.0f} msgs/s (peer accepted {got:,}); CPU: client "
          f"{cpu / total * 1e6:,.0f} µs/msg, peer {peer_cpu / total * 1e6:,.0f} µs/msg; {_load()}", flush=True)
    result = {"rate": total / seconds, "cpu": cpu / total}
    for client in args.provider_clients.split(","):
        if not client:
            continue
        count = min(args.provider_messages, total)
        peer = PeerProcess(key_file, port, workdir)
        try:
            local = settings.model_copy(update={"fcm_base_url": peer.base_url})
            p_seconds, p_cpu = provider_blast(local, messages, count, args.concurrency, client)
        finally:
            peer.stop()
        print(f"  provider only (reference): {count:,} through FcmProvider.send_to ({client}), {args.concurrency} "
              f"at a time: {count / p_seconds:,.0f} msgs/s; CPU {p_cpu / count * 1e6:,.0f} µs/msg", flush=True)
    return result


async def _bearer(provider) -> str:
    bearer = await provider.authorization()
    await provider.aclose()
    if not isinstance(bearer, str):
        raise SystemExit(f"no access token from the peer: {bearer}")
    return bearer


def new_campaign(app: Clarion, settings: Settings, name: str, rule: str) -> None:
    from clarion.services.campaigns import CampaignService
    from clarion.services.segments import SegmentService

    with app.store.write() as conn:
        SegmentService(settings).create(conn, name, rule)
        CampaignService(settings).create(conn, {"name": name, "template": "bench-push-template", "segment": name,
                                                "channel": "push"})
        CampaignService(settings).send(conn, name)


class Phases:
    """CPU seconds of the calling thread spent in wrapped callables (lease and checkpoint run in threads)."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}

    def wrap(self, name: str, function):
        self.cpu.setdefault(name, 0.0)

        def wrapped(*args, **kwargs):
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.cpu[name] += time.thread_time() - started

        return wrapped


def run_in_process(app: Clarion, settings: Settings, client: str, worker_id: str, phases: Phases | None = None):
    from clarion.runners.worker import Worker

    channels, provider = push_bindings(settings, client)
    worker = Worker(app, channels=channels, worker_id=worker_id)
    if phases is not None:
        dispatcher, binding = worker.dispatcher, worker.channels["push"]
        dispatcher.lease = phases.wrap("lease: ledger + policy chain (DB, a thread)", dispatcher.lease)
        binding.composer.compose = phases.wrap("compose: render title, body, image, link", binding.composer.compose)
        dispatcher.checkpoint = phases.wrap("checkpoint: ledger + log + engagements (DB, a thread)",
                                            dispatcher.checkpoint)

    async def run() -> None:
        try:
            await worker.run(until_idle=True)
        finally:
            await provider.aclose()

    asyncio.run(run())
    return worker


def profile(app: Clarion, settings: Settings, recipients: int, client: str) -> None:
    """One worker in this process: (1) its CPU per phase on a campaign to about 10,000 of the contacts,
    (2) under cProfile (CPU time, the event loop's thread only) on a campaign to about 5,000 others."""
    profiled = Clarion.from_settings(settings)
    percent = max(1, min(100, 10_000 * 100 // recipients))
    new_campaign(profiled, settings, "bench-phases", f"attributes.bucket < {percent}")
    phases = Phases()
    cpu, started = time.process_time(), time.perf_counter()
    worker = run_in_process(profiled, settings, client, "bench-phases", phases)
    cpu, seconds, sent = time.process_time() - cpu, time.perf_counter() - started, max(worker.sent, 1)
    print(f"\n  phases: one in-process worker ({client}), {worker.sent:,} sent in {seconds:.1f} s "
          f"({worker.sent / seconds:,.0f} msgs/s), {cpu:.1f} CPU s = {cpu / sent * 1e6:,.0f} µs/msg", flush=True)
    rest = cpu - sum(phases.cpu.values())
    for name, spent in [*phases.cpu.items(), ("the rest: FcmProvider, aiohttp/httpx, asyncio, the fan-out", rest)]:
        print(f"    {name:<56} {spent / sent * 1e6:>7,.0f} µs/msg  {spent / cpu:>4.0%}", flush=True)

    percent = max(1, min(100 - percent, 5_000 * 100 // recipients))
    new_campaign(profiled, settings, "bench-profile", f"attributes.bucket >= {100 - percent}")
    profiler = cProfile.Profile(time.process_time)
    cpu = time.process_time()
    profiler.enable()
    worker = run_in_process(profiled, settings, client, "bench-profile")
    profiler.disable()
    cpu = time.process_time() - cpu
    profiled.close()
    print(f"\n  cProfile: one in-process worker ({client}), {worker.sent:,} sent, {cpu:.1f} CPU s "
          f"({cpu / max(worker.sent, 1) * 1e6:,.0f} µs/msg with the profiler's overhead)", flush=True)
    for order in ("cumulative", "tottime"):
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).strip_dirs().sort_stats(order).print_stats(25)
        out = stream.getvalue()
        print(f"\n  top 25 by {order} time\n{out[out.find('   ncalls'):].rstrip()}", flush=True)


def bench_store(store: str, args, raw: dict) -> dict:
    from clarion.delivery import ledger

    workdir = Path(tempfile.mkdtemp(prefix=f"clarion-bench-push-{store}-"))
    drop = None
    url = f"sqlite:///{workdir / 'bench.db'}"
    if store == "postgresql":
        url, drop = pg_database()
    try:
        port = free_port()
        key_file = write_service_account(workdir / "service-account.json", f"http://127.0.0.1:{port}/token")
        base = settings_for(url, key_file, f"http://127.0.0.1:{port}", args.concurrency, args.batch_size)
        app, campaign_id, loaded, enqueue = setup(url, args.recipients, base)
        settings = Settings(**base)
        print(f"\n{store}: {args.recipients:,} contacts with an FCM device loaded in {loaded:.1f} s, campaign "
              f"enqueued in {enqueue:.1f} s", flush=True)
        if not raw:
            raw.update(blasts(args, app, settings, campaign_id, key_file, port, workdir))
        peer = PeerProcess(key_file, port, workdir)
        try:
            print(f"  clarion: {args.workers} worker(s) ({args.client}), {args.concurrency} requests in flight "
                  f"each, batch {args.batch_size}; {_load()}", flush=True)
            result = run_workers(app, campaign_id, base, args.workers, args.recipients, peer, workdir, args.client)
            stats = peer.stats()
        finally:
            peer.stop()
        with app.store.read() as conn:
            counts = {k: v for k, v in ledger.counts(conn, campaign_id).items() if v}
            details = conn.execute(text("SELECT reason, detail, count(*) FROM deliveries WHERE campaign_id = :c "
                                        "AND reason IS NOT NULL GROUP BY reason, detail"), {"c": campaign_id}).all()
        sent, wall = counts.get("sent", 0), result["drained"]
        print(f"  wall {wall:.1f} s until drained (workers exited at {result['exited']:.1f} s); ledger {counts}; "
              f"peer accepted {stats.get('sent', 0):,}, token fetches {stats.get('tokens', 0)}", flush=True)
        if details:
            print(f"  not sent: {[tuple(d) for d in details][:5]}", flush=True)
        print(f"  CPU: workers {result['worker_cpu']:.1f} s ({result['worker_cpu'] / max(sent, 1) * 1e6:,.0f} µs/msg "
              f"with start-up), database server {result['db_cpu']:.1f} s, peer {result['peer_cpu']:.1f} s "
              f"({result['peer_cpu'] / max(sent, 1) * 1e6:,.0f} µs/msg); peak RSS per worker "
              f"{', '.join(f'{p / 2**20:.0f}' for p in result['peak'])} MB; {_load()}", flush=True)
        if args.profile:
            peer = PeerProcess(key_file, port, workdir)
            try:
                profile(app, settings, args.recipients, args.client)
            finally:
                peer.stop()
        app.close()
        rate = sent / wall
        return {"store": store, "recipients": args.recipients, "workers": args.workers, "rate": rate,
                "raw": raw["rate"], "ratio": rate / raw["rate"], "cpu": result["worker_cpu"] / max(sent, 1),
                "raw_cpu": raw["cpu"], "rss": max(result["peak"]) / 2**20}
    finally:
        if drop:
            drop()
        if args.keep:
            print(f"  kept {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--stores", default="sqlite", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1; SQLite wants one)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight per worker and in the blast")
    parser.add_argument("--batch-size", type=int, default=500, help="CLARION_WORKER_BATCH_SIZE (default 500)")
    parser.add_argument("--client", default="auto", choices=["auto", "aiohttp", "httpx"], help="FcmProvider's client")
    parser.add_argument("--raw-messages", type=int, default=None, help="requests of the raw blast (default: N)")
    parser.add_argument("--provider-messages", type=int, default=20_000, help="messages of each provider-only run")
    parser.add_argument("--provider-clients", default="aiohttp,httpx", help="provider-only runs ('' for none)")
    parser.add_argument("--profile", action="store_true", help="then one worker in-process under cProfile")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (SQLite file, logs)")
    args = parser.parse_args()
    raw: dict = {}
    rows = [bench_store(store.strip(), args, raw) for store in args.stores.split(",") if store.strip()]
    print(f"\n{'store':<11}{'recipients':>11}{'workers':>8}{'msgs/s':>9}{'raw msgs/s':>11}{'ratio':>7}"
          f"{'CPU µs/msg':>11}{'raw CPU µs':>11}{'peak RSS MB':>12}")
    for row in rows:
        print(f"{row['store']:<11}{row['recipients']:>11,}{row['workers']:>8}{row['rate']:>9,.0f}{row['raw']:>11,.0f}"
              f"{row['ratio']:>7.2f}{row['cpu'] * 1e6:>11,.0f}{row['raw_cpu'] * 1e6:>11,.0f}{row['rss']:>12.0f}")


if __name__ == "__main__":
    main()

"""Email send benchmark: a personalised campaign end to end into Postfix's smtp-sink, on SQLite and PostgreSQL.

    .venv/bin/python bench/send.py                                  # 100,000 recipients, both stores
    .venv/bin/python bench/send.py --recipients 20000 --stores sqlite
    .venv/bin/python bench/send.py --recipients 20000 --profile      # + CPU per phase and cProfile of one worker
    .venv/bin/python bench/send.py --recipients 1000000 --stores sqlite --raw-messages 100000 --time-limit 20

Setup, not timed: a fresh database with N contacts (names, locales and zones mixed, email consent) loaded
with bulk SQL, workspace quiet hours off, an HTML template personalised with the first name, a money and a
date filter and the unsubscribe link, DKIM with a fresh RSA-2048 key, a segment of everyone and a campaign;
``send`` puts the audience in the ledger (its time is reported as "enqueue s"). smtp-sink comes from
Debian's postfix package, installed with apt-get when /usr/sbin/smtp-sink is missing.

Timed: ``--workers`` ``clarion worker --until-idle`` processes (settings through CLARION_* variables) with
``--connections`` SMTP connections in all, from their start until the ledger has no open delivery. Policies,
rendering, MIME, DKIM, SMTP and the ledger's checkpoints all run in the workers. Each worker's RSS is read
every 0.2 s and printed at 10/25/50/75/100 % of the messages received by the sink, with the rate between
those points; ``--time-limit`` stops a long run (SIGINT) and reports the rate so far. The CPU seconds of
the workers, of the database's server processes (PostgreSQL backends of the scratch database only) and of
smtp-sink are printed too: on a shared machine they are steadier than wall-clock rates.

The limit ("raw"): N (``--raw-messages``) pre-built messages of the same size (composed and signed by clarion
for the first 1,000 recipients, cycled) sent with ``smtplib`` from ``--connections`` threads, one connection
each, to a fresh smtp-sink. For reference, not the limit, the same messages through clarion's ``SmtpChannel``.

``--profile``: after each store's run, one worker in this process (1) with its CPU split by phase (lease,
render, build, DKIM, checkpoint, the rest) and per SQL statement, on a campaign to about 20,000 contacts,
then (2) under cProfile (CPU time) on a campaign to about 5,000: the top 25 functions by cumulative and by
own time.

Prints msgs/s, the ratio to the raw blast and the peak RSS of a worker; figures are printed, never asserted.
Targets (issue): ratio >= 0.5, peak RSS <= 300 MB and flat over a 1,000,000-recipient run.
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
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import text
from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from ingest import free_port, pg_database  # noqa: E402
from send_support import (  # noqa: E402
    TEMPLATE,
    Sink,
    channel_blast,
    ensure_smtp_sink,
    load_audience,
    raw_blast,
)

from clarion.bootstrap import Clarion  # noqa: E402
from clarion.config import Settings  # noqa: E402

CAMPAIGN = "bench-send"
SENDER = {"from_address": "news@shop.example", "from_name": "Boutique Élodie"}
PROGRESS = (0.10, 0.25, 0.50, 0.75, 1.00)
RAW_POOL = 1_000  # distinct pre-built messages for the raw blast, cycled (N of them would not fit in memory)
POLL = 0.2


def settings_for(url: str, workdir: Path, port: int, pool: int, batch: int) -> dict[str, str]:
    """The CLARION_* settings of a worker (lower-case field names)."""
    return {"database_url": url, "email_transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": str(port),
            "smtp_security": "none", "smtp_pool_size": str(pool), "worker_batch_size": str(batch),
            "public_url": "https://news.shop.example", "link_secret": "bench-link-secret",
            "email_from": SENDER["from_address"], "email_from_name": SENDER["from_name"],
            "email_unsubscribe_mailto": "unsubscribe@shop.example",
            "dkim_domain": "shop.example", "dkim_selector": "bench", "dkim_key_file": str(workdir / "dkim.pem")}


def make_settings(values: dict[str, str]) -> Settings:
    return Settings(**values)


def pools(connections: int, workers: int) -> list[int]:
    """Connections per worker: ``connections`` spread as evenly as possible, at least one each."""
    return [max(1, connections // workers + (1 if i < connections % workers else 0)) for i in range(workers)]


# -- setup -------------------------------------------------------------------------------------------------
def setup(url: str, workdir: Path, recipients: int, tracking: bool = True) -> tuple[Clarion, int, float, float]:
    """A loaded store and a started campaign: (app, campaign id, load seconds, enqueue seconds)."""
    from clarion.services.campaigns import CampaignService
    from clarion.services.delivery_defaults import set_defaults
    from clarion.services.segments import SegmentService
    from clarion.services.templates import TemplateService
    from clarion.store.maintenance import refresh_statistics

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (workdir / "dkim.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    settings = make_settings(settings_for(url, workdir, 25, 1, 500))
    app = Clarion.from_settings(settings)
    app.migrate()
    started = time.perf_counter()
    with app.store.write() as conn:
        load_audience(conn, recipients)
    # What the contact importer leaves behind on PostgreSQL (statistics of the tables it filled).
    refresh_statistics(app.store.engine, ["contacts", "identities", "consents", "consent_ledger"], vacuum=True)
    loaded = time.perf_counter() - started
    campaigns = CampaignService(settings)
    with app.store.write() as conn:
        set_defaults(conn, {"quiet_hours": {}})  # nothing deferred to the morning, whatever the hour
        TemplateService().save(conn, "bench-template", TEMPLATE)
        SegmentService(settings).create(conn, "everyone", "email exists")
        # Tracking on (the default: every link rewritten, the pixel, link rows stored) or off (--no-tracking).
        options = {"sender": SENDER, "tracking": {"links": tracking, "opens": tracking}}
        campaign = campaigns.create(conn, {"name": CAMPAIGN, "template": "bench-template", "segment": "everyone",
                                           "settings": options})
    started = time.perf_counter()
    with app.store.write() as conn:
        campaigns.send(conn, CAMPAIGN)
    return app, campaign["id"], loaded, time.perf_counter() - started


def sample_messages(app: Clarion, settings: Settings, campaign_id: int, count: int):
    """(sender, [message bytes], [recipients]): clarion's own messages for the first ``count`` deliveries."""
    from sqlalchemy import select

    from clarion.delivery.facts import load_contacts
    from clarion.messages.email_compose import EmailComposer
    from clarion.runners.channels import email_signer
    from clarion.runners.dispatch import Leased
    from clarion.runners.loaded_campaign import load_campaign
    from clarion.services.delivery_defaults import get_defaults
    from clarion.store.schema_delivery import deliveries

    with app.store.read() as conn:
        campaign = load_campaign(conn, campaign_id, get_defaults(conn), settings)
        rows = conn.execute(select(deliveries).where(deliveries.c.campaign_id == campaign_id)
                            .order_by(deliveries.c.id).limit(count)).all()
        profiles = load_contacts(conn, [row.contact_id for row in rows])
    composer = EmailComposer(settings, email_signer(settings))
    now = datetime.now(UTC)
    built = [composer.compose(campaign, Leased(row, profiles[row.contact_id], profiles[row.contact_id]["email"]), now)
             for row in rows]
    return built[0].sender, [m.data for m in built], [m.recipient for m in built]


# -- the timed run -----------------------------------------------------------------------------------------
class DbCpu:
    """CPU seconds of the PostgreSQL backends serving one database (others' sessions on the server are not
    counted), read from their process titles ("postgres: user db host(port) state")."""

    def __init__(self, database: str | None) -> None:
        self.marker = f" {database} " if database else None
        self.seen: dict[int, float] = {}

    def sample(self) -> None:
        if self.marker is None:
            return
        for proc in psutil.process_iter(["name", "cmdline"]):
            if proc.info["name"] not in ("postgres", "postmaster"):
                continue
            title = " ".join(proc.info["cmdline"] or ()) + " "
            if self.marker in title:
                try:
                    times = proc.cpu_times()
                    self.seen[proc.pid] = times.user + times.system
                except psutil.Error:
                    pass

    def seconds(self) -> float:
        return sum(self.seen.values())


def has_open(app: Clarion, campaign_id: int) -> bool:
    from clarion.delivery import ledger

    with app.store.read() as conn:
        return ledger.has_open(conn, campaign_id)


def run_workers(app: Clarion, campaign_id: int, base: dict[str, str], workers: int, connections: int,
                expected: int, sink: Sink, workdir: Path, time_limit: float | None = None) -> dict:
    envs = []
    for pool in pools(connections, workers):
        values = {**base, "smtp_pool_size": str(pool)}
        envs.append({**{k: v for k, v in os.environ.items() if not k.startswith("CLARION_")},
                     **{f"CLARION_{k.upper()}": v for k, v in values.items()}, "PYTHONUNBUFFERED": "1"})
    rusage = resource.getrusage(resource.RUSAGE_CHILDREN)
    db_cpu = DbCpu(make_url(base["database_url"]).database if base["database_url"].startswith("postgresql") else None)
    db_cpu.sample()
    baseline = db_cpu.seconds()  # the set-up's connection (this process)
    sink_cpu = sink.cpu_seconds()
    outputs = [open(workdir / f"worker-{i}.out", "w+") for i in range(workers)]  # noqa: SIM115
    started = time.perf_counter()
    procs = [psutil.Popen([sys.executable, "-m", "clarion", "worker", "--until-idle", "--json", "--id", f"bench-{i}"],
                          env=env, cwd=workdir, stdout=outputs[i], stderr=subprocess.STDOUT)
             for i, env in enumerate(envs)]
    peak = [0] * workers
    samples: list[tuple[float, int, list[int]]] = []
    marks = list(PROGRESS)
    drained = stopped = None
    last = [0.0, 0]  # the previous progress line: elapsed, received
    print("    progress   messages  elapsed s  msgs/s since previous   RSS MB per worker", flush=True)
    while True:
        elapsed = time.perf_counter() - started
        rss = []
        for i, proc in enumerate(procs):
            try:
                value = proc.memory_info().rss
            except psutil.Error:
                value = 0
            rss.append(value)
            peak[i] = max(peak[i], value)
        received = sink.count()
        samples.append((elapsed, received, rss))
        if len(samples) % 5 == 1:
            db_cpu.sample()
        while marks and received >= marks[0] * expected and marks[0] < 1.0:
            _progress(marks.pop(0), received, elapsed, rss, last)
        alive = [proc.poll() is None for proc in procs]
        if drained is None and (received >= expected or not all(alive)) and not has_open(app, campaign_id):
            drained = elapsed
            if marks:
                _progress(marks.pop(0), received, elapsed, rss, last)
        if not any(alive):
            break
        if time_limit and stopped is None and elapsed > time_limit:
            stopped = elapsed
            print(f"    time limit: stopping the workers at {elapsed:.0f} s with {received:,} messages received",
                  flush=True)
            _progress(received / expected, received, elapsed, rss, last)
            for proc in procs:
                proc.send_signal(signal.SIGINT)
        time.sleep(POLL)
    exited = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker_out = []
    for out in outputs:
        out.seek(0)
        worker_out.append(out.read())
        out.close()
    for i, proc in enumerate(procs):
        if proc.returncode != 0:
            print(f"    worker {i} exited with {proc.returncode}:\n{worker_out[i][-3000:]}", flush=True)
    return {"drained": drained, "stopped": stopped, "exited": exited, "peak": peak, "samples": samples,
            "worker_cpu": (after.ru_utime - rusage.ru_utime) + (after.ru_stime - rusage.ru_stime),
            "db_cpu": db_cpu.seconds() - baseline, "sink_cpu": sink.cpu_seconds() - sink_cpu, "output": worker_out}


def _load() -> str:
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def _progress(mark: float, received: int, elapsed: float, rss: list[int], last: list) -> None:
    per_worker = "  ".join(f"{value / 2**20:6.0f}" if value else "exited" for value in rss)
    rate = (received - last[1]) / max(elapsed - last[0], 1e-9)
    last[:] = [elapsed, received]
    print(f"    {mark:>7.0%}  {received:>9,}  {elapsed:9.1f}  {rate:>21,.0f}   {per_worker}", flush=True)


# -- the profile -------------------------------------------------------------------------------------------
class Phases:
    """CPU seconds (this thread) spent in wrapped callables, and in the garbage collector."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.gc_cpu = 0.0
        self.gc_max = 0.0
        self.gc_runs = [0, 0, 0]
        self._gc_started = 0.0

    def wrap(self, name: str, function):
        self.cpu.setdefault(name, 0.0)
        self.calls.setdefault(name, 0)

        def wrapped(*args, **kwargs):
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.cpu[name] += time.thread_time() - started
                self.calls[name] += 1

        return wrapped

    def gc_callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_started = time.thread_time()
        else:
            spent = time.thread_time() - self._gc_started
            self.gc_cpu += spent
            self.gc_max = max(self.gc_max, spent)
            self.gc_runs[info["generation"]] += 1


class StatementTimes:
    """Wall seconds per SQL statement text (its first 110 characters), timed around the cursor's execute."""

    def __init__(self, engine) -> None:
        from sqlalchemy import event

        self.engine = engine
        self.times: dict[str, list] = {}
        self._event = event
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        spent = time.perf_counter() - conn.info.pop("bench_started", time.perf_counter())
        entry = self.times.setdefault(" ".join(statement.split())[:110], [0, 0.0])
        entry[0] += 1
        entry[1] += spent

    def top(self, count: int) -> list[tuple[str, tuple[int, float]]]:
        return sorted(((k, tuple(v)) for k, v in self.times.items()), key=lambda item: -item[1][1])[:count]

    def remove(self) -> None:
        self._event.remove(self.engine, "before_cursor_execute", self._before)
        self._event.remove(self.engine, "after_cursor_execute", self._after)


def new_campaign(app: Clarion, settings: Settings, name: str, rule: str) -> int:
    from clarion.services.campaigns import CampaignService
    from clarion.services.segments import SegmentService

    service = CampaignService(settings)
    with app.store.write() as conn:
        SegmentService(settings).create(conn, name, rule)
        service.create(conn, {"name": name, "template": "bench-template", "segment": name,
                              "settings": {"sender": SENDER}})
        campaign_id = service.send(conn, name)["id"]
        # Not the campaign's audience_count: INSERT ... SELECT reports rowcount -1 on PostgreSQL (SQLAlchemy 2.1).
        return conn.execute(text("SELECT count(*) FROM deliveries WHERE campaign_id = :c"), {"c": campaign_id}).scalar()


def profile(app: Clarion, base: dict[str, str], pool: int, recipients: int, sink_binary: str, workdir: Path) -> None:
    """One worker in this process: (1) its CPU per phase on a campaign to about 20,000 of the contacts,
    (2) cProfile (CPU time) on another campaign to about 5,000 of them."""
    import gc

    from clarion.messages import email_compose
    from clarion.runners.worker import Worker

    port = free_port()
    sink = Sink(sink_binary, port, workdir)
    settings = make_settings({**base, "smtp_port": str(port), "smtp_pool_size": str(pool)})
    profiled = Clarion.from_settings(settings)
    patched = {"render": email_compose.render, "build_email": email_compose.build_email}
    try:
        # (1) phases, without a profiler's distortion
        percent = max(1, min(100, 20_000 * 100 // recipients))
        count = new_campaign(profiled, settings, "profile-phases", f"attributes.bucket < {percent}")
        worker = Worker(profiled, worker_id="bench-phases")
        phases = Phases()
        dispatcher, composer = worker.dispatcher, worker.channels["email"].composer
        dispatcher.lease = phases.wrap("lease: ledger + policy chain (DB)", dispatcher.lease)
        composer.compose = phases.wrap("compose", composer.compose)
        email_compose.render = phases.wrap("  render (Jinja, Babel; html + text)", email_compose.render)
        email_compose.build_email = phases.wrap("  build_email (MIME, QP)", email_compose.build_email)
        if composer.signer is not None:
            composer.signer.sign = phases.wrap("  DKIM sign (RSA-2048)", composer.signer.sign)
        dispatcher.checkpoint = phases.wrap("checkpoint: ledger + log + engagements (DB)", dispatcher.checkpoint)
        statements = StatementTimes(profiled.store.engine)
        gc.callbacks.append(phases.gc_callback)
        started, cpu = time.perf_counter(), time.process_time()
        try:
            asyncio.run(worker.run(until_idle=True))
        finally:
            gc.callbacks.remove(phases.gc_callback)
            statements.remove()
            email_compose.render, email_compose.build_email = patched["render"], patched["build_email"]
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        sent = max(worker.sent, 1)
        print(f"\n  phases: one in-process worker, {pool} connection(s), {count:,} messages ({worker.sent:,} sent) "
              f"in {seconds:.1f} s ({worker.sent / seconds:,.0f} msgs/s), {cpu:.1f} CPU s = "
              f"{cpu / sent * 1e6:,.0f} µs/msg", flush=True)
        accounted = phases.cpu["lease: ledger + policy chain (DB)"] + phases.cpu["compose"] + \
            phases.cpu["checkpoint: ledger + log + engagements (DB)"]
        rows = [*phases.cpu.items(), ("rest: SMTP client (aiosmtplib), asyncio, cycle", cpu - accounted)]
        for name, spent in rows:
            print(f"    {name:<50} {spent / sent * 1e6:>7,.0f} µs/msg  {spent / cpu:>4.0%}", flush=True)
        print(f"    of which garbage collection: {phases.gc_cpu / sent * 1e6:,.0f} µs/msg, collections per "
              f"generation {phases.gc_runs}, longest {phases.gc_max * 1000:.0f} ms", flush=True)
        print("    SQL statements by wall time (client side: includes the server's work and lock waits):", flush=True)
        for sql, (calls, spent) in statements.top(8):
            print(f"    {spent / sent * 1e6:>7,.0f} µs/msg {calls:>6,} calls {spent / calls * 1000:>8.2f} ms each  "
                  f"{sql}", flush=True)

        # (2) cProfile
        percent = max(1, min(100, 5_000 * 100 // recipients))
        count = new_campaign(profiled, settings, "profile-cprofile", f"attributes.bucket >= {100 - percent}")
        worker = Worker(profiled, worker_id="bench-profile")
        profiler = cProfile.Profile(time.process_time)  # CPU time: the machine's other load does not distort it
        cpu = time.process_time()
        profiler.enable()
        asyncio.run(worker.run(until_idle=True))
        profiler.disable()
        cpu = time.process_time() - cpu
        print(f"\n  cProfile: one in-process worker, {count:,} messages ({worker.sent:,} sent), {cpu:.1f} CPU s "
              f"({cpu / max(worker.sent, 1) * 1e6:,.0f} µs/msg with the profiler's overhead; CPU seconds below)",
              flush=True)
        for order, lines in (("cumulative", 25), ("tottime", 25)):
            stream = io.StringIO()
            pstats.Stats(profiler, stream=stream).strip_dirs().sort_stats(order).print_stats(lines)
            text = stream.getvalue()
            print(f"\n  top {lines} by {order} time\n{text[text.find('   ncalls'):].rstrip()}", flush=True)
    finally:
        email_compose.render, email_compose.build_email = patched["render"], patched["build_email"]
        profiled.close()
        sink.stop()


# -- one store ---------------------------------------------------------------------------------------------
def bench_store(store: str, args, sink_binary: str, raw: dict) -> dict:
    from clarion.delivery import ledger

    workdir = Path(tempfile.mkdtemp(prefix=f"clarion-bench-send-{store}-"))
    drop = None
    url = f"sqlite:///{workdir / 'bench.db'}"
    if store == "postgresql":
        url, drop = pg_database()
    try:
        app, campaign_id, loaded, enqueue = setup(url, workdir, args.recipients, args.tracking)
        print(f"\n{store}: {args.recipients:,} contacts loaded in {loaded:.1f} s, campaign enqueued in {enqueue:.1f} s",
              flush=True)
        base = settings_for(url, workdir, 0, 1, args.batch_size)
        settings = make_settings({**base, "smtp_port": "25"})
        if not raw:  # the limit: once per run, with the first store's messages
            raw_count = args.raw_messages or args.recipients
            sender, messages, recipients = sample_messages(app, settings, campaign_id, min(RAW_POOL, args.recipients))
            sizes = [len(m) for m in messages]
            raw["size"] = sum(sizes) / len(sizes)
            port = free_port()
            sink = Sink(sink_binary, port, workdir)
            try:
                cpu, sink_cpu = time.process_time(), sink.cpu_seconds()
                seconds = raw_blast(port, sender, messages, recipients, raw_count, args.connections)
                cpu, sink_cpu = time.process_time() - cpu, sink.cpu_seconds() - sink_cpu
                time.sleep(0.3)
                raw["received"] = sink.count()
            finally:
                sink.stop()
            raw["rate"] = raw_count / seconds
            print(f"  raw blast: {raw_count:,} pre-built messages of {raw['size'] / 1024:.1f} KB (signed), "
                  f"{args.connections} smtplib threads: {seconds:.1f} s, {raw['rate']:,.0f} msgs/s "
                  f"(sink received {raw['received']:,}); CPU: client {cpu / raw_count * 1e6:,.0f} µs/msg, "
                  f"smtp-sink {sink_cpu / raw_count * 1e6:,.0f} µs/msg; {_load()}", flush=True)
            port = free_port()
            sink = Sink(sink_binary, port, workdir)
            try:
                cpu = time.process_time()
                seconds = channel_blast(port, sender, messages, recipients, raw_count, args.connections)
                cpu = time.process_time() - cpu
            finally:
                sink.stop()
            print(f"  channel blast (reference, not the limit): the same through clarion's SmtpChannel, one process, "
                  f"{args.connections} pooled connections: {raw_count / seconds:,.0f} msgs/s; CPU "
                  f"{cpu / raw_count * 1e6:,.0f} µs/msg", flush=True)

        port = free_port()
        sink = Sink(sink_binary, port, workdir)
        base = {**base, "smtp_port": str(port)}
        try:
            print(f"  clarion: {args.workers} worker(s), {args.connections} connection(s) "
                  f"({'+'.join(map(str, pools(args.connections, args.workers)))}), batch {args.batch_size}; "
                  f"{_load()}", flush=True)
            result = run_workers(app, campaign_id, base, args.workers, args.connections, args.recipients, sink,
                                 workdir, args.time_limit * 60 if args.time_limit else None)
            time.sleep(0.3)
            received = sink.count()
        finally:
            sink.stop()
        with app.store.read() as conn:
            counts = {k: v for k, v in ledger.counts(conn, campaign_id).items() if v}
            reasons = ledger.reasons(conn, campaign_id)
        wall = result["drained"] or result["stopped"] or result["exited"]
        sent = counts.get("sent", 0)
        rate = sent / wall
        first_rss = next((rss for _, got, rss in result["samples"] if got >= 0.1 * args.recipients), None)
        until = "drained" if result["drained"] else "stopped (time limit)" if result["stopped"] else "workers exited"
        print(f"  wall {wall:.1f} s until {until} (workers exited at {result['exited']:.1f} s); ledger {counts}; "
              f"sink received {received:,}{'' if received == args.recipients else '  <-- MISMATCH'}", flush=True)
        if reasons:
            with app.store.read() as conn:
                details = conn.execute(text("SELECT detail, count(*) FROM deliveries WHERE campaign_id = :c AND "
                                            "reason IS NOT NULL GROUP BY detail"), {"c": campaign_id}).all()
            print(f"  not sent: {reasons}; details: {[tuple(d) for d in details]}", flush=True)
        print(f"  CPU: workers {result['worker_cpu']:.1f} s ({result['worker_cpu'] / max(sent, 1) * 1e6:,.0f} µs/msg"
              f" with start-up), database server {result['db_cpu']:.1f} s, smtp-sink {result['sink_cpu']:.1f} s; "
              f"{_load()}; peak RSS per worker "
              f"{', '.join(f'{p / 2**20:.0f}' for p in result['peak'])} MB"
              + (f" (at 10%: {', '.join(f'{r / 2**20:.0f}' for r in first_rss)} MB)" if first_rss else ""),
              flush=True)
        if args.profile:
            profile(app, base, max(1, args.connections // args.workers), args.recipients, sink_binary, workdir)
        app.close()
        return {"store": store, "recipients": args.recipients, "workers": args.workers,
                "connections": args.connections, "rate": rate, "raw": raw["rate"], "ratio": rate / raw["rate"],
                "rss": max(result["peak"]) / 2**20, "enqueue": enqueue}
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
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--connections", type=int, default=4, help="SMTP connections in all (default 4)")
    parser.add_argument("--batch-size", type=int, default=500, help="CLARION_WORKER_BATCH_SIZE (default 500)")
    parser.add_argument("--raw-messages", type=int, default=None,
                        help="messages of the raw blast (default: --recipients)")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="minutes: stop the workers then and report the rate so far (long RSS runs)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (SQLite file, logs)")
    parser.add_argument("--no-tracking", dest="tracking", action="store_false",
                        help="send without link rewriting and the open pixel (response tracking is on by default)")
    parser.add_argument("--profile", action="store_true",
                        help="after each store's run, one worker in-process under cProfile (top 25 functions)")
    args = parser.parse_args()
    sink_binary = ensure_smtp_sink()
    raw: dict = {}
    rows = [bench_store(store.strip(), args, sink_binary, raw) for store in args.stores.split(",") if store.strip()]
    print(f"\n{'store':<11}{'recipients':>11}{'workers':>8}{'conns':>6}{'msgs/s':>9}{'raw msgs/s':>11}{'ratio':>7}"
          f"{'peak RSS MB':>12}{'enqueue s':>10}")
    for row in rows:
        print(f"{row['store']:<11}{row['recipients']:>11,}{row['workers']:>8}{row['connections']:>6}{row['rate']:>9,.0f}"
              f"{row['raw']:>11,.0f}{row['ratio']:>7.2f}{row['rss']:>12.0f}{row['enqueue']:>10.1f}")


if __name__ == "__main__":
    main()

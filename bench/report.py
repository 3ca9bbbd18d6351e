"""Campaign report benchmark (issue 12): a 1,000,000-delivery campaign with 200,000 engagements, both stores.

    .venv/bin/python bench/report.py                        # 1,000,000 deliveries, SQLite and PostgreSQL
    .venv/bin/python bench/report.py --stores sqlite --deliveries 100000
    .venv/bin/python bench/report.py --proposed-indexes     # with the indexes asked of migration 0005
    .venv/bin/python bench/report.py --database-url sqlite:////tmp/report.db   # build once, time it again later

Builds the campaign with set-based inserts (INSERT ... SELECT over a sequence of numbers): one contact per
delivery, in six time zones and four locales, a third of them with an RFM segment; 5% of the deliveries
skipped for the global holdout, the rest sent over two hours. Besides the one ``received`` row per sent
message that the worker writes, about 200,000 response engagements: human and machine opens and clicks
(repeated clicks included), conversions with revenue, unsubscribes, bounces, complaints; and the goal
events (``Order Completed``) of treated and held-out contacts within the window, among other events.

Then times the report (figures and lift), each breakdown alone, and the report with every breakdown,
each printed beside the 2 s target, with the CPU time this process spent (on SQLite, all the work: read the
figures of a loaded machine from that) and the load average. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from ingest import pg_database  # noqa: E402

TARGET_SECONDS = 2.0
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SEND_SPAN = 7_200  # seconds over which the messages go out
ZONES = ("'America/New_York'", "'Europe/Berlin'", "'Asia/Tokyo'", "'Asia/Kathmandu'", "'UTC'", "NULL")
LOCALES = ("'en-US'", "'de-DE'", "'ja-JP'", "NULL")
RFM = ("'champions'", "'loyal'", "'at_risk'", "'hibernating'", "'new_customers'")
TEMPLATE = {"default": {"email": {"subject": "Spring", "html": "<p>Spring is here</p>"}}}
# Asked of migration 0005 (docs/reports.md): a campaign's sent messages with their contacts and send times
# straight from an index, and its engagement counted without visiting the table.
PROPOSED_INDEXES = (
    "CREATE INDEX IF NOT EXISTS ix_deliveries_campaign_report "
    "ON deliveries (campaign_id, status, contact_id, sent_at, finished_at, reason)",
    "CREATE INDEX IF NOT EXISTS ix_engagements_campaign_id_action_machine_delivery_id_revenue "
    "ON engagements (campaign_id, action, machine, delivery_id, revenue)",
)


class Sql:
    """What the two stores spell differently: a sequence of numbers and a time ``seconds`` after START."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    def numbers(self, count: int) -> str:
        if self.dialect == "postgresql":
            return f"(SELECT generate_series(1, {int(count)}) AS i) AS n"
        return f"(WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {int(count)}) " \
               f"SELECT i FROM seq) AS n"

    def at(self, seconds: str) -> str:
        if self.dialect == "postgresql":
            return f"(CAST(:start AS timestamptz) + ({seconds}) * interval '1 second')"
        # UtcDateTime's SQLite form: naive UTC text with microseconds
        return f"(strftime('%Y-%m-%d %H:%M:%S', :start, ({seconds}) || ' seconds') || '.000000')"

    def start(self):
        return START if self.dialect == "postgresql" else START.replace(tzinfo=None).isoformat(" ")

    def boolean(self, value: bool) -> str:
        if self.dialect == "postgresql":
            return "true" if value else "false"
        return "1" if value else "0"


def pick(values: tuple[str, ...], expr: str) -> str:
    cases = " ".join(f"WHEN {index} THEN {value}" for index, value in enumerate(values))
    return f"(CASE ({expr}) % {len(values)} {cases} END)"


def build(conn, sql: Sql, count: int, campaign_id: int) -> None:
    from sqlalchemy import text

    sent_at = sql.at(f"n.i % {SEND_SPAN}")
    statements = [
        # contacts: id i, one per delivery
        f"INSERT INTO contacts (id, external_id, email, locale, timezone, custom_dates, attributes, created_at, "
        f"updated_at) SELECT n.i, 'b' || n.i, 'b' || n.i || '@example.com', {pick(LOCALES, 'n.i')}, "
        f"{pick(ZONES, 'n.i / 7')}, '{{}}', '{{}}', :start, :start FROM {sql.numbers(count)}",
        f"INSERT INTO contact_scores (contact_id, rfm_segment) SELECT n.i, {pick(RFM, 'n.i / 3')} "
        f"FROM {sql.numbers(count)} WHERE n.i % 3 = 0",
        # deliveries: every 20th held out (skipped: holdout), the others sent
        f"INSERT INTO deliveries (id, campaign_id, step, contact_id, channel, status, reason, due_at, attempts, "
        f"marketing, created_at, sent_at, finished_at) SELECT n.i, {campaign_id}, 'main', n.i, 'email', "
        f"CASE WHEN n.i % 20 = 0 THEN 'skipped' ELSE 'sent' END, CASE WHEN n.i % 20 = 0 THEN 'holdout' END, "
        f"{sent_at}, 1, {sql.boolean(True)}, :start, CASE WHEN n.i % 20 = 0 THEN NULL ELSE {sent_at} END, {sent_at} "
        f"FROM {sql.numbers(count)}",
    ]
    engaged = [  # (action, machine, condition on the delivery id, seconds after the send, revenue)
        ("received", False, "n.i % 20 <> 0", "0", "NULL"),
        ("opened", False, "n.i % 100 BETWEEN 1 AND 9", "600 + n.i % 3600", "NULL"),
        ("opened", True, "n.i % 100 BETWEEN 10 AND 12", "2", "NULL"),
        ("clicked", False, "n.i % 100 BETWEEN 1 AND 4", "700 + n.i % 3600", "NULL"),
        ("clicked", False, "n.i % 100 = 1", "900 + n.i % 3600", "NULL"),  # a second click on the same link
        ("clicked", True, "n.i % 100 = 13", "3", "NULL"),
        ("converted", False, "n.i % 100 = 2", "5000 + n.i % 86400", "(n.i % 200) + 9.5"),
        ("unsubscribed", False, "n.i % 1000 = 15", "800", "NULL"),
        ("bounced", False, "n.i % 1000 = 16", "60", "NULL"),
        ("complained", False, "n.i % 1000 = 17", "900", "NULL"),
    ]
    for action, machine, condition, after, revenue in engaged:
        statements.append(
            f"INSERT INTO engagements (contact_id, campaign_id, channel, action, occurred_at, delivery_id, step, "
            f"link, machine, revenue) SELECT n.i, {campaign_id}, 'email', '{action}', "
            f"{sql.at(f'n.i % {SEND_SPAN} + {after}')}, n.i, 'main', 0, {sql.boolean(machine)}, "
            f"{revenue} FROM {sql.numbers(count)} WHERE n.i % 20 <> 0 AND ({condition})")
    events = [  # (name, condition, seconds after the send): the goal in the window, and other events
        ("Order Completed", "n.i % 20 <> 0 AND n.i % 100 BETWEEN 1 AND 3", "3600 + n.i % 86400"),
        ("Order Completed", "n.i % 1000 = 0", "3600 + n.i % 86400"),  # the holdout's own orders: 2%
        ("Order Completed", "n.i % 50 = 7", "-86400 * 3"),  # before the campaign
        ("Product Viewed", "n.i % 4 = 1", "n.i % 86400"),
    ]
    for number, (name, condition, after) in enumerate(events):
        statements.append(
            f"INSERT INTO events (contact_id, name, message_id, occurred_at, received_at, properties, revenue, "
            f"currency) SELECT n.i, '{name}', 'e{number}-' || n.i, {sql.at(f'n.i % {SEND_SPAN} + {after}')}, "
            f":start, '{{}}', {'(n.i % 90) + 10.0' if name == 'Order Completed' else 'NULL'}, 'USD' "
            f"FROM {sql.numbers(count)} WHERE {condition}")
    for statement in statements:
        conn.execute(text(statement), {"start": sql.start()})


def setup(app, count: int) -> int:
    from sqlalchemy import update

    from clarion.domain.campaigns import CHANNELS
    from clarion.services.campaigns import CampaignService
    from clarion.services.segments import SegmentService
    from clarion.services.templates import TemplateService
    from clarion.store.schema_delivery import campaigns

    with app.store.write() as conn:
        TemplateService().save(conn, "spring", TEMPLATE)
        SegmentService(app.settings).create(conn, "everyone", "email exists")
        created = CampaignService(app.settings, channels=CHANNELS).create(
            conn, {"name": "spring", "template": "spring", "segment": "everyone"})
        conn.execute(update(campaigns).where(campaigns.c.id == created["id"]).values(
            status="completed", started_at=START - timedelta(minutes=1), finished_at=START + timedelta(
                seconds=SEND_SPAN)))
        build(conn, Sql(conn.dialect.name), count, created["id"])
    analyse(app)
    return created["id"]


def analyse(app) -> None:
    """PostgreSQL: fresh planner statistics and the visibility map that index-only scans need, as autovacuum
    leaves them. SQLite: nothing, as in production (store/maintenance.py): Clarion never runs ANALYZE there, and
    statistics from a store holding one campaign would tell the planner that "campaign_id = ?" selects nothing."""
    if app.store.dialect == "postgresql":
        with app.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")


def timed(store: str, label: str, action) -> object:
    started, cpu = time.perf_counter(), time.process_time()
    result = action()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    verdict = "ok" if seconds <= TARGET_SECONDS else "OVER"
    print(f"{store:10s} {label:38s} {seconds:7.3f} s  (cpu here {cpu:6.3f} s; target {TARGET_SECONDS:g} s: "
          f"{verdict})", flush=True)
    return result


def bench_store(store: str, url: str, count: int, *, build_it: bool, proposed: bool) -> None:
    from clarion.bootstrap import Clarion
    from clarion.config import Settings
    from clarion.services.reports import DIMENSIONS, campaign_report
    from clarion.store.migrate import upgrade

    app = Clarion.from_settings(Settings(database_url=url, _env_file=None))
    if build_it:
        upgrade(app.store.engine)
        started = time.perf_counter()
        setup(app, count)
        print(f"{store:10s} built {count:,} deliveries in {time.perf_counter() - started:.1f} s", flush=True)
    if proposed:
        with app.store.write() as conn:
            for statement in PROPOSED_INDEXES:
                conn.exec_driver_sql(statement)
        analyse(app)
    with app.store.read() as conn:
        rows = conn.exec_driver_sql("SELECT count(*) FROM engagements WHERE action <> 'received'").scalar_one()
        print(f"{store:10s} {rows:,} response engagements (and the 'received' rows); proposed indexes: "
              f"{'yes' if proposed else 'no'}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
              flush=True)
        report = timed(store, "report: figures and lift", lambda: campaign_report(conn, "spring"))
        for name in DIMENSIONS:
            timed(store, f"report with its breakdown by {name}",
                  lambda name=name: campaign_report(conn, "spring", by=(name,)))
        timed(store, "report with every breakdown", lambda: campaign_report(conn, "spring", by=DIMENSIONS))
    lift = report["lift"]
    print(f"{store:10s} sent {report['sent']:,}, human opens {report['human']['opens']}, clicks "
          f"{report['human']['clicks']}, conversions {report['conversions']:,}, lift {lift['absolute']:+.4f} "
          f"(95% CI {lift['ci95'][0]:+.4f} to {lift['ci95'][1]:+.4f})", flush=True)
    app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--proposed-indexes", action="store_true", help="create the indexes asked of migration 0005")
    parser.add_argument("--database-url", help="build into this store when it is empty, else time what it holds")
    args = parser.parse_args()
    if args.database_url:
        from sqlalchemy import create_engine, inspect

        engine = create_engine(args.database_url)
        empty = "campaigns" not in inspect(engine).get_table_names()
        if not empty:
            with engine.connect() as conn:
                empty = conn.exec_driver_sql("SELECT count(*) FROM campaigns").scalar_one() == 0
        engine.dispose()
        store = args.database_url.split(":")[0].split("+")[0]
        bench_store(store, args.database_url, args.deliveries, build_it=empty, proposed=args.proposed_indexes)
        return
    for store in [s.strip() for s in args.stores.split(",") if s.strip()]:
        workdir = Path(tempfile.mkdtemp(prefix="clarion-report-"))
        url, drop = f"sqlite:///{workdir / 'bench.db'}", None
        if store == "postgresql":
            url, drop = pg_database()
        try:
            bench_store(store, url, args.deliveries, build_it=True, proposed=args.proposed_indexes)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)  # 0.7 GB for a million deliveries
            if drop:
                drop()


if __name__ == "__main__":
    main()

"""Segments and scores benchmark, on SQLite and PostgreSQL, with the ingestion benchmark's data.

    .venv/bin/python bench/segments.py                       # 1,000,000 contacts, 10,000,000 events
    .venv/bin/python bench/segments.py --stores sqlite --contacts 100000 --events 1000000
    .venv/bin/python bench/segments.py --database-url sqlite:////tmp/loaded.db   # reuse a loaded store

Loads the data with the bulk importer (not timed here: see bench/ingest.py), then times
(a) a compound segment count (attribute + behaviour in a window + aggregate + RFM segment),
(b) a full RFM recompute, (c) an incremental refresh after 10,000 new events (through the
ingestion service, as the API would store them), (d) a BG/NBD fit on 100,000 customers, and, for
reference, DuckDB computing (b) from the raw events file. Figures are printed, never asserted.
Targets (issue 3): (a) <= 1 s, (b) <= 5 s, (c) <= 1 s.

The synthetic events span 2025; rules are evaluated as of 2026-01-01 so that windows such as
"within 90 days" select a realistic share. The synthetic buyers all purchase at one rate (no
heterogeneity), which BG/NBD can only fit with extreme parameters, so (d) also fits 100,000
customers simulated from the published CDNOW parameters and prints what it recovers.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import datagen  # noqa: E402
from ingest import CLI, pg_database, run_measured  # noqa: E402

NOW = datetime(2026, 1, 1, tzinfo=UTC)
COMPOUND = ('country in ("US", "GB", "FR") and performed("Product Viewed") >= 3 times within 90 days '
            'and orders.revenue > 200 and rfm.segment in ("champions", "loyal", "potential_loyalist")')
NEW_EVENTS = 10_000
CDNOW_PARAMS = (0.243, 4.414, 0.793, 2.426)  # r, alpha, a, b: Fader, Hardie & Lee (2005)
FIT_CUSTOMERS = 100_000


def timed(label: str, action, store: str):
    started = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - started
    print(f"{store:10s} {label:48s} {seconds:8.3f} s   {result}", flush=True)
    return result


def load(url: str, contacts_file: Path, events_file: Path) -> None:
    env = {**os.environ, "CLARION_DATABASE_URL": url}
    run_measured([*CLI, "db", "upgrade"], env)
    for what, path in (("contacts", contacts_file), ("events", events_file)):
        run_measured([*CLI, "import", what, str(path), "--json", "--reject-file", os.devnull], env)


def bench_store(store: str, url: str) -> None:
    from clarion.bootstrap import Clarion
    from clarion.config import Settings
    from clarion.domain.events import EventInput
    from clarion.scoring.bgnbd import FitError, fit_bgnbd
    from clarion.segments.rule_text import parse_rule
    from clarion.services import predictions, rfm
    from clarion.services.segments import SegmentService

    app = Clarion.from_settings(Settings(database_url=url))
    service = SegmentService(app.settings, clock=lambda: NOW)
    rule = parse_rule(COMPOUND)
    for label in ("    first RFM compute (every score new)", "(b) full RFM recompute"):
        with app.store.write() as conn:
            timed(label, lambda: f"{rfm.compute(conn).scored:,} scored", store)
    with app.store.read() as conn:
        for attempt in ("cold", "warm"):
            timed(f"(a) compound segment count ({attempt})",
                  lambda: f"{service.preview(conn, rule, sample=0)['count']:,} members", store)
    with app.store.write() as conn:
        service.create(conn, "bench", rule)
        timed("    full refresh (materialise members)", lambda: service.refresh(conn, "bench").members, store)
    with app.store.write() as conn:
        contact_ids = [row[0] for row in conn.exec_driver_sql("SELECT id FROM contacts ORDER BY id LIMIT 5000")]
        items = [EventInput("Product Viewed", f"bench-new-{i}", NOW - timedelta(days=1 + i % 30), NOW,
                            {"sku": f"SKU-{i % 500}"}, contact_ids[i % len(contact_ids)])
                 for i in range(NEW_EVENTS)]
        app.events.ingest(conn, items)
    with app.store.write() as conn:
        timed(f"(c) incremental refresh after {NEW_EVENTS:,} events",
              lambda: _refresh_summary(service.refresh(conn, "bench", incremental=True)), store)
    with app.store.read() as conn:
        summary = predictions.load_summary(conn, NOW, 7.0)
    first = slice(0, FIT_CUSTOMERS)

    def fit_stored() -> str:
        try:
            return _fit_summary(fit_bgnbd(summary.frequency[first], summary.recency[first], summary.T[first]))
        except FitError as exc:  # the synthetic buyers share one purchase rate: no finite optimum
            return f"no fit: {exc}"

    timed(f"(d) BG/NBD fit on {min(FIT_CUSTOMERS, len(summary)):,} stored customers", fit_stored, store)
    app.close()


def bench_simulated_fit() -> None:
    from clarion.scoring.bgnbd import fit_bgnbd

    frequency, recency, age = simulate_bgnbd(FIT_CUSTOMERS, CDNOW_PARAMS)
    timed(f"(d) BG/NBD fit on {FIT_CUSTOMERS:,} simulated customers",
          lambda: _fit_summary(fit_bgnbd(frequency, recency, age)) + "  (simulated from r=0.243 alpha=4.414 "
          "a=0.793 b=2.426)", "numpy")


def simulate_bgnbd(customers: int, params: tuple[float, float, float, float], weeks: float = 39.0, seed: int = 3):
    """Purchase histories drawn from the BG/NBD model: (frequency, recency, T) in weeks."""
    r, alpha, a, b = params
    rng = np.random.default_rng(seed)
    rate = rng.gamma(r, 1 / alpha, customers)  # purchases per week while active
    dropout = rng.beta(a, b, customers)  # chance of leaving after each purchase
    age = rng.uniform(1, weeks, customers)  # weeks since the first purchase
    frequency, recency = np.zeros(customers), np.zeros(customers)
    clock, active = np.zeros(customers), np.ones(customers, dtype=bool)
    while active.any():
        clock[active] += rng.exponential(1 / rate[active])
        bought = active & (clock <= age)
        frequency[bought] += 1
        recency[bought] = clock[bought]
        active = bought & (rng.random(customers) >= dropout)
    return frequency, recency, age


def _refresh_summary(result) -> str:
    return f"{result.examined:,} examined, +{result.entered} -{result.left}, {result.members:,} members"


def _fit_summary(params) -> str:
    return f"r={params.r:.3f} alpha={params.alpha:.3f} a={params.a:.3f} b={params.b:.3f}"


def bench_duckdb(events_file: Path) -> None:
    import duckdb

    con = duckdb.connect()
    timed("DuckDB: load the events CSV", lambda: con.execute(
        f"CREATE TABLE events AS SELECT * FROM read_csv('{events_file}', header = true)").fetchone(), "duckdb")
    query = """
        WITH inputs AS (
            SELECT external_id, max(timestamp) AS last_at, count(*) AS orders, sum(revenue) AS revenue
            FROM events WHERE event = 'Order Completed' GROUP BY external_id),
        ranked AS (
            SELECT external_id,
                   1 + (5 * (rank() OVER (ORDER BY last_at) - 1)) // count(*) OVER () AS r,
                   1 + (5 * (rank() OVER (ORDER BY orders) - 1)) // count(*) OVER () AS f,
                   1 + (5 * (rank() OVER (ORDER BY revenue) - 1)) // count(*) OVER () AS m
            FROM inputs)
        SELECT count(*), count(DISTINCT r * 100 + (f + m + 1) // 2) FROM ranked"""
    timed("DuckDB: (b) RFM scores from the raw events", lambda: con.execute(query).fetchone(), "duckdb")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--database-url", help="a store already loaded with the benchmark data (skips loading)")
    args = parser.parse_args()
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    contacts_file, events_file = out / f"contacts-{args.contacts}.csv", out / f"events-{args.events}.csv"
    if not contacts_file.exists():
        datagen.write_contacts(contacts_file, args.contacts)
    if not events_file.exists():
        datagen.write_events(events_file, args.events, args.contacts)
    if args.database_url:
        bench_store(args.database_url.split(":")[0].split("+")[0], args.database_url)
    else:
        for store in [s.strip() for s in args.stores.split(",") if s.strip()]:
            url, drop = (f"sqlite:///{Path(tempfile.mkdtemp(prefix='clarion-seg-')) / 'bench.db'}", None)
            if store == "postgresql":
                url, drop = pg_database()
            try:
                print(f"{store:10s} loading {args.contacts:,} contacts and {args.events:,} events ...", flush=True)
                load(url, contacts_file, events_file)
                bench_store(store, url)
            finally:
                if drop:
                    drop()
    bench_simulated_fit()
    bench_duckdb(events_file)


if __name__ == "__main__":
    main()

"""Ingestion benchmark: bulk import and HTTP /v1/batch, on SQLite and PostgreSQL.

    .venv/bin/python bench/ingest.py                       # 1,000,000 contacts, 10,000,000 events
    .venv/bin/python bench/ingest.py --contacts 100000 --events 1000000 --stores sqlite

Prints rows/s and the importer's peak RSS for each store, then HTTP events/s. Figures are printed,
never asserted. Targets (issue 2): >= 200k events/s bulk on both stores, peak RSS <= 500 MB,
>= 20k events/s over HTTP on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import datagen  # noqa: E402

PG_ADMIN = os.environ.get("CLARION_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
CLI = [sys.executable, "-m", "clarion"]


def run_measured(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB of the process tree, stdout) of one command."""
    started = time.perf_counter()
    proc = psutil.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [proc, *proc.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{err[-2000:]}")
    return seconds, peak / 2**20, out


def pg_database() -> tuple[str, callable]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"clarion_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False), drop


def bench_bulk(store: str, contacts_file: Path, events_file: Path, n_contacts: int, n_events: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="clarion-bench-"))
    drop = None
    url = f"sqlite:///{workdir / 'bench.db'}"
    if store == "postgresql":
        url, drop = pg_database()
    env = {**os.environ, "CLARION_DATABASE_URL": url}
    try:
        run_measured([*CLI, "db", "upgrade"], env)
        for what, path, count in (("contacts", contacts_file, n_contacts), ("events", events_file, n_events)):
            seconds, rss, _ = run_measured([*CLI, "import", what, str(path), "--json",
                                            "--reject-file", str(workdir / f"{what}-rejects.csv")], env)
            print(f"{store:10s} import {what:8s} {count:>11,} rows  {seconds:8.1f} s  "
                  f"{count / seconds:>10,.0f} rows/s  peak RSS {rss:6.0f} MB", flush=True)
    finally:
        if drop:
            drop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def blast(port: int, key: str, n_events: int, per_request: int, concurrency: int) -> float:
    import httpx

    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    bodies = []
    for start in range(0, n_events, per_request):
        batch = [{"type": "track", "userId": f"u{(start + i) % 50_000}", "event": "Product Viewed",
                  "messageId": f"http-{start + i}", "timestamp": "2026-01-01T12:00:00Z",
                  "properties": {"sku": f"SKU-{i}"}} for i in range(per_request)]
        bodies.append(json.dumps({"batch": batch}).encode())
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            response = await client.post("/v1/batch", content=body,
                                          headers={"Authorization": auth, "Content-Type": "application/json"})
            response.raise_for_status()

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return time.perf_counter() - started


def bench_http(n_events: int, per_request: int, concurrency: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="clarion-bench-http-"))
    env = {**os.environ, "CLARION_DATABASE_URL": f"sqlite:///{workdir / 'http.db'}"}
    run_measured([*CLI, "db", "upgrade"], env)
    _, _, out = run_measured([*CLI, "keys", "create", "bench", "--scope", "ingest", "--json"], env)
    key = json.loads(out)["secret"]
    port = free_port()
    server = subprocess.Popen([*CLI, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(port)
        seconds = asyncio.run(blast(port, key, n_events, per_request, concurrency))
        print(f"sqlite     HTTP /v1/batch {n_events:>9,} events, {per_request}/request, "
              f"{concurrency} concurrent: {seconds:6.1f} s  {n_events / seconds:>8,.0f} events/s", flush=True)
    finally:
        server.terminate()
        server.wait(10)


def _wait_for(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server did not listen on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--http-events", type=int, default=200_000)
    parser.add_argument("--http-concurrency", type=int, default=16)
    parser.add_argument("--skip-bulk", action="store_true")
    args = parser.parse_args()
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    contacts_file = out / f"contacts-{args.contacts}.csv"
    events_file = out / f"events-{args.events}.csv"
    if not args.skip_bulk:
        if not contacts_file.exists():
            datagen.write_contacts(contacts_file, args.contacts)
        if not events_file.exists():
            datagen.write_events(events_file, args.events, args.contacts)
        for store in [s.strip() for s in args.stores.split(",") if s.strip()]:
            bench_bulk(store, contacts_file, events_file, args.contacts, args.events)
    if args.http_events:
        bench_http(args.http_events, 100, args.http_concurrency)


if __name__ == "__main__":
    main()

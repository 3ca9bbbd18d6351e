"""The demo: the real CDNOW purchases in a fresh SQLite database, a summary, and an email campaign.

    python -m clarion.demo [--limit ROWS] [--db PATH] [--cdnow-dir DIR]

One contact per CDNOW customer, with a synthetic but deterministic (seeded) profile: name, email,
country, birthday and either coordinates or just a country, so time zones are resolved from
coordinates, single-zone countries or the default. Each gets email consent from the contacts file's
consent columns (source ``import``, proof ``text_version``). Every purchase row becomes an
``Order Completed`` event. Then two campaigns go out through a local SMTP server, "We miss you" to the
At risk and Can't lose them customers and "Picked for you" to the best ones (:mod:`.demo_campaign`), a
seeded share of the recipients opens, clicks and buys through the served API (:mod:`.demo_response`), and
the demo prints the campaign report, the lift against the holdout, and which template works better.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .bootstrap import Clarion
from .config import Settings
from .demo_campaign import run_campaign, show_campaign, show_response
from .domain.errors import ClarionError
from .services import predictions, rfm, stats
from .services.imports.importer import Importer, ImportOptions, ImportResult
from .services.imports.mappings import cdnow_external_id
from .services.segments import SegmentService

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CDNOW_DIR = REPO.parent / "shared" / "data" / "cdnow"
CONSENT_TEXT_VERSION = "demo-newsletter-v1"
CONSENT_GIVEN_AT = "1997-01-01T00:00:00Z"  # before the first CDNOW purchase
DATA_END = datetime(1998, 6, 30, 23, 59, 59, tzinfo=UTC)  # the last day of the CDNOW purchases: scores as of then
EXAMPLE_SEGMENT = ('country in ("US", "CA") and orders.count >= 2 and last_order_at within 90 days\n'
                   '  and not performed("Unsubscribed") and rfm.segment in ("champions", "loyal")')
FIRST = ["Ana", "Bruno", "Chloe", "Daniel", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Liam",
         "Mei", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera", "Will", "Yara"]
LAST = ["Silva", "Smith", "Muller", "Dubois", "Rossi", "Tanaka", "Kowalski", "Garcia", "Okafor", "Jensen",
        "Brown", "Novak", "Santos", "Khan", "Meyer", "Lopez"]
# (country, coordinates or None): coordinates exercise the map look-up, None the country's zone.
PLACES = [("US", (40.71, -74.01)), ("US", (41.88, -87.63)), ("US", (39.74, -104.99)), ("US", (34.05, -118.24)),
          ("US", (40.71, -74.01)), ("CA", (43.65, -79.38)), ("CA", (49.28, -123.12)), ("GB", None),
          ("DE", None), ("FR", None), ("NL", None), ("JP", None), ("IN", None), ("BR", (-23.55, -46.63)),
          ("AU", (-33.87, 151.21)), ("AU", (-31.95, 115.86)), ("ES", (40.42, -3.70)), ("US", None)]


def find_cdnow(explicit: str | None) -> Path:
    directory = Path(explicit or os.environ.get("CLARION_CDNOW_DIR") or DEFAULT_CDNOW_DIR)
    path = directory / "CDNOW_master.txt"
    if not path.is_file():
        raise SystemExit(f"CDNOW_master.txt not found in {directory} (use --cdnow-dir or CLARION_CDNOW_DIR)")
    return path


def slice_file(source: Path, target: Path, rows: int) -> Path:
    """The header and the first ``rows`` purchase rows of a CDNOW file."""
    with source.open("rb") as src, target.open("wb") as out:
        for number, line in enumerate(src):
            if number > rows:
                break
            out.write(line)
    return target


def customers_of(path: Path) -> list[str]:
    seen: dict[str, None] = {}
    with path.open(encoding="ascii") as handle:
        for line in handle:
            parts = line.split()
            if parts and parts[0].isdigit():
                seen.setdefault(cdnow_external_id(parts[0]), None)
    return list(seen)


def write_contacts(customers: list[str], target: Path, seed: int) -> Path:
    rng = random.Random(seed)
    with target.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        # Email consent comes along as the file's consent columns, as a business's own export would bring it.
        writer.writerow(["external_id", "email", "first_name", "last_name", "country", "latitude", "longitude",
                         "birthday", "consent.email", "consent.email.at", "consent.email.text_version"])
        for customer in customers:
            first, last = rng.choice(FIRST), rng.choice(LAST)
            country, point = rng.choice(PLACES)
            lat, lng = point if point else ("", "")
            birthday = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 54))
            writer.writerow([customer, f"{first}.{last}.{customer}@example.com".lower(), first, last, country,
                             lat, lng, birthday.isoformat(), "opted_in", CONSENT_GIVEN_AT, CONSENT_TEXT_VERSION])
    return target


def run(cdnow: Path, db: Path, limit: int | None = None, seed: int = 1997) -> dict:
    db.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    source = slice_file(cdnow, db.parent / "cdnow-slice.txt", limit) if limit else cdnow
    app = Clarion.from_settings(Settings(database_url=f"sqlite:///{db}", _env_file=None))
    try:
        app.migrate()
        importer = Importer(app.settings, app.store, app.contacts)
        contacts_file = write_contacts(customers_of(source), db.parent / "demo-contacts.csv", seed)
        rejects = db.parent / "rejects"
        people = importer.import_contacts(contacts_file, ImportOptions(reject_file=rejects / "contacts.csv"))
        orders = importer.import_events(source, ImportOptions(mapping="cdnow", reject_file=rejects / "events.csv"))
        scores = score(app)
        with app.store.read() as conn:
            summary = {"contacts_import": people, "events_import": orders, "consented": people.consents_recorded,
                       "totals": stats.totals(conn), "top": stats.top_customers(conn, 10),
                       "zones": stats.contacts_per_timezone(conn, 25), "database": str(db), **scores}
    finally:
        app.close()
    summary["campaign"] = run_campaign(f"sqlite:///{db}", db.parent, seed)
    return summary


def score(app: Clarion) -> dict:
    """RFM, the BG/NBD + Gamma-Gamma predictions and an example segment, all as of the data's last day."""
    segments = SegmentService(app.settings, clock=lambda: DATA_END)
    with app.store.write() as conn:
        rfm.compute(conn, as_of=DATA_END)
        try:
            fitted = predictions.predict_and_store(conn, predictions.PredictionSettings(as_of=DATA_END))
        except ClarionError as exc:  # a small --limit slice may be too little to fit
            fitted = str(exc)
        segments.create(conn, "loyal_north_americans", EXAMPLE_SEGMENT)
        refreshed = segments.refresh(conn, "loyal_north_americans")
        member = next(iter(segments.members(conn, "loyal_north_americans", limit=1)), None)
        return {"rfm": rfm.summary(conn), "predictions": fitted,
                "top_value": predictions.top_customers(conn, 10) if not isinstance(fitted, str) else [],
                "segment": {"text": segments.get(conn, "loyal_north_americans")["text"], "count": refreshed.members,
                            "explained": segments.explain(conn, "loyal_north_americans", member) if member else None}}


def show_scores(summary: dict, console: Console) -> None:
    segments = Table(title="RFM segments (as of 1998-06-30)", title_justify="left")
    for column in ("segment", "contacts", "avg orders", "avg revenue"):
        segments.add_column(column)
    for row in summary["rfm"]:
        segments.add_row(row["label"], f"{row['contacts']:,}", str(row["avg_orders"] or ""),
                         f"{row['avg_revenue']:,.2f}" if row["avg_revenue"] is not None else "")
    console.print(segments)
    fitted = summary["predictions"]
    if isinstance(fitted, str):
        console.print(f"predictions: {fitted}")
    else:
        bg, gg = fitted.bgnbd, fitted.gamma_gamma or {}
        console.print(f"BG/NBD r={bg['r']:.3f} alpha={bg['alpha']:.3f} a={bg['a']:.3f} b={bg['b']:.3f}; "
                      f"Gamma-Gamma p={gg.get('p', 0):.2f} q={gg.get('q', 0):.2f} v={gg.get('v', 0):.2f}")
        top = Table(title="Highest predicted lifetime value (next 365 days)", title_justify="left")
        for column in ("external id", "orders", "P(alive)", "expected orders (90 d)", "lifetime value"):
            top.add_column(column)
        for row in summary["top_value"]:
            top.add_row(row["external_id"], str(row["order_count"]), f"{row['p_alive']:.3f}",
                        f"{row['expected_purchases']:.2f}", f"{row['lifetime_value']:,.2f}")
        console.print(top)
    example = summary["segment"]
    console.print(f"[bold]Example segment[/bold] ({example['count']:,} members):\n{example['text']}", highlight=False)
    if example["explained"]:
        explained = example["explained"]
        console.print(f"why contact {explained['contact_id']} is a member:", highlight=False)
        for child in explained["children"]:
            mark = "✔" if child["holds"] else "✘"
            console.print(f"  {mark} {child['rule']}  {child['values']}", highlight=False, markup=False)


def show(summary: dict, console: Console) -> None:
    totals = summary["totals"]
    orders: ImportResult = summary["events_import"]
    console.print(f"[bold]Clarion demo[/bold] — {summary['database']}")
    console.print(f"contacts {totals['contacts']:,}  orders {totals['orders']:,}  revenue ${totals['revenue']:,.2f}  "
                  f"email consent {summary['consented']:,}  (events imported at {orders.rows_per_second:,.0f} rows/s)")
    top = Table(title="Top 10 customers by revenue", title_justify="left")
    for column in ("external id", "name", "country", "orders", "revenue"):
        top.add_column(column)
    for row in summary["top"]:
        top.add_row(row["external_id"], f"{row['first_name']} {row['last_name']}", row["country"] or "",
                    str(row["order_count"]), f"{row['revenue_total']:,.2f}")
    console.print(top)
    zones = Table(title="Contacts per time zone", title_justify="left")
    zones.add_column("time zone")
    zones.add_column("contacts", justify="right")
    for row in summary["zones"]:
        zones.add_row(row["timezone"], f"{row['contacts']:,}")
    console.print(zones)
    show_scores(summary, console)
    show_campaign(summary["campaign"], console)
    show_response(summary["campaign"]["response"], console)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cdnow-dir", help="Directory of CDNOW_master.txt (or CLARION_CDNOW_DIR).")
    parser.add_argument("--db", type=Path, default=Path("demo") / "clarion-demo.db")
    parser.add_argument("--limit", type=int, help="Only the first N purchase rows.")
    parser.add_argument("--seed", type=int, default=1997)
    args = parser.parse_args(argv)
    console = Console()
    with console.status("Loading CDNOW purchases..."):
        summary = run(find_cdnow(args.cdnow_dir), args.db, args.limit, args.seed)
    show(summary, console)


if __name__ == "__main__":
    main()

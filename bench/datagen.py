"""Deterministic synthetic contacts and events for the benchmarks (and reusable by later ones).

The same seed and sizes always give byte-identical files, so figures are comparable across runs.
Events follow a plausible shop: mostly product views, some cart adds, about 1 in 8 an order.
"""

from __future__ import annotations

import argparse
import random
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

FIRST = ["Ana", "Bruno", "Chloé", "Dmitri", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
         "Liam", "Mei", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera"]
LAST = ["Silva", "Smith", "Müller", "Dubois", "Rossi", "Tanaka", "Kowalski", "García", "Okafor", "Jensen"]
# (country, phone prefix and digits that make a valid mobile number in that country)
# (country, a valid mobile number); the generator replaces its last six digits with the contact's
# number, so phones are unique up to a million contacts.
COUNTRIES = [("US", "+12125551234"), ("GB", "+447400123456"), ("FR", "+33612345678"), ("DE", "+4915112345678"),
             ("BR", "+5511987654321"), ("JP", "+819012345678"), ("PT", "+351912345678"), ("IN", "+919876543210")]
EVENT_NAMES = ["Product Viewed"] * 5 + ["Product Added"] * 2 + ["Order Completed"]
START = datetime(2025, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 365 * 24 * 3600

CONTACT_HEADER = "external_id,email,first_name,last_name,phone,country,birthday\n"
EVENT_HEADER = "message_id,external_id,event,timestamp,revenue,currency,sku\n"


def _ascii(name: str) -> str:
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()


def _phone(index: int, valid_number: str) -> str:
    return f"{valid_number[:-6]}{index % 1_000_000:06d}"


def write_contacts(path: Path, count: int, seed: int = 7) -> Path:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(CONTACT_HEADER)
        lines = []
        for i in range(1, count + 1):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            country, prefix = rng.choice(COUNTRIES)
            birthday = f"{rng.randint(1950, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            lines.append(f"c{i},{_ascii(first)}.{_ascii(last)}.{i}@example.com,{first},{last},"
                         f"{_phone(i, prefix)},{country},{birthday}\n")
            if len(lines) == 10_000:
                out.writelines(lines)
                lines.clear()
        out.writelines(lines)
    return path


def write_events(path: Path, count: int, contacts: int, seed: int = 11) -> Path:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(EVENT_HEADER)
        lines = []
        for i in range(1, count + 1):
            name = rng.choice(EVENT_NAMES)
            at = (START + timedelta(seconds=rng.randrange(SPAN_SECONDS))).strftime("%Y-%m-%dT%H:%M:%SZ")
            revenue = f"{rng.uniform(5, 300):.2f}" if name == "Order Completed" else ""
            currency = "USD" if revenue else ""
            lines.append(f"e{i},c{rng.randint(1, contacts)},{name},{at},{revenue},{currency},"
                         f"SKU-{rng.randint(1, 5000)}\n")
            if len(lines) == 10_000:
                out.writelines(lines)
                lines.clear()
        out.writelines(lines)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(write_contacts(args.out / f"contacts-{args.contacts}.csv", args.contacts))
    print(write_events(args.out / f"events-{args.events}.csv", args.events, args.contacts))


if __name__ == "__main__":
    main()

"""Reading ``CDNOW_sample.txt`` (the paper's 1/10 sample) for the scoring tests."""

from __future__ import annotations

from datetime import date, datetime


def cdnow_sample_purchases(cdnow_dir) -> list[tuple[int, date, float]]:
    """(sample id, day, dollars) per row of CDNOW_sample.txt: master_id sample_id YYYYMMDD cds dollars."""
    purchases = []
    with open(cdnow_dir / "CDNOW_sample.txt") as handle:
        for line in handle:
            _, sample_id, day, _, dollars = line.split()
            purchases.append((int(sample_id), datetime.strptime(day, "%Y%m%d").date(), float(dollars)))
    return purchases

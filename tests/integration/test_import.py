"""Bulk import: CDNOW counts, idempotent re-import, rejects for every kind of bad row, unknown columns.

Every test runs on SQLite and PostgreSQL (the ``app`` fixture).
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from clarion.services import aggregates
from clarion.services.imports.importer import Importer, ImportOptions
from clarion.services.imports.mappings import parse_map_options
from clarion.services.stats import totals
from clarion.store.schema import contact_aggregates, contacts, events

CDNOW_CUSTOMERS = 23_570
CDNOW_ORDERS = 69_659


def _importer(app) -> Importer:
    return Importer(app.settings, app.store, app.contacts)


def _cdnow_revenue(path: Path) -> float:
    lines = path.read_text().splitlines()[1:]
    return float(sum(Decimal(line.split()[3]) for line in lines if line.strip()))


def _aggregate_sums(app) -> tuple:
    with app.store.read() as conn:
        count, orders, events_, revenue = conn.execute(select(
            func.count(), func.sum(contact_aggregates.c.order_count), func.sum(contact_aggregates.c.event_count),
            func.sum(contact_aggregates.c.revenue_total))).one()
    return count, orders, events_, round(float(revenue), 2)


def _rejects(path: Path) -> dict[int, str]:
    with path.open(encoding="utf-8", newline="") as handle:
        return {int(row["line"]): row["reason"] for row in csv.DictReader(handle)}


def test_cdnow_import_counts_and_reimport_is_idempotent(app, cdnow_dir, tmp_path):
    # given the CDNOW purchases file
    master = cdnow_dir / "CDNOW_master.txt"
    options = ImportOptions(mapping="cdnow", reject_file=tmp_path / "rejects.csv")
    # when it is imported as events
    first = _importer(app).import_events(master, options)
    # then there is one contact per customer and one order per row, with the file's revenue
    assert (first.rows_read, first.imported, first.rejected) == (CDNOW_ORDERS, CDNOW_ORDERS, 0)
    assert first.contacts_created == CDNOW_CUSTOMERS
    with app.store.read() as conn:
        figures = totals(conn)
    assert figures["contacts"] == CDNOW_CUSTOMERS and figures["orders"] == CDNOW_ORDERS
    assert abs(figures["revenue"] - _cdnow_revenue(master)) < 0.01
    before = _aggregate_sums(app)
    # when the same file is imported again
    second = _importer(app).import_events(master, options)
    # then nothing is added and the aggregates are unchanged
    assert (second.imported, second.unchanged, second.contacts_created) == (0, CDNOW_ORDERS, 0)
    with app.store.read() as conn:
        assert totals(conn) == figures
    assert _aggregate_sums(app) == before
    # and the incremental aggregates agree with a rebuild from the events
    with app.store.write() as conn:
        aggregates.rebuild(conn)
    assert _aggregate_sums(app) == before


def test_cdnow_customer_id_loses_leading_zeros_and_time_is_midnight_utc(app, tmp_path):
    # given two purchases of customer 00042 on the same day (identical rows are separate purchases)
    path = tmp_path / "cdnow.txt"
    path.write_bytes(b"customer_id date number_of_cds dollar_value\r\n"
                     b" 00042 19970105  2  29.33\r\n 00042 19970105  2  29.33\r\n")
    # when imported
    result = _importer(app).import_events(path, ImportOptions(mapping="cdnow", reject_file=tmp_path / "r.csv"))
    # then both are stored for external id "42" at 1997-01-05T00:00Z
    assert result.imported == 2
    with app.store.read() as conn:
        contact_id = app.contacts.find(conn, "external_id", "42")
        rows = conn.execute(select(events).where(events.c.contact_id == contact_id)).all()
    assert [r.occurred_at.isoformat() for r in rows] == ["1997-01-05T00:00:00+00:00"] * 2
    assert rows[0].properties == {"quantity": 2, "revenue": 29.33, "currency": "USD"}
    assert rows[0].revenue == 29.33 and rows[0].currency == "USD"


def test_bad_contact_rows_are_rejected_with_line_and_reason(app, tmp_path):
    # given an erased contact and a contact owning another email
    with app.store.write() as conn:
        gone = app.contacts.identify(conn, app_ids(email="gone@example.com"))
        app.contacts.identify(conn, app_ids(external_id="owner", email="taken@example.com"))
    with app.store.write() as conn:
        app.gdpr.erase(conn, gone)
    # and a file with good rows and one bad row of each kind
    path = tmp_path / "contacts.csv"
    path.write_bytes(b"\n".join([
        b"external_id,email,phone,timezone,birthday",
        b"u1,ana@example.com,+33612345678,,1990-02-28",  # 2 good
        b"u2,not-an-email,,,",  # 3 bad email
        b"u3,,12,,",  # 4 bad phone
        b"u4,,,Mars/Olympus,",  # 5 unknown time zone
        b"u5,,,,1990-13-45",  # 6 bad date
        b"u6,six@example.com",  # 7 wrong column count
        b"u7,caf\xe9@example.com,,,",  # 8 undecodable bytes
        b"u1,other@example.com,,,",  # 9 duplicate key within the file
        b"u9,gone@example.com,,,",  # 10 erased contact
        b"u10,taken@example.com,,,",  # 11 conflict with contact 'owner'
        b"u11,bea@example.com,,Europe/Lisbon,",  # 12 good
    ]) + b"\n")
    # when imported
    result = _importer(app).import_contacts(path, ImportOptions(reject_file=tmp_path / "rejects.csv"))
    # then each bad row is in the reject file with its line number and reason, and the good rows are kept
    reasons = _rejects(tmp_path / "rejects.csv")
    assert sorted(reasons) == list(range(3, 12))
    assert reasons[3].startswith("email:") and reasons[4].startswith("phone:")
    assert "Mars/Olympus" in reasons[5] and reasons[6].startswith("birthday:")
    assert "expected 5 columns, found 2" in reasons[7] and "UTF-8" in reasons[8]
    assert "duplicate external_id 'u1'" in reasons[9]
    assert reasons[10].startswith("erased") and reasons[11].startswith("conflict")
    assert (result.rows_read, result.imported, result.rejected) == (11, 2, 9)
    assert result.reject_file == str(tmp_path / "rejects.csv")
    with app.store.read() as conn:
        ana = app.contacts.get(conn, app.contacts.find(conn, "external_id", "u1"))
        bea = app.contacts.get(conn, app.contacts.find(conn, "external_id", "u11"))
    assert (ana["phone"], ana["timezone"], ana["timezone_source"]) == ("+33612345678", "Europe/Paris", "phone")
    assert ana["birthday"].isoformat() == "1990-02-28"
    assert (bea["timezone"], bea["timezone_source"]) == ("Europe/Lisbon", "explicit")


def app_ids(**kwargs):
    from clarion.services.identity import Identifiers

    return Identifiers(**kwargs)


def test_contacts_reimport_is_unchanged_and_changes_are_applied(app, tmp_path):
    # given contacts imported once
    path = tmp_path / "people.csv"
    path.write_text("external_id,email,first_name,country\nc1,c1@example.com,Ana,FR\nc2,c2@example.com,Bo,DE\n")
    importer = _importer(app)
    first = importer.import_contacts(path, ImportOptions(reject_file=tmp_path / "r.csv"))
    # when the same file is imported again, then nothing changes
    again = importer.import_contacts(path, ImportOptions(reject_file=tmp_path / "r.csv"))
    assert (first.imported, again.imported, again.unchanged) == (2, 0, 2)
    # when one row changes, then only that contact is updated
    path.write_text("external_id,email,first_name,country\nc1,c1@example.com,Anna,FR\nc2,c2@example.com,Bo,DE\n")
    third = importer.import_contacts(path, ImportOptions(reject_file=tmp_path / "r.csv"))
    assert (third.imported, third.unchanged) == (1, 1)
    with app.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(contacts)).scalar_one() == 2
        row = app.contacts.get(conn, app.contacts.find(conn, "email", "c1@example.com"))
    assert (row["first_name"], row["timezone"], row["timezone_source"]) == ("Anna", "Europe/Paris", "country")


def test_unknown_columns_are_kept_only_when_asked(app, tmp_path):
    # given a file with a mapped email column and an unknown "tier" column
    path = tmp_path / "crm.csv"
    path.write_text("CustomerID,E-mail,tier,renewal_date\nk1,k1@example.com,gold,2026-03-01\n")
    mapping = parse_map_options(["email=E-mail", "external_id=CustomerID"])
    importer = _importer(app)
    # when imported without --keep-unknown, then the columns are ignored and reported
    plain = importer.import_contacts(path, ImportOptions(columns=mapping, reject_file=tmp_path / "r.csv"))
    assert plain.unknown_columns == ["renewal_date", "tier"]
    with app.store.read() as conn:
        profile = app.contacts.get(conn, app.contacts.find(conn, "external_id", "k1"))
    assert profile["email"] == "k1@example.com" and profile["attributes"] == {}
    # when imported with --keep-unknown, then they become custom attributes and dates
    kept = importer.import_contacts(path, ImportOptions(columns=mapping, keep_unknown=True,
                                                        reject_file=tmp_path / "r.csv"))
    assert kept.imported == 1 and kept.unknown_columns == []
    with app.store.read() as conn:
        profile = app.contacts.get(conn, app.contacts.find(conn, "external_id", "k1"))
    assert profile["attributes"] == {"tier": "gold"}
    assert profile["custom_dates"] == {"renewal_date": "2026-03-01"}


def test_bad_event_rows_are_rejected_and_good_rows_kept(app, tmp_path):
    # given an erased contact
    with app.store.write() as conn:
        gone = app.contacts.identify(conn, app_ids(external_id="gone"))
    with app.store.write() as conn:
        app.gdpr.erase(conn, gone)
    # and an events file with good rows and bad ones
    path = tmp_path / "events.csv"
    path.write_bytes(b"\n".join([
        b"message_id,external_id,event,timestamp,revenue,currency",
        b"m1,a,Order Completed,2024-05-01T10:00:00Z,12.50,EUR",  # 2 good
        b"m2,a,Product Viewed,yesterday,,",  # 3 bad date
        b"m3,a,Product Viewed",  # 4 wrong column count
        b"m4,\xff\xfe,Product Viewed,2024-05-01T10:00:00Z,,",  # 5 undecodable
        b"m1,b,Product Viewed,2024-05-01T10:00:00Z,,",  # 6 duplicate message id
        b"m6,gone,Product Viewed,2024-05-01T10:00:00Z,,",  # 7 erased contact
        b"m7,b,Order Completed,2024-05-02T10:00:00+02:00,7,USD",  # 8 good
    ]) + b"\n")
    # when imported
    result = _importer(app).import_events(path, ImportOptions(reject_file=tmp_path / "rejects.csv"))
    # then
    reasons = _rejects(tmp_path / "rejects.csv")
    assert sorted(reasons) == [3, 4, 5, 6, 7]
    assert reasons[3].startswith("timestamp:") and "expected 6 columns" in reasons[4]
    assert "UTF-8" in reasons[5] and "duplicate message_id" in reasons[6] and reasons[7].startswith("erased")
    assert (result.imported, result.rejected, result.contacts_created) == (2, 5, 2)
    with app.store.read() as conn:
        figures = totals(conn)
    assert (figures["orders"], figures["revenue"]) == (2, 19.5)


def test_jsonl_events_with_derived_message_ids_are_idempotent(app, tmp_path):
    # given JSON Lines events without message ids
    path = tmp_path / "events.jsonl"
    path.write_text('{"userId": "j1", "event": "Product Viewed", "timestamp": "2024-01-01T00:00:00Z", '
                    '"properties": {"sku": "A1"}}\n'
                    '{"email": "J2@Example.com", "event": "Order Completed", "timestamp": "2024-01-02", '
                    '"properties": {"revenue": 5}}\n[1, 2]\n')
    importer = _importer(app)
    # when imported twice
    first = importer.import_events(path, ImportOptions(reject_file=tmp_path / "r.csv"))
    second = importer.import_events(path, ImportOptions(reject_file=tmp_path / "r.csv"))
    # then the events are stored once, the non-object line is rejected each time
    assert (first.imported, first.rejected, second.imported, second.unchanged) == (2, 1, 0, 2)
    with app.store.read() as conn:
        assert app.contacts.find(conn, "email", "j2@example.com")
        assert totals(conn)["events"] == 2

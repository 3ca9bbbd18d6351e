"""Consent columns of a contact import: opt-ins come along, opt-outs and suppressions are never overturned
without a newer dated proof, and a bad row is rejected whole with its reason while the others go in.

Every test runs on SQLite and PostgreSQL (the ``app`` fixture).
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from clarion.domain.consent import Channel, ConsentStatus, SuppressionReason
from clarion.domain.errors import FieldError
from clarion.services.identity import Identifiers
from clarion.services.imports.importer import Importer, ImportOptions
from clarion.services.imports.mappings import parse_map_options


def _import(app, tmp_path: Path, text: str, **options):
    path = tmp_path / "people.csv"
    path.write_text(text, encoding="utf-8")
    return Importer(app.settings, app.store, app.contacts).import_contacts(
        path, ImportOptions(reject_file=tmp_path / "rejects.csv", **options))


def _rejects(tmp_path: Path) -> dict[int, str]:
    path = tmp_path / "rejects.csv"
    if not path.exists():
        return {}
    with path.open(encoding="utf-8", newline="") as handle:
        return {int(row["line"]): row["reason"] for row in csv.DictReader(handle)}


def _contact(app, email: str) -> int:
    with app.store.read() as conn:
        return app.contacts.find(conn, "email", email)


def _state(app, email: str) -> dict[tuple[str, str], str]:
    with app.store.read() as conn:
        return app.consent.state(conn, _contact(app, email))


def _ledger(app, email: str) -> list[dict]:
    with app.store.read() as conn:
        return app.consent.ledger(conn, _contact(app, email))


def _existing(app, email: str, first_name: str = "Old") -> int:
    from clarion.domain.profiles import ProfilePatch

    with app.store.write() as conn:
        return app.contacts.identify(conn, Identifiers(email=email), ProfilePatch(first_name=first_name))


def test_consent_columns_reach_the_ledger_with_their_proof(app, tmp_path):
    # given a topic and a file with email consent for every topic, a topic consent and a dated proof
    with app.store.write() as conn:
        app.consent.create_topic(conn, "news", "News")
    text = ("email,consent.email,consent.email.at,consent.email.form,consent.email.source,consent.sms/news\n"
            "ana@example.com,subscribed,2024-03-01T10:00:00Z,footer,Mailchimp signup,\n"
            "bo@example.com,opted_out,,,,\n")
    # when it is imported
    result = _import(app, tmp_path, text)
    # then each stated consent is in the ledger with source import, its date and its proof
    assert (result.imported, result.rejected, result.consents_recorded) == (2, 0, 2)
    assert _state(app, "ana@example.com") == {("email", "*"): "opted_in"}
    entry = _ledger(app, "ana@example.com")[0]
    assert entry["source"] == "import" and entry["occurred_at"] == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert entry["proof"] == {"form": "footer", "source": "Mailchimp signup"}
    assert _state(app, "bo@example.com") == {("email", "*"): "opted_out"}


def test_reimporting_the_same_file_adds_nothing_to_the_ledger(app, tmp_path):
    # given a file with consent columns, imported once
    text = "email,consent.email,consent.email.at\nana@example.com,opted_in,2024-03-01\nbo@example.com,yes,\n"
    _import(app, tmp_path, text)
    before = (_ledger(app, "ana@example.com"), _ledger(app, "bo@example.com"))
    # when it is imported again
    again = _import(app, tmp_path, text)
    # then no consent is recorded twice
    assert again.consents_recorded == 0 and again.rejected == 0
    assert (_ledger(app, "ana@example.com"), _ledger(app, "bo@example.com")) == before


def test_an_opt_out_is_not_overturned_without_a_newer_dated_proof(app, tmp_path):
    # given a contact who opted out on 2025-06-01
    contact_id = _existing(app, "ana@example.com")
    with app.store.write() as conn:
        app.consent.record(conn, contact_id, Channel.EMAIL, ConsentStatus.OPTED_OUT, source="unsubscribe_link",
                           occurred_at=datetime(2025, 6, 1, tzinfo=UTC))
    header = "email,first_name,consent.email,consent.email.at,consent.email.text_version\n"
    # when an old export opts her in without a date, or with a date before the opt-out
    undated = _import(app, tmp_path, header + "ana@example.com,Ana,opted_in,,\nnew@example.com,Neo,opted_in,,\n")
    undated_rejects = _rejects(tmp_path)
    older = _import(app, tmp_path, header + "ana@example.com,Ana,opted_in,2025-01-01,v1\n")
    older_rejects = _rejects(tmp_path)
    # then her rows are rejected with the reason, her profile and consent are unchanged, and the other row is in
    assert (undated.rejected, undated.imported, older.rejected) == (1, 1, 1)
    assert "opted out of every topic since 2025-06-01" in undated_rejects[2]
    assert "dated proof newer" in undated_rejects[2]
    assert "after this consent of 2025-01-01" in older_rejects[2]
    with app.store.read() as conn:
        assert app.contacts.get(conn, contact_id)["first_name"] == "Old"
    assert _state(app, "ana@example.com") == {("email", "*"): "opted_out"}
    assert _state(app, "new@example.com") == {("email", "*"): "opted_in"}
    # when the row carries a proof dated after the opt-out
    newer = _import(app, tmp_path, header + "ana@example.com,Ana,opted_in,2025-09-01,v2\n")
    # then she is opted in again, with that proof
    assert (newer.rejected, newer.consents_recorded) == (0, 1)
    assert _state(app, "ana@example.com") == {("email", "*"): "opted_in"}
    assert _ledger(app, "ana@example.com")[-1]["proof"] == {"text_version": "v2"}


def test_suppressed_addresses_stay_suppressed(app, tmp_path):
    # given one address suppressed after a complaint and one after an unsubscribe, on 2025-06-01
    _existing(app, "angry@example.com")
    with app.store.write() as conn:
        app.consent.suppress(conn, "email", "angry@example.com", SuppressionReason.COMPLAINT)
        app.consent.suppress(conn, "email", "left@example.com", SuppressionReason.UNSUBSCRIBE)
    header = "email,consent.email,consent.email.at,consent.email.form\n"
    # when both are opted in by an undated row, and later by rows with a newer dated proof
    undated = _import(app, tmp_path, header + "angry@example.com,opted_in,,\nleft@example.com,opted_in,,\n")
    undated_rejects = _rejects(tmp_path)
    today = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    dated = _import(app, tmp_path, header + f"angry@example.com,opted_in,{today},signup\n"
                                            f"left@example.com,opted_in,{today},signup\n")
    dated_rejects = _rejects(tmp_path)
    # then undated rows are refused for both; the complaint is never lifted; the unsubscribe is, by newer proof
    assert undated.rejected == 2 and "suppressed (complaint)" in undated_rejects[2]
    assert "suppressed (unsubscribe)" in undated_rejects[3]
    assert dated.rejected == 1 and "a consent does not lift it" in dated_rejects[2]
    assert dated.suppressions_lifted == 1
    with app.store.read() as conn:
        assert app.consent.suppression(conn, "email", "left@example.com") is None
        assert app.consent.suppression(conn, "email", "angry@example.com")["reason"] == "complaint"
    assert _state(app, "left@example.com") == {("email", "*"): "opted_in"}


def test_opt_outs_always_go_through(app, tmp_path):
    # given a contact opted in now
    contact_id = _existing(app, "ana@example.com")
    with app.store.write() as conn:
        app.consent.record(conn, contact_id, Channel.SMS, ConsentStatus.OPTED_IN, source="api")
    # when a file opts her out, undated
    result = _import(app, tmp_path, "email,consent.sms\nana@example.com,unsubscribed\n")
    # then the opt-out is recorded
    assert (result.rejected, result.consents_recorded) == (0, 1)
    assert _state(app, "ana@example.com") == {("sms", "*"): "opted_out"}


def test_bad_consent_values_reject_the_row_with_the_column_named(app, tmp_path):
    # given rows with an unknown status, a date in the future and an unknown topic
    text = ("email,consent.email,consent.email.at,consent.email/vip\n"
            "a@example.com,maybe,,\n"
            "b@example.com,opted_in,2999-01-01,\n"
            "c@example.com,,,opted_in\n"
            "d@example.com,opted_in,2024-01-01,\n")
    # when imported
    result = _import(app, tmp_path, text)
    rejects = _rejects(tmp_path)
    # then each bad row is rejected with the column and the reason, and the good row is in
    assert (result.imported, result.rejected) == (1, 3)
    assert rejects[2].startswith("consent.email: 'maybe' is not a consent status")
    assert rejects[3].startswith("consent.email.at: '2999-01-01' is in the future")
    assert rejects[4].startswith("consent.email/vip: unknown topic 'vip'")
    assert _state(app, "d@example.com") == {("email", "*"): "opted_in"}
    with app.store.read() as conn:
        with pytest.raises(Exception, match="not found"):
            app.contacts.find(conn, "email", "a@example.com")


def test_listmonk_statuses_and_double_opt_in_topics(app, tmp_path):
    # given a double opt-in topic and listmonk's statuses, one confirmation with its date
    with app.store.write() as conn:
        app.consent.create_topic(conn, "weekly", "Weekly", double_opt_in=True)
    text = ("email,consent.email/weekly,consent.email/weekly.confirmed_at\n"
            "u@example.com,unconfirmed,\n"
            "c@example.com,confirmed,2024-02-02T08:00:00Z\n"
            "n@example.com,confirmed,\n")
    # when imported
    result = _import(app, tmp_path, text)
    # then unconfirmed and unproven confirmations are pending, the proven one is opted in
    assert result.consents_recorded == 3
    assert _state(app, "u@example.com") == {("email", "weekly"): "pending_confirmation"}
    assert _state(app, "c@example.com") == {("email", "weekly"): "opted_in"}
    assert _state(app, "n@example.com") == {("email", "weekly"): "pending_confirmation"}


def test_a_constant_consent_applies_to_rows_without_the_column(app, tmp_path):
    # given a Mailchimp "subscribed" export: no status column, the opt-in time in its own column
    text = "Email Address,OPTIN_TIME\nana@example.com,2023-05-04 10:11:12\nbo@example.com,2023-06-01 00:00:00\n"
    # when imported with the status set for every row and the date column mapped
    result = _import(app, tmp_path, text, constants={"consent.email": "subscribed",
                                                     "consent.email.source": "Mailchimp export"},
                     columns=parse_map_options(["email=Email Address", "consent.email.at=OPTIN_TIME"]))
    # then both are opted in from their own dates
    assert (result.imported, result.consents_recorded) == (2, 2)
    entry = _ledger(app, "ana@example.com")[0]
    assert entry["occurred_at"] == datetime(2023, 5, 4, 10, 11, 12, tzinfo=UTC)
    assert entry["proof"] == {"source": "Mailchimp export"}


def test_a_misspelt_map_target_fails_before_anything_is_written(app, tmp_path):
    # given a mapping whose target is misspelt
    columns = parse_map_options(["externalid=CustomerID"])
    # when the import starts, then it fails with the nearest field, and nothing was imported
    with pytest.raises(FieldError, match="unknown contact field 'externalid'; did you mean 'external_id'"):
        _import(app, tmp_path, "CustomerID,email\nk1,k1@example.com\n", columns=columns)
    with pytest.raises(FieldError, match="unknown consent part|is not a part of a consent"):
        _import(app, tmp_path, "email\nk1@example.com\n", columns=parse_map_options(["consent.email.wen=When"]))
    with app.store.read() as conn:
        with pytest.raises(Exception, match="not found"):
            app.contacts.find(conn, "email", "k1@example.com")


def test_custom_attributes_are_named_explicitly(app, tmp_path):
    # given a mapping to an attribute and a custom date, and a file column named as an attribute
    columns = parse_map_options(["external_id=CustomerID", "attributes.tier=LoyaltyTier",
                                 "custom_dates.renewal=Renewal"])
    text = "CustomerID,LoyaltyTier,Renewal,attributes.shoe_size\nk1,gold,2026-03-01,42\n"
    # when imported
    result = _import(app, tmp_path, text, columns=columns)
    # then the values are where they were named
    assert result.imported == 1 and result.unknown_columns == []
    with app.store.read() as conn:
        profile = app.contacts.get(conn, app.contacts.find(conn, "external_id", "k1"))
    assert profile["attributes"] == {"tier": "gold", "shoe_size": "42"}
    assert profile["custom_dates"] == {"renewal": "2026-03-01"}


def test_a_refused_consent_undoes_the_merge_its_row_asked_for(app, tmp_path):
    # given a contact known by email who opted out, and another known by external id
    opted_out = _existing(app, "ana@example.com")
    with app.store.write() as conn:
        app.consent.record(conn, opted_out, Channel.EMAIL, ConsentStatus.OPTED_OUT, source="api")
        other = app.contacts.identify(conn, Identifiers(external_id="k1"))
    # when a row joins both identifiers (a merge) and opts the email in without a proof
    result = _import(app, tmp_path, "external_id,email,consent.email\nk1,ana@example.com,opted_in\n")
    # then the row is rejected and neither contact changed
    assert result.rejected == 1 and "opted out of every topic" in _rejects(tmp_path)[2]
    with app.store.read() as conn:
        assert app.contacts.find(conn, "external_id", "k1") == other
        assert app.contacts.find(conn, "email", "ana@example.com") == opted_out
    assert _state(app, "ana@example.com") == {("email", "*"): "opted_out"}

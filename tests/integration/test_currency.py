"""The workspace currency and the user's rate table: stored in workspace_settings, checked, shown by the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clarion.cli import main as cli_main
from clarion.domain.errors import FieldError
from clarion.services.currency import get_currency, set_currency

runner = CliRunner()
cli = cli_main.app


def _run(app, *args: str):
    return runner.invoke(cli, ["--database-url", app.settings.database_url, *args])


def test_an_unset_workspace_is_in_dollars_without_rates(app):
    with app.store.read() as conn:
        assert get_currency(conn).model_dump() == {"currency": "USD", "rates": {}}


def test_the_currency_and_rates_are_stored_upper_cased_and_replaced_as_a_whole(app):
    # given a table set in lower case, then replaced by one in euros
    with app.store.write() as conn:
        set_currency(conn, {"currency": "usd", "rates": {"eur": 1.08, "GBP": 1.27}})
    with app.store.read() as conn:
        first = get_currency(conn)
    with app.store.write() as conn:
        set_currency(conn, {"currency": "EUR", "rates": {"USD": 0.93}})
    with app.store.read() as conn:
        second = get_currency(conn)
    # then each read gives what was last set
    assert first.model_dump() == {"currency": "USD", "rates": {"EUR": 1.08, "GBP": 1.27}}
    assert second.model_dump() == {"currency": "EUR", "rates": {"USD": 0.93}}


@pytest.mark.parametrize(("document", "field", "words"), [
    ({"currency": "US"}, "currency", "ISO 4217"),
    ({"currency": "dollar"}, "currency", "ISO 4217"),
    ({"currency": "USD", "rates": {"EURO": 1}}, "rates", "ISO 4217"),
    ({"currency": "USD", "rates": {"EUR": 0}}, "rates", "positive finite"),
    ({"currency": "USD", "rates": {"EUR": -1.08}}, "rates", "positive finite"),
    ({"currency": "USD", "rates": {"EUR": "inf"}}, "rates", "positive finite"),
    ({"currency": "USD", "rates": {"EUR": "NaN"}}, "rates", "positive finite"),
    ({"currency": "USD", "rates": {"EUR": True}}, "rates", "not a number"),
    ({"currency": "USD", "rates": {"EUR": "a lot"}}, "rates", "not a number"),
    ({"currency": "USD", "rates": {"USD": 1}}, "rates", "workspace currency"),
    ({"currency": "USD", "fetch": "ecb"}, "fetch", "Extra inputs"),
])
def test_a_wrong_table_is_refused_naming_the_field_and_changes_nothing(app, document, field, words):
    with app.store.write() as conn:
        set_currency(conn, {"currency": "USD", "rates": {"EUR": 1.08}})
    with pytest.raises(FieldError) as error, app.store.write() as conn:
        set_currency(conn, document)
    assert error.value.field == field and words in error.value.reason
    with app.store.read() as conn:
        assert get_currency(conn).rates == {"EUR": 1.08}


def test_the_cli_sets_and_shows_the_table(app):
    # when the currency is set with two rates and shown, as JSON and as text
    stored = _run(app, "currency", "set", "usd", "--rate", "EUR=1.08", "--rate", "gbp=1.27", "--json")
    shown = _run(app, "currency", "show", "--json")
    text = _run(app, "currency", "show")
    # then both answers give the table, and the text names each rate
    assert stored.exit_code == 0, stored.output
    expected = {"currency": "USD", "rates": {"EUR": 1.08, "GBP": 1.27}}
    assert json.loads(stored.stdout) == expected and json.loads(shown.stdout) == expected
    assert "Workspace currency: USD" in text.stdout and "EUR" in text.stdout and "1.27" in text.stdout


@pytest.mark.parametrize(("args", "words"), [
    (("USD", "--rate", "EUR"), "is not CODE=RATE"),
    (("USD", "--rate", "EUR=1.08", "--rate", "eur=1.1"), "given twice"),
    (("USD", "--rate", "EUR=-2"), "positive finite"),
    (("DOLLARS",), "ISO 4217"),
])
def test_the_cli_refuses_a_wrong_rate_in_one_line(app, args, words):
    result = _run(app, "currency", "set", *args)
    assert result.exit_code == 1 and words in result.output and "Traceback" not in result.output

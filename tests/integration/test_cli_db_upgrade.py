"""``clarion db upgrade`` says what it did: created the schema, migrated it from one revision to another, or
found it current; ``--json`` gives status, revision, previous_revision and created."""

from __future__ import annotations

import json

from alembic import command
from sqlalchemy import inspect
from typer.testing import CliRunner

from clarion.cli.main import app as cli
from clarion.store.migrate import alembic_config, head_revision

runner = CliRunner()


def _upgrade(url: str, *args: str):
    result = runner.invoke(cli, ["--database-url", url, "db", "upgrade", *args])
    assert result.exit_code == 0, result.output
    return result


def test_a_new_database_is_created_at_the_latest_revision(app):
    # given a database without the Clarion schema
    command.downgrade(alembic_config(app.store.engine), "base")
    assert "contacts" not in inspect(app.store.engine).get_table_names()
    # when it is upgraded
    result = _upgrade(app.settings.database_url, "--json")
    # then it says it created the schema, at the latest revision
    assert json.loads(result.stdout) == {"status": "created", "revision": head_revision(),
                                         "previous_revision": None, "created": True}
    assert "contacts" in inspect(app.store.engine).get_table_names()


def test_an_older_schema_is_migrated_and_says_from_which_revision(app):
    # given a database at the first revision
    command.downgrade(alembic_config(app.store.engine), "0001")
    # when it is upgraded
    result = _upgrade(app.settings.database_url)
    # then the line names both revisions
    assert result.stdout.strip() == f"Migrated the schema from revision 0001 to {head_revision()}."


def test_a_current_schema_is_left_alone_and_says_so(app):
    # given a database at the latest revision; when it is upgraded, as text and as JSON
    text = _upgrade(app.settings.database_url)
    data = json.loads(_upgrade(app.settings.database_url, "--json").stdout)
    # then both say it already was at that revision
    assert text.stdout.strip() == f"The schema is already at the latest revision, {head_revision()}."
    assert data == {"status": "current", "revision": head_revision(), "previous_revision": head_revision(),
                    "created": False}


def test_a_new_sqlite_file_says_created(tmp_path):
    # given a path where no database exists yet
    url = f"sqlite:///{tmp_path / 'new.db'}"
    # when it is upgraded
    result = _upgrade(url)
    # then the one line says the schema was created, and at which revision
    assert result.stdout.strip() == f"Created the schema at revision {head_revision()}."

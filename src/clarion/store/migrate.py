"""Run the Alembic migrations from code (``clarion db upgrade``) without an alembic.ini on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SchemaStatus = Literal["current", "behind", "missing", "unknown"]


@dataclass(frozen=True)
class Migration:
    """What an upgrade did: the revision before (None: there was no schema) and the one after."""

    previous_revision: str | None
    revision: str | None

    @property
    def created(self) -> bool:
        return self.previous_revision is None

    @property
    def status(self) -> Literal["created", "migrated", "current"]:
        if self.created:
            return "created"
        return "current" if self.previous_revision == self.revision else "migrated"

    def as_dict(self) -> dict:
        return {"status": self.status, "revision": self.revision, "previous_revision": self.previous_revision,
                "created": self.created}


def alembic_config(engine: Engine | None = None, url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> Migration:
    previous = current_revision(engine)
    command.upgrade(alembic_config(engine), revision)
    return Migration(previous, current_revision(engine))


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The latest revision this Clarion's migrations know."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def schema_status(engine: Engine) -> tuple[SchemaStatus, str | None, str | None]:
    """(status, the database's revision, the latest): current, behind, missing (no schema), or unknown
    (a revision these migrations do not have, e.g. written by a newer Clarion)."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return "current", current, head
    if current is None:
        return "missing", current, head
    try:
        known = ScriptDirectory.from_config(alembic_config()).get_revision(current) is not None
    except CommandError:  # Alembic's answer for an id none of its scripts has
        known = False
    return ("behind" if known else "unknown"), current, head

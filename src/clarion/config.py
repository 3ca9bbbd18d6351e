"""Typed settings, read from the environment (prefix ``CLARION_``) and an optional ``.env`` file.

Nothing here connects to anything: :mod:`clarion.bootstrap` builds the objects from a ``Settings``.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SQLITE_FILE = "clarion.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLARION_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{Path.cwd() / DEFAULT_SQLITE_FILE}",
        description="SQLAlchemy URL: sqlite:///path.db (default) or postgresql+psycopg://user@host/db",
    )
    # Used when a contact's time zone cannot be found from its profile (see domain.profiles).
    default_timezone: str = "UTC"
    # Region assumed for phone numbers written without a country code (ISO 3166-1 alpha-2).
    default_phone_region: str = "US"
    # Salt for the hashes kept after erasure and in the suppression list. Set it once per
    # installation and never change it: the tombstones of erased contacts depend on it.
    hash_salt: str = "clarion-dev-salt-change-me"
    # SQLite waits this long for another writer before failing (milliseconds).
    sqlite_busy_timeout_ms: int = 30_000
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Contacts written per transaction by the bulk importer.
    import_batch_size: int = 5_000
    # Events per transaction: each statement and commit costs about the same for 5,000 rows as
    # for 50,000 (SQLite rewrites every index page a batch touches); ~60 MB of Python objects.
    import_event_batch_size: int = 50_000
    # `clarion serve` looks this often for segments whose scheduled refresh is due (seconds; 0: never).
    segment_scheduler_seconds: float = 60.0

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("default_phone_region")
    @classmethod
    def _region_upper(cls, value: str) -> str:
        return value.upper()

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

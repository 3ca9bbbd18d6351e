"""Typed settings, read from the environment (prefix ``CLARION_``) and an optional ``.env`` file.

Nothing here connects to anything: :mod:`clarion.bootstrap` builds the objects from a ``Settings``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
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

    # -- delivery -------------------------------------------------------------------------------
    # Where recipients reach Clarion: unsubscribe links and the one-click List-Unsubscribe URL.
    public_url: str = "http://127.0.0.1:8000"
    # Signs unsubscribe links (tracking.links). Set it once per installation, like hash_salt.
    link_secret: str = "clarion-dev-link-secret-change-me"
    # email: smtp (production), file (one .eml per message in email_file_dir) or console.
    email_transport: Literal["smtp", "file", "console"] = "smtp"
    email_file_dir: str = "outbox"
    email_from: str = "news@example.com"
    email_from_name: str = "Clarion"
    # mailto: for List-Unsubscribe besides the https URL (RFC 2369); empty: none.
    email_unsubscribe_mailto: str = ""
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_timeout_seconds: float = 30.0
    smtp_tls_verify: bool = True
    smtp_ca_file: str = ""
    # Connections per worker, and across all workers (0: no shared limit).
    smtp_pool_size: int = 4
    smtp_max_connections: int = 0
    smtp_max_messages_per_connection: int = 1_000
    # Messages per second across all workers for email (0: unlimited), and the burst allowed.
    email_rate_per_second: float = 0.0
    email_rate_burst: float = 100.0
    # DKIM: signing is on when domain, selector and key file are all set.
    dkim_domain: str = ""
    dkim_selector: str = ""
    dkim_key_file: str = ""
    # Workers: deliveries leased per batch, how long a lease lasts (seconds) and the idle poll (seconds).
    worker_batch_size: int = 500
    worker_lease_seconds: float = 300.0
    worker_poll_seconds: float = 1.0
    # Retries: full-jitter exponential backoff from base to cap (seconds).
    retry_base_seconds: float = 30.0
    retry_cap_seconds: float = 3_600.0
    # SMS: twilio, console (development) or none. Twilio's API base URL is a setting so tests can use a peer.
    sms_transport: Literal["twilio", "console", "none"] = "none"
    sms_from: str = ""  # E.164 number or alphanumeric sender; empty: the messaging service (sender pool)
    sms_opt_out_hint: str = "Reply STOP to unsubscribe."
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_messaging_service_sid: str = ""
    twilio_base_url: str = "https://api.twilio.com"
    # Ask Twilio for delivery receipts at {public_url}/hooks/twilio/sms/status (needs a public https URL).
    twilio_status_callbacks: bool = False
    sms_rate_per_second: float = 0.0
    sms_concurrency: int = 4
    # Web push endpoints on loopback or private addresses are refused (SSRF); tests with a local push
    # service turn this on.
    webpush_allow_private_endpoints: bool = False
    # `clarion serve` runs a delivery worker in the same process (the SQLite set-up).
    serve_worker: bool = True

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

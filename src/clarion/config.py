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
    # Amazon SES feedback through SNS (POST {public_url}/hooks/ses, docs/channels/ses.md): the SNS topic ARNs
    # accepted, comma-separated; empty accepts any topic whose signature verifies.
    ses_topic_arns: str = ""
    # Tests only: route the SNS certificate fetch to a local peer (curl --resolve form "host:port:address")
    # and trust its certificate authority. Empty in production.
    ses_certificate_resolve: str = ""
    ses_certificate_ca_file: str = ""
    # SendGrid Event Webhook (POST {public_url}/hooks/sendgrid): the Verification Key SendGrid shows (base64 DER);
    # empty: every request is refused.
    sendgrid_webhook_public_key: str = ""
    # Ask Twilio for delivery receipts at {public_url}/hooks/twilio/sms/status (needs a public https URL).
    twilio_status_callbacks: bool = False
    sms_rate_per_second: float = 0.0
    sms_concurrency: int = 4
    # WhatsApp Business Cloud API: on when the phone number id and access token are set. The Graph API base
    # URL is a setting so tests can use a peer. The app secret checks X-Hub-Signature-256 on webhooks; the
    # verify token answers Meta's subscription handshake.
    whatsapp_phone_number_id: str = ""
    whatsapp_access_token: str = ""
    whatsapp_base_url: str = "https://graph.facebook.com"
    whatsapp_api_version: str = "v21.0"
    whatsapp_app_secret: str = ""
    whatsapp_verify_token: str = ""
    whatsapp_rate_per_second: float = 0.0  # 0: unlimited (Cloud API: 80 messages/s per number by default)
    whatsapp_concurrency: int = 8
    # Voice calls through Twilio's Calls API (the account settings above): twilio, console or none.
    voice_transport: Literal["twilio", "console", "none"] = "none"
    voice_from: str = ""  # the caller id, an E.164 number of the account
    voice_default_voice: str = ""  # a Twilio <Say> voice ("Polly.Joanna"); empty: Twilio's default
    voice_rate_per_second: float = 1.0  # Twilio's default CPS for a new account
    voice_concurrency: int = 2
    # Mobile push. FCM: on when the service-account JSON file is set (its token_uri is used as given).
    fcm_service_account_file: str = ""
    fcm_base_url: str = "https://fcm.googleapis.com"
    fcm_project_id: str = ""  # empty: the service account's project_id
    # APNs: on when key file, key id, team id and topic are set. Production or sandbox base URL.
    apns_key_file: str = ""  # the .p8 signing key (PEM, ES256)
    apns_key_id: str = ""
    apns_team_id: str = ""
    apns_topic: str = ""  # the app's bundle id
    apns_base_url: str = "https://api.push.apple.com"
    apns_ca_file: str = ""  # tests: trust a local peer's certificate authority
    push_concurrency: int = 16
    push_rate_per_second: float = 0.0
    # Web push: the VAPID key pair (PEM file of the private key) and the contact claim (mailto: or https:).
    webpush_vapid_private_key_file: str = ""
    webpush_vapid_subject: str = ""
    webpush_concurrency: int = 16
    webpush_ca_file: str = ""  # tests: trust a local push service's certificate authority
    # Web push endpoints on loopback or private addresses are refused (SSRF); tests with a local push
    # service turn this on.
    webpush_allow_private_endpoints: bool = False
    # Webhook channel: POST signed JSON to this URL (a campaign may name its own in its settings).
    webhook_url: str = ""
    webhook_secret: str = ""  # HMAC-SHA256 key of the X-Clarion-Signature header
    webhook_timeout_seconds: float = 10.0
    webhook_concurrency: int = 8
    webhook_allow_private_urls: bool = False  # tests only: allow loopback and private addresses
    # Events webhook ("Currents", docs/webhooks-out.md): every engagement, in signed batches, to this URL.
    events_webhook_url: str = ""
    events_webhook_secret: str = ""  # HMAC-SHA256 key of X-Clarion-Signature (t=...,v1=...); required with the URL
    events_webhook_format: Literal["json", "jsonl"] = "json"
    events_webhook_batch_size: int = Field(default=500, ge=1, le=10_000)  # engagements per request
    events_webhook_max_attempts: int = Field(default=8, ge=1, le=50)  # then the batch is dead-lettered
    # Full-jitter backoff: retry n waits up to base * 2**n seconds, capped (8 attempts: at most ~21 minutes).
    events_webhook_retry_base_seconds: float = Field(default=10.0, gt=0)
    events_webhook_retry_cap_seconds: float = Field(default=1800.0, gt=0)
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

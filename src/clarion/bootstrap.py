"""The composition root: the one place that builds Clarion's objects from its settings.

Nothing is built at import time; ``Clarion.from_settings()`` connects lazily (SQLAlchemy opens
connections on first use) and ``close()`` releases them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from .config import Settings
from .services import bulk_load
from .services.consent import ConsentService
from .services.contacts import ContactService
from .services.events import EventService
from .services.gdpr import GdprService
from .services.keys import KeyService
from .services.tracking import TrackingService
from .store.engine import Store, make_engine
from .store.migrate import upgrade


@dataclass
class Clarion:
    settings: Settings
    store: Store

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Clarion:
        settings = settings or Settings()
        engine = make_engine(settings.database_url, sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        return cls(settings=settings, store=Store(engine))

    def migrate(self) -> None:
        """The schema at the latest revision, and the end of any bulk load that died unfinished."""
        upgrade(self.store.engine)
        with self.store.write() as conn:
            bulk_load.finish(conn)

    @cached_property
    def contacts(self) -> ContactService:
        return ContactService(self.settings)

    @cached_property
    def events(self) -> EventService:
        return EventService()

    @cached_property
    def consent(self) -> ConsentService:
        return ConsentService(self.settings.hash_salt)

    @cached_property
    def gdpr(self) -> GdprService:
        return GdprService(self.contacts, self.consent, self.settings.hash_salt)

    @cached_property
    def tracking(self) -> TrackingService:
        return TrackingService(self.settings, self.contacts, self.events)

    @cached_property
    def keys(self) -> KeyService:
        return KeyService()

    def close(self) -> None:
        self.store.dispose()

"""The composition root: the one place that builds Clarion's objects from its settings.

Nothing is built at import time; ``Clarion.from_settings()`` connects lazily (SQLAlchemy opens
connections on first use) and ``close()`` releases them. The services, and Alembic for ``migrate()``,
are imported when first used: a CLI command pays only for what it touches (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from .config import Settings
from .store.engine import Store, make_engine

if TYPE_CHECKING:
    from .services.consent import ConsentService
    from .services.contacts import ContactService
    from .services.events import EventService
    from .services.gdpr import GdprService
    from .services.ingestion import IngestionService
    from .services.keys import KeyService
    from .store.migrate import Migration


@dataclass
class Clarion:
    settings: Settings
    store: Store

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Clarion:
        settings = settings or Settings()
        engine = make_engine(settings.database_url, sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        return cls(settings=settings, store=Store(engine))

    def migrate(self) -> Migration:
        """The schema at the latest revision, and the end of any bulk load that died unfinished."""
        from .services.imports import bulk_load
        from .store.migrate import upgrade

        migration = upgrade(self.store.engine)
        with self.store.write() as conn:
            bulk_load.finish(conn)
        return migration

    @cached_property
    def contacts(self) -> ContactService:
        from .services.contacts import ContactService

        return ContactService(self.settings)

    @cached_property
    def events(self) -> EventService:
        from .services.events import EventService

        return EventService()

    @cached_property
    def consent(self) -> ConsentService:
        from .services.consent import ConsentService

        return ConsentService(self.settings.hash_salt)

    @cached_property
    def gdpr(self) -> GdprService:
        from .services.gdpr import GdprService

        return GdprService(self.contacts, self.consent, self.settings.hash_salt)

    @cached_property
    def ingestion(self) -> IngestionService:
        from .services.ingestion import IngestionService

        return IngestionService(self.settings, self.contacts, self.events)

    @cached_property
    def keys(self) -> KeyService:
        from .services.keys import KeyService

        return KeyService()

    def close(self) -> None:
        self.store.dispose()

"""Tables of outgoing event webhooks ("Currents"): on the same metadata as :mod:`schema`.

The stream's cursor is a document in ``workspace_settings`` (key ``currents``); this module holds the
batches the receiver never took: after the last retry a batch is parked here, the stream moves on, and
``clarion events dead-letters retry ID`` sends it again.
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, Table, Text

from .schema import metadata
from .types import Id, Json, UtcDateTime

webhook_dead_letters = Table(
    "webhook_dead_letters",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("created_at", UtcDateTime, nullable=False),
    # The engagements the batch carried (engagements.id, inclusive), for the operator and the ordering.
    Column("first_engagement_id", Id, nullable=False),
    Column("last_engagement_id", Id, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    # The envelope as sent ({"events": [...]}); a retry re-signs it with a fresh timestamp.
    Column("payload", Json, nullable=False),
)

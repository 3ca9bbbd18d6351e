"""The workspace's delivery defaults (quiet hours, caps, holdout): ``workspace_settings`` key ``delivery``."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, select

from ..domain.campaigns import DeliveryDefaults
from ..domain.errors import FieldError
from ..store.schema_scores import workspace_settings
from ..store.workspace import read_document, write_document
from .clock import utcnow

SETTINGS_KEY = "delivery"


def get_defaults(conn: Connection) -> DeliveryDefaults:
    document = read_document(conn, SETTINGS_KEY)
    return DeliveryDefaults() if document is None else DeliveryDefaults.model_validate(document)


def defaults_version(conn: Connection) -> Any:
    """When the defaults last changed (None: never set), so cached campaign policies can be refreshed."""
    return conn.execute(select(workspace_settings.c.updated_at)
                        .where(workspace_settings.c.key == SETTINGS_KEY)).scalar()


def set_defaults(conn: Connection, document: Any) -> DeliveryDefaults:
    defaults = parse_model(DeliveryDefaults, document)
    write_document(conn, SETTINGS_KEY, defaults.model_dump(mode="json"), utcnow())
    return defaults


def parse_model(model: type, document: Any, prefix: str = ""):
    """A pydantic model from a document, or a FieldError naming the first wrong field."""
    try:
        return model.model_validate(document if document is not None else {})
    except ValidationError as exc:
        error = exc.errors()[0]
        path = ".".join(str(part) for part in error["loc"])
        if not path:  # the document as a whole: name it by the prefix ("schedule")
            prefix, path = "", prefix.rstrip(".") or "document"
        raise FieldError(prefix + path, error["msg"].removeprefix("Value error, ")) from None

"""Saved templates: validated when saved (syntax, unknown variables, sizes), previewed for a contact."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from ..content.context import RenderContext
from ..content.errors import InvalidTemplate
from ..content.render import CHANNELS, RenderSettings, render, validate
from ..content.template_store import template_from_document, template_to_document
from ..domain.errors import Conflict, FieldError, NotFound
from ..store.schema import contacts
from ..store.schema_delivery import campaigns, templates
from .clock import utcnow


class TemplateService:
    def __init__(self, default_timezone: str = "UTC") -> None:
        self.render_settings = RenderSettings(default_timezone=default_timezone)

    def save(self, conn: Connection, name: str, document: Any, *, description: str | None = None) -> dict[str, Any]:
        """Creates or replaces ``name``; raises :class:`InvalidTemplate` with every problem found."""
        name = (name or "").strip()
        if not name or len(name) > 100:
            raise FieldError("name", "a template name is 1 to 100 characters")
        template = template_from_document(document)
        problems = validate(template)
        if problems:
            raise InvalidTemplate(problems)
        now = utcnow()
        stored = template_to_document(template)
        existing = conn.execute(select(templates.c.id).where(templates.c.name == name)).scalar()
        if existing is None:
            conn.execute(templates.insert().values(name=name, description=description, document=stored,
                                                   created_at=now, updated_at=now))
        else:
            conn.execute(update(templates).where(templates.c.id == existing).values(
                document=stored, description=description, updated_at=now))
            # Campaigns using it reload it: their version is their updated_at.
            conn.execute(update(campaigns).where(campaigns.c.template_id == existing).values(updated_at=now))
        return self.get(conn, name)

    def get(self, conn: Connection, name: str) -> dict[str, Any]:
        row = conn.execute(select(templates).where(templates.c.name == name)).first()
        if row is None:
            raise NotFound("template", name)
        return dict(row._mapping)

    def list(self, conn: Connection) -> list[dict[str, Any]]:
        return [{"id": r.id, "name": r.name, "description": r.description, "updated_at": r.updated_at,
                 "channels": sorted(r.document.get("default", {}))}
                for r in conn.execute(select(templates).order_by(templates.c.name))]

    def delete(self, conn: Connection, name: str) -> None:
        row = self.get(conn, name)
        users = list(conn.execute(select(campaigns.c.name).where(campaigns.c.template_id == row["id"])).scalars())
        if users:
            raise Conflict(f"template {name!r} is used by campaigns: {', '.join(users)}")
        conn.execute(templates.delete().where(templates.c.id == row["id"]))

    def preview(self, conn: Connection, name: str, contact_id: int, channel: str | None = None) -> dict[str, Any]:
        template = template_from_document(self.get(conn, name)["document"])
        profile = conn.execute(select(contacts).where(contacts.c.id == contact_id)).first()
        if profile is None:
            raise NotFound("contact", contact_id)
        context = RenderContext(contact=dict(profile._mapping), campaign={"id": 0, "name": "preview"},
                                links={"unsubscribe": "https://example.invalid/u/preview"})
        message = render(template, context, self.render_settings,
                         channels=(channel,) if channel else CHANNELS)
        return {"locale": message.locale, "timezone": message.timezone, "undefined": list(message.undefined),
                **{ch: _plain(getattr(message, ch)) for ch in CHANNELS
                   if getattr(message, ch) is not None}}


def _plain(part: Any) -> Any:
    return part if isinstance(part, dict) else dict(part.__dict__)

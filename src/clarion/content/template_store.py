"""A :class:`~.content.Template` as the JSON document stored in ``templates.document``, and back.

    {"default_locale": "en",
     "default": {"email": {"subject": "...", "mjml": "<mjml>...</mjml>"}, "sms": {"text": "..."}},
     "variants": {"pt-BR": {"email": {"subject": "...", "html": "..."}}}}

An email may be given as ``html`` or ``mjml``; MJML is compiled when the document is read for saving
(:func:`template_from_document`) and stored as the HTML it produced, so sends never compile it again.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from .errors import InvalidTemplate, Problem
from .model import (
    Content,
    EmailContent,
    ExportContent,
    InAppContent,
    PushContent,
    SmsContent,
    Template,
    VoiceContent,
    WebhookContent,
    WebPushContent,
    WhatsAppContent,
)

_KINDS = {"email": EmailContent, "sms": SmsContent, "push": PushContent, "webpush": WebPushContent,
          "webhook": WebhookContent, "whatsapp": WhatsAppContent, "voice": VoiceContent, "inapp": InAppContent,
          "export": ExportContent}


def template_from_document(document: Any) -> Template:
    """Raises :class:`InvalidTemplate` naming every field that is wrong."""
    if not isinstance(document, dict):
        raise InvalidTemplate([Problem("template", "must be a JSON object", kind="unsupported")])
    unknown = set(document) - {"default_locale", "default", "variants"}
    if unknown:
        raise InvalidTemplate([Problem(name, "unknown field", kind="unsupported") for name in sorted(unknown)])
    default = _content(document.get("default"), "default")
    variants = document.get("variants") or {}
    if not isinstance(variants, dict):
        raise InvalidTemplate([Problem("variants", "must map locale tags to content", kind="unsupported")])
    return Template(default=default, variants={tag: _content(value, f"variants.{tag}") for tag, value in
                                               variants.items()},
                    default_locale=str(document.get("default_locale") or "en"))


def template_to_document(template: Template) -> dict[str, Any]:
    return {"default_locale": template.default_locale, "default": _content_document(template.default),
            "variants": {tag: _content_document(content) for tag, content in template.variants.items()}}


def _content(value: Any, path: str) -> Content:
    if not isinstance(value, dict) or not value:
        raise InvalidTemplate([Problem(path, "must be an object with at least one channel", kind="unsupported")])
    parts: dict[str, Any] = {}
    for channel, body in value.items():
        if channel not in _KINDS:
            raise InvalidTemplate([Problem(f"{path}.{channel}", f"unknown channel; one of {', '.join(_KINDS)}",
                                           kind="unsupported")])
        parts[channel] = _channel_content(channel, body, f"{path}.{channel}")
    return Content(**parts)


def _channel_content(channel: str, body: Any, path: str) -> Any:
    if not isinstance(body, dict):
        raise InvalidTemplate([Problem(path, "must be an object", kind="unsupported")])
    if channel == "webhook":
        return WebhookContent(body.get("body"))
    if channel == "email" and "mjml" in body:
        extra = {k: v for k, v in body.items() if k not in ("mjml", "html")}
        _known(EmailContent, extra, path, allowed={"subject", "preheader", "text"})
        if "html" in body:
            raise InvalidTemplate([Problem(path, "give html or mjml, not both", kind="unsupported")])
        return EmailContent.from_mjml(mjml=body["mjml"], **extra)
    _known(_KINDS[channel], body, path)
    try:
        return _KINDS[channel](**body)
    except TypeError as exc:
        raise InvalidTemplate([Problem(path, str(exc), kind="unsupported")]) from None


def _known(kind: type, body: dict[str, Any], path: str, allowed: set[str] | None = None) -> None:
    names = allowed or {f.name for f in fields(kind)}
    unknown = sorted(set(body) - names)
    if unknown:
        raise InvalidTemplate([Problem(f"{path}.{name}", f"unknown field; one of {', '.join(sorted(names))}",
                                       kind="unsupported") for name in unknown])


def _content_document(content: Content) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for channel in _KINDS:
        part = getattr(content, channel)
        if part is not None:
            document[channel] = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(part).items()
                                 if v is not None}
            if channel == "export":  # pairs keep the columns' order through JSONB (see ExportContent)
                document[channel]["columns"] = [[name, text] for name, text in part.columns.items()]
    return document

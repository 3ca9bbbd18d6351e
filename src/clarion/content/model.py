"""What a template says on each channel, for its default locale and its locale variants.

Every text field is a Jinja template (``Hi {{ contact.first_name }}``). The same dataclasses hold the
rendered result, with the fields filled in. A :class:`Template` is immutable: build a new one to change it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from typing import Any, NamedTuple

from clarion.domain.errors import FieldError
from clarion.domain.profiles import parse_locale

from .errors import InvalidTemplate, Problem
from .html import compile_mjml

CHANNELS = ("email", "sms", "push", "webpush", "webhook", "whatsapp", "voice", "inapp", "export")


class TemplatePart(NamedTuple):
    """One template text: its name (``email.subject``), source, and whether HTML escaping applies."""

    name: str
    source: str
    autoescape: bool


@dataclass(frozen=True)
class EmailContent:
    """``text`` is derived from ``html`` with inscriptis when it is ``None``."""

    subject: str
    html: str
    preheader: str = ""
    text: str | None = None

    @classmethod
    def from_mjml(cls, subject: str, mjml: str, preheader: str = "", text: str | None = None) -> EmailContent:
        """Compiles the MJML once, now; raises :class:`InvalidTemplate` listing its problems."""
        return cls(subject=subject, html=compile_mjml(mjml), preheader=preheader, text=text)

    def parts(self) -> Iterator[TemplatePart]:
        yield TemplatePart("email.subject", self.subject, False)
        yield TemplatePart("email.preheader", self.preheader, False)
        yield TemplatePart("email.html", self.html, True)
        if self.text is not None:
            yield TemplatePart("email.text", self.text, False)


@dataclass(frozen=True)
class SmsContent:
    text: str

    def parts(self) -> Iterator[TemplatePart]:
        yield TemplatePart("sms.text", self.text, False)


@dataclass(frozen=True)
class PushContent:
    """A mobile push notification (FCM, APNs). ``badge`` and ``sound`` are plain values, not templates."""

    title: str
    body: str
    image: str | None = None
    deep_link: str | None = None
    badge: int | None = None
    sound: str | None = None

    def parts(self) -> Iterator[TemplatePart]:
        yield from _text_parts("push", self, ("title", "body", "image", "deep_link"))


@dataclass(frozen=True)
class WebPushContent:
    title: str
    body: str
    icon: str | None = None
    url: str | None = None

    def parts(self) -> Iterator[TemplatePart]:
        yield from _text_parts("webpush", self, ("title", "body", "icon", "url"))


def _text_parts(channel: str, content: Any, names: tuple[str, ...]) -> Iterator[TemplatePart]:
    for name in names:
        value = getattr(content, name)
        if value is not None:
            yield TemplatePart(f"{channel}.{name}", value, False)


@dataclass(frozen=True)
class WhatsAppContent:
    """An approved WhatsApp template (its name, language and body parameters, each a Jinja template) and/or
    free-form ``text``. Outside the 24-hour customer-service window only the template may be sent."""

    template: str | None = None
    language: str = "en_US"
    parameters: tuple[str, ...] = ()
    text: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", tuple(self.parameters or ()))
        if not self.template and not self.text:
            raise InvalidTemplate([Problem("whatsapp", "give an approved template name, free-form text, or both",
                                           kind="unsupported")])
        if not all(isinstance(p, str) for p in self.parameters):
            raise InvalidTemplate([Problem("whatsapp.parameters", "parameters are texts", kind="unsupported")])

    def parts(self) -> Iterator[TemplatePart]:
        for index, parameter in enumerate(self.parameters):
            yield TemplatePart(f"whatsapp.parameters[{index}]", parameter, False)
        if self.text is not None:
            yield TemplatePart("whatsapp.text", self.text, False)


@dataclass(frozen=True)
class VoiceContent:
    """What a call says when answered (in the variant's language); ``voice`` names a provider voice."""

    say: str
    voice: str | None = None

    def parts(self) -> Iterator[TemplatePart]:
        yield TemplatePart("voice.say", self.say, False)


@dataclass(frozen=True)
class InAppContent:
    """A message kept in the contact's in-app inbox until read."""

    title: str
    body: str
    url: str | None = None
    image: str | None = None

    def parts(self) -> Iterator[TemplatePart]:
        yield from _text_parts("inapp", self, ("title", "body", "url", "image"))


@dataclass(frozen=True)
class ExportContent:
    """Columns of an offline export (direct mail, call lists): column name → template of its text.

    Given as an object or as a list of ``[name, text]`` pairs; stored as pairs, because PostgreSQL's JSONB
    does not keep the keys of an object in order, and the columns' order is the file's.
    """

    columns: Mapping[str, str]

    def __post_init__(self) -> None:
        if isinstance(self.columns, (list, tuple)) and all(
                isinstance(pair, (list, tuple)) and len(pair) == 2 for pair in self.columns):
            object.__setattr__(self, "columns", dict(self.columns))
        if not isinstance(self.columns, Mapping) or not self.columns:
            raise InvalidTemplate([Problem("export.columns", "map column names to texts", kind="unsupported")])
        bad = [name for name, text in self.columns.items() if not isinstance(name, str) or not isinstance(text, str)]
        if bad:
            raise InvalidTemplate([Problem("export.columns", f"column {bad[0]!r}: names and texts are strings",
                                           kind="unsupported")])
        object.__setattr__(self, "columns", dict(self.columns))

    def parts(self) -> Iterator[TemplatePart]:
        for name, text in self.columns.items():
            yield TemplatePart(f"export.columns.{name}", text, False)


@dataclass(frozen=True)
class WebhookContent:
    """A JSON document whose string values are templates; ``body`` may be given as JSON text."""

    body: Any

    def __post_init__(self) -> None:
        if isinstance(self.body, str):
            try:
                object.__setattr__(self, "body", json.loads(self.body))
            except json.JSONDecodeError as exc:
                raise InvalidTemplate([Problem("webhook.body", f"not JSON: {exc.msg}", line=exc.lineno)]) from None

    def parts(self) -> Iterator[TemplatePart]:
        yield from (TemplatePart(path, text, False) for path, text in json_strings(self.body, "webhook.body"))


def json_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string in a JSON document, with its path (``webhook.body.items[0].name``)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from json_strings(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from json_strings(item, f"{path}[{index}]")


@dataclass(frozen=True)
class Content:
    """One locale's content, per channel; a channel left ``None`` is not sent (or, in a variant, inherited)."""

    email: EmailContent | None = None
    sms: SmsContent | None = None
    push: PushContent | None = None
    webpush: WebPushContent | None = None
    webhook: WebhookContent | None = None
    whatsapp: WhatsAppContent | None = None
    voice: VoiceContent | None = None
    inapp: InAppContent | None = None
    export: ExportContent | None = None

    def parts(self) -> Iterator[TemplatePart]:
        for channel in CHANNELS:
            content = getattr(self, channel)
            if content is not None:
                yield from content.parts()

    def over(self, default: Content) -> Content:
        """This content, with the channels it leaves out taken from ``default``."""
        missing = {f.name: getattr(default, f.name) for f in fields(self) if getattr(self, f.name) is None}
        return replace(self, **missing)


class Variant(NamedTuple):
    locale: str  # the variant's tag, or the template's default locale
    content: Content


@dataclass(frozen=True)
class Template:
    """Content for ``default_locale`` plus variants keyed by BCP 47 tag (``pt-BR``, ``pt``, ``fr``).

    :meth:`variant_for` picks the most specific variant for a recipient's locale (``pt-BR``, then
    ``pt``, then the default); a variant's missing channels come from the default content.
    """

    default: Content
    variants: Mapping[str, Content] = field(default_factory=dict)
    default_locale: str = "en"

    def __post_init__(self) -> None:
        try:
            normalised = {parse_locale(tag): content for tag, content in self.variants.items()}
            object.__setattr__(self, "default_locale", parse_locale(self.default_locale))
        except FieldError as exc:
            raise InvalidTemplate([Problem("locale", exc.reason, kind="unsupported")]) from None
        object.__setattr__(self, "variants", normalised)
        object.__setattr__(self, "_merged", {tag: c.over(self.default) for tag, c in normalised.items()})

    def variant_for(self, locale: str | None) -> Variant:
        merged: dict[str, Content] = self._merged  # type: ignore[attr-defined]
        for tag in locale_fallbacks(locale):
            if tag in merged:
                return Variant(tag, merged[tag])
        return Variant(self.default_locale, self.default)

    def contents(self) -> Iterator[tuple[str | None, Content]]:
        """The default content (locale ``None``) and each variant as written (not merged)."""
        yield None, self.default
        yield from self.variants.items()


@lru_cache(maxsize=1024)
def locale_fallbacks(locale: str | None) -> tuple[str, ...]:
    """``zh-Hant-TW`` → ``zh-Hant-TW``, ``zh-Hant``, ``zh``; nothing for a missing or malformed tag."""
    if not locale:
        return ()
    try:
        subtags = parse_locale(locale).split("-")
    except FieldError:
        return ()
    return tuple("-".join(subtags[:n]) for n in range(len(subtags), 0, -1))

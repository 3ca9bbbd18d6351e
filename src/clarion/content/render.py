"""Rendering a template for one recipient: the public face of the content layer.

    template = Template(Content(email=EmailContent.from_mjml("Hi {{ contact.first_name }}", mjml),
                                sms=SmsContent("{{ contact.first_name }}, 20% off today: {{ links.shop }}")),
                        variants={"pt-BR": Content(sms=SmsContent("..."))})
    problems = validate(template)                    # when saving: syntax, unknown fields, ...
    message = render(template, RenderContext(contact=row, campaign={"id": 7, "name": "Spring"},
                                             links={"unsubscribe": url}))

Rendering is pure (no database, no network) and cheap per message: each template text is compiled
once (:data:`~.sandbox.COMPILED`), and the text part of an HTML email is derived once per template.
What can go wrong for one recipient raises :class:`RenderError` naming the part; compiling and
deriving are not charged to the message's time budget.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import Template as JinjaTemplate
from jinja2 import TemplateSyntaxError
from jinja2.exceptions import SecurityError

from clarion.domain.profiles import zoneinfo

from .context import RenderContext
from .errors import InvalidTemplate, LimitExceeded, Problem, RenderError, UndefinedVariable, UnsafeTemplate
from .filters import babel_locale
from .html import compile_mjml, html_to_text, inline_css, text_template, tidy_text, with_preheader
from .limits import DEFAULT_LIMITS, PartCap, RenderLimits, RenderState, rendering
from .model import (
    CHANNELS,
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
from .sandbox import COMPILED, CompiledTemplates
from .validation import validate

__all__ = [
    "CHANNELS", "Content", "EmailContent", "InvalidTemplate", "LimitExceeded", "Problem", "PushContent",
    "RenderContext", "RenderError", "RenderLimits", "RenderSettings", "RenderedMessage", "SmsContent", "Template",
    "UndefinedVariable", "UnsafeTemplate", "WebPushContent", "WebhookContent", "compile_mjml", "inline_css",
    "render", "validate",
]


@dataclass(frozen=True)
class RenderSettings:
    """``default_timezone`` for contacts without a valid zone; ``strict``: undefined names are errors."""

    default_timezone: str = "UTC"
    limits: RenderLimits = DEFAULT_LIMITS
    strict: bool = False


@dataclass(frozen=True)
class RenderedMessage:
    """The rendered parts of the channels asked for, and what the render used and met."""

    locale: str  # the content variant used: "pt-BR", "pt" or the template's default locale
    format_locale: str  # numbers and dates: the recipient's locale, or the template's default
    timezone: str
    email: EmailContent | None = None
    sms: SmsContent | None = None
    push: PushContent | None = None
    webpush: WebPushContent | None = None
    webhook: dict[str, Any] | None = None
    whatsapp: WhatsAppContent | None = None
    voice: VoiceContent | None = None
    inapp: InAppContent | None = None
    export: ExportContent | None = None
    undefined: tuple[str, ...] = ()  # names met that the recipient does not have, in order


DEFAULT_SETTINGS = RenderSettings()


def render(template: Template, context: RenderContext, settings: RenderSettings = DEFAULT_SETTINGS,
           channels: Collection[str] = CHANNELS, cache: CompiledTemplates = COMPILED) -> RenderedMessage:
    """Renders ``channels`` of ``template`` for one recipient; raises :class:`RenderError` for that recipient."""
    variant = template.variant_for(context.locale)
    locale = babel_locale(context.locale, template.default_locale)
    zone = zoneinfo(context.timezone, settings.default_timezone)
    state = RenderState(settings.limits, locale, zone, settings.strict)
    parts = _Parts(state, context.variables(), cache)
    rendered: dict[str, Any] = {}
    with rendering(state):
        state.start_clock()
        for channel in CHANNELS:
            content = getattr(variant.content, channel)
            if content is not None and channel in channels:
                rendered[channel] = _RENDERERS[channel](parts, content)
    return RenderedMessage(locale=variant.locale, format_locale=str(locale).replace("_", "-"), timezone=zone.key,
                           undefined=tuple(state.undefined), **rendered)


class _Parts:
    """Renders the parts of one message, each within its output cap."""

    def __init__(self, state: RenderState, variables: dict[str, Any], cache: CompiledTemplates) -> None:
        self.state = state
        self.variables = variables
        self.cache = cache

    def render(self, part: str, source: str | None, autoescape: bool = False, cap_name: str | None = None) -> Any:
        if not source or is_literal(source):  # Jinja would give it back unchanged: skip the machinery
            return source
        compiled = self.compiled(part, source, autoescape)
        self.state.part = part
        cap = self.state.limits.caps[cap_name or part]
        try:
            return _stream(compiled, self.variables, cap, part)
        except RenderError:
            raise
        except SecurityError as exc:
            raise UnsafeTemplate(part, f"blocked by the sandbox: {exc}") from None
        except RecursionError:
            raise LimitExceeded(part, "macros or loops nested too deeply") from None
        except Exception as exc:  # the template is code written by a user: its failures are outcomes
            raise RenderError(part, f"{type(exc).__name__}: {exc}") from exc

    def compiled(self, part: str, source: str, autoescape: bool) -> JinjaTemplate:
        hit = self.cache.cached(source, autoescape)
        if hit is not None:  # the usual case: no clock is read (a CPU clock read is a system call on some hosts)
            return hit
        with self.state.paused():  # compiling is paid once per template, not by this message
            try:
                return self.cache.get(source, autoescape)
            except TemplateSyntaxError as exc:
                raise RenderError(part, f"line {exc.lineno}: {exc.message}") from None

    def derived_text(self, html_source: str) -> str | None:
        with self.state.paused():
            return text_template(html_source)

    def check(self, cap_name: str, *texts: str | None) -> None:
        cap = self.state.limits.caps[cap_name]
        size = sum(_measure(text, cap) for text in texts if text)
        if size > cap.limit:
            raise LimitExceeded(cap_name, f"{size:,} {cap.unit} is over the {cap.limit:,} allowed ({cap.source})")


def is_literal(source: str) -> bool:
    """Text that renders as itself: no ``{`` (so no ``{{``, ``{%``, ``{#``), and nothing Jinja rewrites in plain
    text (it turns ``\r\n`` into ``\n`` and drops one trailing newline). Its output cap is checked after."""
    return "{" not in source and "\r" not in source and not source.endswith("\n")


def _stream(compiled: JinjaTemplate, variables: dict[str, Any], cap: PartCap, part: str) -> str:
    """Renders chunk by chunk, stopping as soon as the output is certainly over the cap."""
    chunks: list[str] = []
    size = 0
    for chunk in compiled.generate(variables):
        size += len(chunk)
        if size > cap.limit:  # in characters, which a UTF-8 byte count never undercuts
            raise LimitExceeded(part, f"the output is over the {cap.limit:,} {cap.unit} allowed ({cap.source})")
        chunks.append(chunk)
    return "".join(chunks)


def _measure(text: str, cap: PartCap) -> int:
    if cap.unit == "chars" or text.isascii():
        return len(text)
    return len(text.encode())


def _email(parts: _Parts, email: EmailContent) -> EmailContent:
    subject = parts.render("email.subject", email.subject)
    parts.check("email.subject", subject)
    preheader = parts.render("email.preheader", email.preheader)
    parts.check("email.preheader", preheader)
    html = parts.render("email.html", email.html, autoescape=True)
    if preheader:
        html = with_preheader(html, preheader)
    parts.check("email.html", html)
    return EmailContent(subject=subject, html=html, preheader=preheader, text=_email_text(parts, email, html))


def _email_text(parts: _Parts, email: EmailContent, html: str) -> str:
    if email.text is not None:
        text = parts.render("email.text", email.text)
    else:
        derived = parts.derived_text(email.html)
        text = tidy_text(parts.render("email.text", derived)) if derived is not None else html_to_text(html)
    parts.check("email.text", text)
    return text


def _sms(parts: _Parts, sms: SmsContent) -> SmsContent:
    text = parts.render("sms.text", sms.text)
    parts.check("sms.text", text)
    return SmsContent(text)


def _push(parts: _Parts, push: PushContent) -> PushContent:
    texts = {name: parts.render(f"push.{name}", getattr(push, name), cap_name="push")
             for name in ("title", "body", "image", "deep_link")}
    parts.check("push", *texts.values(), push.sound)
    return PushContent(**texts, badge=push.badge, sound=push.sound)


def _webpush(parts: _Parts, webpush: WebPushContent) -> WebPushContent:
    texts = {name: parts.render(f"webpush.{name}", getattr(webpush, name), cap_name="webpush")
             for name in ("title", "body", "icon", "url")}
    parts.check("webpush", *texts.values())
    return WebPushContent(**texts)


def _webhook(parts: _Parts, webhook: WebhookContent) -> dict[str, Any]:
    body = _render_json(parts, webhook.body, "webhook.body")
    parts.check("webhook.body", json.dumps(body, ensure_ascii=False, default=str))
    return body


def _render_json(parts: _Parts, value: Any, path: str) -> Any:
    if isinstance(value, str):
        return parts.render(path, value, cap_name="webhook.body")
    if isinstance(value, Mapping):
        return {key: _render_json(parts, item, f"{path}.{key}") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_render_json(parts, item, f"{path}[{index}]") for index, item in enumerate(value)]
    return value


def _whatsapp(parts: _Parts, whatsapp: WhatsAppContent) -> WhatsAppContent:
    parameters = tuple(parts.render(f"whatsapp.parameters[{index}]", source, cap_name="whatsapp.parameters")
                       for index, source in enumerate(whatsapp.parameters))
    parts.check("whatsapp.parameters", *parameters)
    text = parts.render("whatsapp.text", whatsapp.text)
    parts.check("whatsapp.text", text)
    if not whatsapp.template and not (text or "").strip():
        raise RenderError("whatsapp.text", "the text renders empty and there is no template to fall back on")
    return WhatsAppContent(template=whatsapp.template, language=whatsapp.language, parameters=parameters,
                           text=text)


def _voice(parts: _Parts, voice: VoiceContent) -> VoiceContent:
    say = parts.render("voice.say", voice.say)
    parts.check("voice.say", say)
    return VoiceContent(say=say, voice=voice.voice)


def _inapp(parts: _Parts, inapp: InAppContent) -> InAppContent:
    texts = {name: parts.render(f"inapp.{name}", getattr(inapp, name), cap_name="inapp")
             for name in ("title", "body", "url", "image")}
    parts.check("inapp", *texts.values())
    return InAppContent(**texts)


def _export(parts: _Parts, export: ExportContent) -> ExportContent:
    columns = {name: parts.render(f"export.columns.{name}", source, cap_name="export")
               for name, source in export.columns.items()}
    parts.check("export", *columns.values())
    return ExportContent(columns=columns)


_RENDERERS = {"email": _email, "sms": _sms, "push": _push, "webpush": _webpush, "webhook": _webhook,
              "whatsapp": _whatsapp, "voice": _voice, "inapp": _inapp, "export": _export}

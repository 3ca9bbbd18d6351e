"""From a leased delivery to a call: render the ``voice`` part and pick the language Twilio speaks it in.

The language of ``<Say>`` is the language the text was written in: the template variant the render
used (``RenderedMessage.locale``), or the template's default locale when that variant inherits its voice
part from the default content (a ``pt`` variant with only an SMS text speaks the default's words, so in
the default's language). That tag is mapped to a language Twilio's text-to-speech knows: a region given
and supported is kept (``pt-PT``), a bare or unknown region gets the language's usual one (``pt`` →
``pt-BR``), and a language Twilio cannot speak falls back to the template's default locale, then to
Twilio's own default, ``en-US``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..channels.base import OutboundCall
from ..content.errors import RenderError
from .compose import PartComposer

TWILIO_DEFAULT_LANGUAGE = "en-US"  # what <Say> speaks without a language attribute
# Languages of Twilio's <Say> (the alice table and the Amazon Polly voices Twilio offers):
# https://www.twilio.com/docs/voice/twiml/say and https://www.twilio.com/docs/voice/twiml/say/text-speech
SAY_LANGUAGES = frozenset({
    "ar-AE", "ca-ES", "cy-GB", "da-DK", "de-AT", "de-DE", "en-AU", "en-CA", "en-GB", "en-IE", "en-IN", "en-NZ",
    "en-US", "en-ZA", "es-ES", "es-MX", "es-US", "fi-FI", "fr-BE", "fr-CA", "fr-FR", "hi-IN", "is-IS", "it-IT",
    "ja-JP", "ko-KR", "nb-NO", "nl-BE", "nl-NL", "pl-PL", "pt-BR", "pt-PT", "ro-RO", "ru-RU", "sv-SE", "tr-TR",
    "zh-CN", "zh-HK", "zh-TW",
})
# A language given without a supported region: the accent most of its speakers expect.
USUAL_REGION = {
    "ar": "ar-AE", "ca": "ca-ES", "cy": "cy-GB", "da": "da-DK", "de": "de-DE", "en": "en-US", "es": "es-ES",
    "fi": "fi-FI", "fr": "fr-FR", "hi": "hi-IN", "is": "is-IS", "it": "it-IT", "ja": "ja-JP", "ko": "ko-KR",
    "nb": "nb-NO", "no": "nb-NO", "nl": "nl-NL", "pl": "pl-PL", "pt": "pt-BR", "ro": "ro-RO", "ru": "ru-RU",
    "sv": "sv-SE", "tr": "tr-TR", "zh": "zh-CN",
}


class VoiceComposer(PartComposer):
    part = "voice"

    def compose(self, campaign: Any, item: Any, now: datetime) -> OutboundCall:
        rendered = self.render_part(campaign, item, now)
        voice = rendered.voice
        if voice is None or not voice.say.strip():
            raise RenderError("voice.say", "the template has no voice text")
        template = campaign.template
        language = say_language(written_in(template, rendered.locale), template.default_locale)
        ids = self.ids(campaign, item.row)
        return OutboundCall(to=item.address, text=voice.say, language=language,
                            message_id=ids.message_id, idempotency_key=ids.idempotency_key,
                            voice=voice.voice or self.settings.voice_default_voice or None,
                            sender=self.settings.voice_from or None)


def written_in(template: Any, locale: str) -> str:
    """The locale whose words the voice part holds: the variant's own, or the default's it inherits."""
    own = template.variants.get(locale)
    return locale if own is not None and own.voice is not None else template.default_locale


def say_language(locale: str | None, fallback: str | None = None) -> str:
    """A ``<Say>`` language for a BCP 47 tag: ``pt`` → ``pt-BR``, ``fr-CA`` kept, ``xx`` → ``fallback``'s."""
    for tag in (locale, fallback):
        found = _supported(tag)
        if found:
            return found
    return TWILIO_DEFAULT_LANGUAGE


def _supported(tag: str | None) -> str | None:
    if not tag:
        return None
    subtags = tag.replace("_", "-").split("-")
    language = subtags[0].lower()
    regions = [s.upper() for s in subtags[1:] if len(s) == 2 and s.isalpha()]  # skips scripts (Hant), variants
    if regions and f"{language}-{regions[0]}" in SAY_LANGUAGES:
        return f"{language}-{regions[0]}"
    if language == "zh" and "hant" in (s.lower() for s in subtags):
        return "zh-TW"  # Traditional characters without a region: Taiwan's Mandarin, not the mainland's
    return USUAL_REGION.get(language)

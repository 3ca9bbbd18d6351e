"""Voice calls over Twilio's Calls API (httpx): a call that says one text when answered.

    channel = TwilioVoiceChannel(TwilioVoiceSettings(account_sid="AC...", auth_token=secret,
                                                     from_number="+14155550100"))
    result = await channel.send(OutboundCall(to="+5511987654321", text="Olá Ana", language="pt-BR",
                                             message_id="d42", idempotency_key="k42"))
    await channel.aclose()

One POST per call to ``{base_url}/2010-04-01/Accounts/{AccountSid}/Calls.json``, form-encoded, HTTP
basic auth, with the TwiML inline (``Twiml``) rather than a ``Url`` Twilio would fetch: the words are
fixed when the call is placed, and Clarion needs no public TwiML endpoint. The TwiML is one
``<Response><Say language=... voice=...>text</Say></Response>``, every text and attribute XML-escaped, so
a contact's name can never add a verb. Twilio caps the ``Twiml`` parameter at 4,000 characters (error
32018, https://www.twilio.com/docs/api/errors/32018): a longer one is refused here, as FAILED, before
any request. Each request carries ``I-Twilio-Idempotency-Token`` (the message's key), so a retry after a
lost answer never rings the phone twice. With a status callback URL, Twilio posts the call's progress
(initiated, ringing, answered, completed) to it with ``?message_id=`` (see ``api/twilio_hooks.py``).

Classification (https://www.twilio.com/docs/api/errors). Codes shared with SMS (20003, 20429, 21211,
21212, 404, 429, 5xx ...) go through :func:`.sms_twilio.classify`; only the call-specific codes are here:

=====================================================  ============  ==================================
Answer                                                 Outcome       Why
=====================================================  ============  ==================================
201 with a call ``sid`` ("CA" + 32 hex)                SENT          ``provider_id`` = the sid
HTTP 429, or code 20429                                RETRY         ``Retry-After`` honoured
HTTP 5xx, timeout, connect error, broken connection    RETRY         the token makes the retry safe
21211 invalid To, 13223 bad format, 13224 unsupported  BAD_ADDRESS   the number cannot be called
  or invalid number, 21217 number not valid
21210 caller id not verified, 21212 invalid From       CONFIG_ERROR  our caller id
20003 authentication (or 401), 20404 (or 404)          CONFIG_ERROR  credentials, account SID, base URL
21215 geo permission, 21216 destination blocked        FAILED        this call is refused, the number
                                                                     is fine (an account setting or
                                                                     Twilio's fraud list decides)
Twiml over 4,000 characters (checked before sending)   FAILED        code 32018, nothing sent
other 4xx                                              FAILED        code and message kept
=====================================================  ============  ==================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from .base import DeliveryResult, OutboundCall, Outcome
from .http import one_line as _line
from .sms_twilio import API_VERSION, E164, TwilioAdapter, with_query
from .sms_twilio import classify as classify_twilio

TWIML_LIMIT = 4000  # characters of the Twiml parameter: Twilio error 32018
TWIML_TOO_LONG = "32018"
STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")  # Calls API StatusCallbackEvent values
# AMD modes of the Calls API (https://www.twilio.com/docs/voice/answering-machine-detection)
MACHINE_DETECTION_MODES = frozenset({"Enable", "DetectMessageEnd"})

BAD_ADDRESS_CODES = frozenset({
    "21211",  # invalid 'To' phone number
    "13223",  # invalid phone number format (not E.164)
    "13224",  # Twilio does not support calling this number, or the number is invalid
    "21217",  # phone number does not appear to be valid
})
CONFIG_ERROR_CODES = frozenset({
    "21210",  # 'From' phone number not verified: not a Twilio number or verified caller id of the account
    "21212",  # invalid 'From' number
})
REFUSED_CODES = frozenset({
    "21215",  # the account's voice geo permissions do not allow calling this destination
    "21216",  # call blocked by Twilio (high fraud risk, regulation, no primary customer profile)
})
# XML 1.0 forbids these characters even escaped (https://www.w3.org/TR/xml/#charsets): dropped from the text.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class TwilioVoiceSettings:
    """``timeout``: seconds per connect, write or read. ``max_connections``: requests in flight at once."""

    account_sid: str
    auth_token: str = field(repr=False)
    base_url: str = "https://api.twilio.com"
    from_number: str | None = None  # the caller id: a number of the account or a verified caller id
    default_voice: str | None = None  # a <Say> voice ("Polly.Camila") for calls that name none
    status_callback_url: str | None = None
    machine_detection: str | None = None  # None (off), "Enable" or "DetectMessageEnd"
    timeout: float = 30.0
    max_connections: int = 2

    def __post_init__(self) -> None:
        if not self.account_sid or not self.auth_token:
            raise ValueError("Twilio account_sid and auth_token are required")
        if self.timeout <= 0 or self.max_connections < 1:
            raise ValueError("Twilio timeout and max_connections must be positive")
        if self.machine_detection is not None and self.machine_detection not in MACHINE_DETECTION_MODES:
            raise ValueError(f"machine_detection must be one of {sorted(MACHINE_DETECTION_MODES)} or None, "
                             f"not {self.machine_detection!r}")

    @property
    def calls_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/{API_VERSION}/Accounts/{self.account_sid}/Calls.json"

    @classmethod
    def from_settings(cls, settings) -> TwilioVoiceSettings:
        """From :class:`clarion.config.Settings`; status callbacks only with ``twilio_status_callbacks``."""
        callback = (f"{settings.public_url.rstrip('/')}/hooks/twilio/voice/status"
                    if settings.twilio_status_callbacks and settings.public_url else None)
        return cls(account_sid=settings.twilio_account_sid, auth_token=settings.twilio_auth_token,
                   base_url=settings.twilio_base_url, from_number=settings.voice_from or None,
                   default_voice=settings.voice_default_voice or None, status_callback_url=callback,
                   max_connections=max(1, settings.voice_concurrency))


class TwilioVoiceChannel(TwilioAdapter):
    """Places calls through one Twilio account; call :meth:`send` concurrently."""

    def __init__(self, settings: TwilioVoiceSettings) -> None:
        self.settings = settings

    @classmethod
    def from_settings(cls, settings) -> TwilioVoiceChannel:
        return cls(TwilioVoiceSettings.from_settings(settings))

    async def send(self, message: OutboundCall) -> DeliveryResult:
        self.check_open()
        if not E164.fullmatch(message.to):
            return DeliveryResult(Outcome.BAD_ADDRESS, detail=_line(f"{message.to!r} is not an E.164 number"))
        sender = message.sender or self.settings.from_number
        if not sender:
            return DeliveryResult(Outcome.CONFIG_ERROR, detail="no caller id: set voice_from")
        twiml = say_twiml(message.text, message.language, message.voice or self.settings.default_voice)
        if len(twiml) > TWIML_LIMIT:
            return DeliveryResult(Outcome.FAILED, code=TWIML_TOO_LONG,
                                  detail=f"TwiML of {len(twiml):,} characters is over Twilio's {TWIML_LIMIT:,}")
        return await self.post_form(self.settings.calls_url, self._form(message, sender, twiml),
                                    message.idempotency_key, classify)

    def _form(self, message: OutboundCall, sender: str, twiml: str) -> dict[str, str | list[str]]:
        settings = self.settings
        form: dict[str, str | list[str]] = {"To": message.to, "From": sender, "Twiml": twiml}
        if settings.status_callback_url:
            form["StatusCallback"] = with_query(settings.status_callback_url, message_id=message.message_id)
            form["StatusCallbackEvent"] = list(STATUS_EVENTS)  # one parameter per event, as Twilio's SDKs send
        if settings.machine_detection:
            form["MachineDetection"] = settings.machine_detection
        return form


def say_twiml(text: str, language: str, voice: str | None = None) -> str:
    """``<Response><Say language=".." voice="..">text</Say></Response>``, everything XML-escaped."""
    attributes = f"language={quoteattr(_xml_text(language))}"
    if voice:
        attributes += f" voice={quoteattr(_xml_text(voice))}"
    return f"<Response><Say {attributes}>{escape(_xml_text(text))}</Say></Response>"


def classify(status: int, payload: Mapping[str, object], retry_after: str | None = None) -> DeliveryResult:
    """The outcome of one answer of the Calls API: the call-specific codes, then SMS's shared table."""
    code = str(payload["code"]) if payload.get("code") is not None else None
    if 400 <= status < 500 and status != 429 and code is not None:
        detail = _line(str(payload.get("message") or f"HTTP {status}"))
        if code in BAD_ADDRESS_CODES:
            return DeliveryResult(Outcome.BAD_ADDRESS, code=code, detail=detail)
        if code in CONFIG_ERROR_CODES:
            return DeliveryResult(Outcome.CONFIG_ERROR, code=code, detail=detail)
        if code in REFUSED_CODES:
            return DeliveryResult(Outcome.FAILED, code=code, detail=detail)
    return classify_twilio(status, payload, retry_after)


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("", text)

"""Text messages over Twilio's Messages API (httpx), the classification of its answers, and its webhooks.

    channel = TwilioSmsChannel(TwilioSettings(account_sid="AC...", auth_token=secret,
                                              messaging_service_sid="MG...",
                                              status_callback_url="https://clarion.example/hooks/twilio"))
    result = await channel.send(OutboundSms(to="+15551230001", body="Hi", message_id="d42", idempotency_key="k42"))
    await channel.aclose()

One POST per message to ``{base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded,
HTTP basic auth with the account SID and auth token. The sender is the message's own, else the sender
pool (``MessagingServiceSid``), else ``from_number``. Every request carries the message's idempotency
key as ``I-Twilio-Idempotency-Token``: Twilio answers a repeated token with the first answer instead of
sending again, which makes RETRY after a timeout or a 5xx safe. The status callback URL gets the
message's id as ``?message_id=`` so that a delivery receipt names Clarion's message, not only Twilio's.

Classification (Twilio error codes: https://www.twilio.com/docs/api/errors):

=====================================================  ============  ==================================
Answer                                                 Outcome       Why
=====================================================  ============  ==================================
200/201 with a message ``sid``                         SENT          ``provider_id`` = the sid
2xx without a ``sid``                                  CONFIG_ERROR  ``base_url`` is not Twilio
HTTP 429, or code 20429                                RETRY         ``Retry-After`` honoured
HTTP 5xx                                               RETRY         Twilio-side trouble
21610 recipient replied STOP                           BAD_ADDRESS   the pipeline records the opt-out
21211 invalid To, 21614 not a mobile, 21612 no route   BAD_ADDRESS   this number cannot get an SMS
21408 region not enabled, 21606 / 21212 bad From       CONFIG_ERROR  our account or sender
20003 authentication (or HTTP 401), 20404 (or 404)     CONFIG_ERROR  credentials, account SID, base URL
other 4xx                                              FAILED        code and message kept
connect error, timeout, broken connection              RETRY         the token makes the retry safe
=====================================================  ============  ==================================

Inbound webhooks: :func:`verify_signature` checks ``X-Twilio-Signature`` and :func:`keyword_action`
reads an inbound text as Twilio's default opt-out and opt-in keywords.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from .base import DeliveryResult, OutboundSms, Outcome
from .http import HttpAdapter, pool_limits
from .http import json_object as _json
from .http import one_line as _line

API_VERSION = "2010-04-01"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
SIGNATURE_HEADER = "X-Twilio-Signature"
E164 = re.compile(r"\+[1-9]\d{1,14}")  # ITU-T E.164: at most 15 digits, the country code first

RATE_LIMITED = "20429"
BAD_ADDRESS_CODES = frozenset({
    "21610",  # the recipient replied STOP to this sender (or pool)
    "21211",  # invalid 'To' phone number
    "21614",  # 'To' number is not a valid mobile number
    "21612",  # Twilio cannot route to this number (carrier, or landline)
})
CONFIG_ERROR_CODES = frozenset({
    "21408",  # permission to send to this region (geo permissions) is not enabled
    "21606",  # 'From' is not a valid, SMS-capable number of this account
    "21212",  # invalid 'From' number
    "20003",  # authentication failed
    "20404",  # resource not found: a wrong account SID or messaging service
})

# Twilio's default keywords, as matched on a whole inbound message (case-insensitive, trimmed):
# https://www.twilio.com/docs/messaging/tutorials/advanced-opt-out and
# https://help.twilio.com/articles/223134027-Twilio-support-for-opt-out-keywords-SMS-STOP-filtering-
STOP_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
START_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})

KeywordAction = Literal["opt_out", "opt_in"]


@dataclass(frozen=True)
class TwilioSettings:
    """``timeout``: seconds per connect, write or read. ``max_connections``: requests in flight at once."""

    account_sid: str
    auth_token: str = field(repr=False)
    base_url: str = "https://api.twilio.com"
    from_number: str | None = None
    messaging_service_sid: str | None = None  # a sender pool; preferred over from_number
    status_callback_url: str | None = None
    timeout: float = 30.0
    max_connections: int = 10

    def __post_init__(self) -> None:
        if not self.account_sid or not self.auth_token:
            raise ValueError("Twilio account_sid and auth_token are required")
        if self.timeout <= 0 or self.max_connections < 1:
            raise ValueError("Twilio timeout and max_connections must be positive")

    @property
    def messages_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"


class TwilioAdapter(HttpAdapter):
    """One Twilio account's client (basic auth, JSON answers), shared by the SMS and voice channels.
    ``settings`` has ``account_sid``, ``auth_token``, ``timeout`` and ``max_connections``."""

    settings: Any

    async def post_form(self, url: str, form: Mapping[str, Any], idempotency_key: str,
                        classify_answer: Callable[[int, Mapping[str, object], str | None], DeliveryResult],
                        ) -> DeliveryResult:
        """POSTs one resource's form with its idempotency token; the answer classified, or RETRY."""
        response = await self.post(url, data=form, headers={IDEMPOTENCY_HEADER: idempotency_key})
        if isinstance(response, DeliveryResult):
            return response
        return classify_answer(response.status_code, _json(response), response.headers.get("Retry-After"))

    def client_options(self) -> dict[str, Any]:
        settings = self.settings
        limits = pool_limits(settings.max_connections)
        return {"auth": (settings.account_sid, settings.auth_token), "limits": limits,
                "timeout": httpx.Timeout(settings.timeout), "headers": {"Accept": "application/json"}}


class TwilioSmsChannel(TwilioAdapter):
    """An :class:`~.base.SmsChannel` over one Twilio account; call :meth:`send` concurrently."""

    def __init__(self, settings: TwilioSettings) -> None:
        self.settings = settings

    async def send(self, message: OutboundSms) -> DeliveryResult:
        self.check_open()
        if not E164.fullmatch(message.to):
            return DeliveryResult(Outcome.BAD_ADDRESS, detail=_line(f"{message.to!r} is not an E.164 number"))
        form = self._form(message)
        if form is None:
            return DeliveryResult(Outcome.CONFIG_ERROR, detail="no sender: set from_number or messaging_service_sid")
        return await self.post_form(self.settings.messages_url, form, message.idempotency_key, classify)

    def _form(self, message: OutboundSms) -> dict[str, str] | None:
        settings = self.settings
        form = {"To": message.to, "Body": message.body}
        if message.sender:
            form["From"] = message.sender
        elif settings.messaging_service_sid:
            form["MessagingServiceSid"] = settings.messaging_service_sid
        elif settings.from_number:
            form["From"] = settings.from_number
        else:
            return None
        if settings.status_callback_url:
            form["StatusCallback"] = with_query(settings.status_callback_url, message_id=message.message_id)
        return form


def classify(status: int, payload: Mapping[str, object], retry_after: str | None = None) -> DeliveryResult:
    """The outcome of one answer of the Messages API: its HTTP status, its JSON body ({} if none)."""
    code = str(payload["code"]) if payload.get("code") is not None else None
    detail = _line(str(payload.get("message") or payload.get("detail") or f"HTTP {status}"))
    if 200 <= status < 300:
        sid = payload.get("sid")
        if isinstance(sid, str) and sid:
            return DeliveryResult(Outcome.SENT, provider_id=sid, detail=str(payload.get("status") or ""))
        return DeliveryResult(Outcome.CONFIG_ERROR, detail=f"HTTP {status} without a message sid: is base_url Twilio?")
    if status == 429 or code == RATE_LIMITED:
        return DeliveryResult(Outcome.RETRY, code=code or "429", detail=detail,
                              retry_after=parse_retry_after(retry_after))
    if status >= 500:
        return DeliveryResult(Outcome.RETRY, code=code or str(status), detail=detail,
                              retry_after=parse_retry_after(retry_after))
    if code in BAD_ADDRESS_CODES:
        return DeliveryResult(Outcome.BAD_ADDRESS, code=code, detail=detail)
    if code in CONFIG_ERROR_CODES or (code is None and status in (401, 404)):
        return DeliveryResult(Outcome.CONFIG_ERROR, code=code or str(status), detail=detail)
    return DeliveryResult(Outcome.FAILED, code=code or str(status), detail=detail)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """RFC 9110 §10.2.3: delay-seconds or an HTTP-date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdecimal():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def verify_signature(auth_token: str, url: str, params: Mapping[str, str | Sequence[str]], signature: str) -> bool:
    """Checks ``X-Twilio-Signature`` of a form-encoded webhook: base64(HMAC-SHA1(auth token, the full URL
    followed by each POST parameter's name and value, sorted by name)).
    https://www.twilio.com/docs/usage/webhooks/webhooks-security

    ``url`` is the URL exactly as Twilio requested it (scheme, host, port, path and query): behind a
    proxy, rebuild it from the public address, not from the socket the request came in on."""
    expected = compute_signature(auth_token, url, params)
    return hmac.compare_digest(expected.encode(), (signature or "").strip().encode())


def compute_signature(auth_token: str, url: str, params: Mapping[str, str | Sequence[str]]) -> str:
    payload = url
    for name in sorted(params):
        values = params[name]
        for value in [values] if isinstance(values, str) else sorted(values):  # a repeated name: each value
            payload += name + value
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def keyword_action(body: str) -> KeywordAction | None:
    """What an inbound text asks for: only a whole message that is one keyword counts ("STOP please" does not)."""
    word = body.strip().upper()
    if word in STOP_KEYWORDS:
        return "opt_out"
    if word in START_KEYWORDS:
        return "opt_in"
    return None


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to its query string (existing parameters kept)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))





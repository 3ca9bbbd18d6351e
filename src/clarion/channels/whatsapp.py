"""WhatsApp messages over Meta's WhatsApp Business Cloud API (the Graph API, httpx), and their classification.

    channel = WhatsAppChannel(WhatsAppSettings(phone_number_id="1065...", access_token=secret))
    result = await channel.send(OutboundWhatsApp(to="+15551230001", message_id="d42", idempotency_key="k42",
                                                 template="autumn_offer", language="en_US", parameters=("Ana",)))
    await channel.aclose()

One POST per message to ``{base_url}/{api_version}/{phone_number_id}/messages`` with
``Authorization: Bearer <access token>`` and a JSON body: free-form ``text`` (only inside the 24-hour
customer-service window, which the composer checked) or an approved ``template`` whose body parameters
are the message's ``parameters`` in order. ``to`` is the E.164 number without its "+". Clarion's message
id travels as ``biz_opaque_callback_data``, which Meta echoes in every status webhook of the message, so
that a receipt names Clarion's delivery even before its wamid is stored.
https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages

The Cloud API has no idempotency key: a RETRY after a timeout (the request may have gone through) can
deliver the message twice. Meta's own advice is the same retry, so it is accepted and documented.

Classification, by the error's ``code`` first as Meta recommends (the HTTP status only when the body has
no code). Codes: https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes and
https://developers.facebook.com/docs/graph-api/guides/error-handling

==========================================================  ============  ===================================
Answer                                                      Outcome       Why
==========================================================  ============  ===================================
200 with ``messages[0].id`` (a wamid)                       SENT          ``provider_id`` = the wamid
2xx without a message id                                    CONFIG_ERROR  ``base_url`` is not the Graph API
0 AuthException, 3 API method, 10 permission denied,        CONFIG_ERROR  the access token or its permissions
190 token expired, 200-299 API permission (HTTP 401/403)
33, or 100 with subcode 33 (no such phone number id)        CONFIG_ERROR  ``phone_number_id`` is wrong
368 blocked for policy, 131031 account locked,              CONFIG_ERROR  the business account, not the
131042 payment issue, 131037 display name not approved,                   contact: pause the campaign
133010 phone number not registered
132000 parameter count, 132001 template does not exist,    CONFIG_ERROR  our template content: pause until
132005 text too long, 132007 policy violated, 132012                      the template is fixed
parameter format, 132015 template paused, 132016 disabled
4 app rate limit, 80007 WABA rate limit, 130429 throughput, RETRY         ``Retry-After`` honoured if present
131048 spam rate limit, 131056 pair rate limit,
131049 Meta chose not to deliver (per-user marketing cap)
1/2 API unknown/service, 131000 something went wrong,       RETRY         Meta-side trouble
131016 service unavailable, any HTTP 429 or 5xx
131050 user stopped marketing messages                      BAD_ADDRESS   code "131050": the checkpoint
                                                                          records a WhatsApp opt-out
131026 undeliverable (not on WhatsApp, old app, terms)      FAILED        NOT bad address: the phone is
                                                                          shared with SMS and voice
131047 re-engagement (outside the 24-hour window)           FAILED        free-form text needs the window
131021 recipient is the sender                              FAILED
100 invalid parameter, any other code                       FAILED        code and message kept
connect error, timeout, broken connection                   RETRY         (no idempotency key: see above)
==========================================================  ============  ===================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from .base import DeliveryResult, OutboundWhatsApp, Outcome
from .http import HttpAdapter, pool_limits
from .http import json_object as _json
from .http import one_line as _line
from .sms_twilio import E164, parse_retry_after

CALLBACK_DATA_CHARS = 512  # biz_opaque_callback_data: at most 512 characters (Cloud API messages reference)

WHATSAPP_STOPPED_MARKETING = "131050"  # the recipient stopped marketing messages from this business
AUTH_CODES = frozenset({"0", "3", "10", "190"} | {str(code) for code in range(200, 300)})
WRONG_PHONE_NUMBER_ID = "33"  # "Parameter value is not valid": the business phone number (id) does not exist
ACCOUNT_CODES = frozenset({
    "368",  # temporarily blocked for policy violations
    "131031",  # business account locked
    "131042",  # business eligibility: payment issue
    "131037",  # the display name needs approval before messages can be sent
    "133010",  # the phone number is not registered on the Cloud API
})
TEMPLATE_CODES = frozenset({
    "132000",  # number of parameters does not match the template's
    "132001",  # template name does not exist in the translation (name or language)
    "132005",  # translated (hydrated) text too long
    "132007",  # template format character policy violated
    "132012",  # parameter format does not match the template's
    "132015",  # template paused for low quality
    "132016",  # template disabled (paused too many times)
})
RATE_LIMIT_CODES = frozenset({
    "4",  # application request limit reached
    "80007",  # WhatsApp Business Account rate limit
    "130429",  # Cloud API throughput reached (80 messages/s per number by default)
    "131048",  # spam rate limit: too many messages blocked or flagged
    "131056",  # (business, consumer) pair rate limit: too many messages to one number
    "131049",  # Meta chose not to deliver (per-user marketing limit): Meta advises retrying later
})
TRANSIENT_CODES = frozenset({
    "1",  # API unknown: "possible server error"
    "2",  # API service: temporary downtime or overload
    "131000",  # something went wrong
    "131016",  # service unavailable
})
FAILED_CODES = frozenset({  # listed for the docs and the tests; any unknown code is FAILED too
    "131026",  # message undeliverable: not a WhatsApp number, an old app, terms not accepted
    "131047",  # re-engagement message: more than 24 hours since the customer's last message
    "131021",  # recipient cannot be the sender
    "100",  # invalid parameter
})


@dataclass(frozen=True)
class WhatsAppSettings:
    """``timeout``: seconds per connect, write or read. ``max_connections``: requests in flight at once."""

    phone_number_id: str
    access_token: str = field(repr=False)
    base_url: str = "https://graph.facebook.com"
    api_version: str = "v21.0"
    timeout: float = 30.0
    max_connections: int = 10

    def __post_init__(self) -> None:
        if not self.phone_number_id or not self.access_token:
            raise ValueError("WhatsApp phone_number_id and access_token are required")
        if not self.phone_number_id.isdecimal():
            raise ValueError(f"WhatsApp phone_number_id must be the number's numeric id, not {self.phone_number_id!r}")
        if not re.fullmatch(r"v\d+\.\d+", self.api_version):
            raise ValueError(f"WhatsApp api_version looks like 'v21.0', not {self.api_version!r}")
        if self.timeout <= 0 or self.max_connections < 1:
            raise ValueError("WhatsApp timeout and max_connections must be positive")

    @classmethod
    def from_settings(cls, settings: Any) -> WhatsAppSettings:
        """From :class:`clarion.config.Settings` (the ``whatsapp_*`` fields)."""
        return cls(phone_number_id=settings.whatsapp_phone_number_id, access_token=settings.whatsapp_access_token,
                   base_url=settings.whatsapp_base_url, api_version=settings.whatsapp_api_version,
                   max_connections=max(1, settings.whatsapp_concurrency))

    @property
    def messages_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/{self.api_version}/{self.phone_number_id}/messages"


class WhatsAppChannel(HttpAdapter):
    """Sends :class:`~.base.OutboundWhatsApp` through one business phone number; call :meth:`send` concurrently."""

    def __init__(self, settings: WhatsAppSettings) -> None:
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: Any) -> WhatsAppChannel:
        return cls(WhatsAppSettings.from_settings(settings))

    async def send(self, message: OutboundWhatsApp) -> DeliveryResult:
        self.check_open()
        if not E164.fullmatch(message.to):
            # FAILED, not BAD_ADDRESS: a malformed profile phone is our data, and SMS and voice share it.
            return DeliveryResult(Outcome.FAILED, code="invalid_number",
                                  detail=_line(f"{message.to!r} is not an E.164 number"))
        body = message_payload(message)
        if body is None:
            return DeliveryResult(Outcome.FAILED, code="empty", detail="neither text nor a template to send")
        response = await self.post(self.settings.messages_url, json=body)
        if isinstance(response, DeliveryResult):
            return response
        return classify(response.status_code, _json(response), response.headers.get("Retry-After"))

    def client_options(self) -> dict[str, Any]:
        settings = self.settings
        limits = pool_limits(settings.max_connections)
        return {"limits": limits, "timeout": httpx.Timeout(settings.timeout), "headers": {
            "Authorization": f"Bearer {settings.access_token}", "Accept": "application/json"}}


def message_payload(message: OutboundWhatsApp) -> dict[str, Any] | None:
    """The Cloud API's JSON for one message: free-form text when given (the composer sets it only inside
    the window), else the template; None when there is neither."""
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual",
                            "to": message.to.removeprefix("+"),
                            "biz_opaque_callback_data": message.message_id[:CALLBACK_DATA_CHARS]}
    if message.text is not None:
        return body | {"type": "text", "text": {"body": message.text, "preview_url": False}}
    if not message.template:
        return None
    template: dict[str, Any] = {"name": message.template, "language": {"code": message.language or "en_US"}}
    if message.parameters:  # a template without variables takes no components at all
        template["components"] = [{"type": "body", "parameters": [
            {"type": "text", "text": value} for value in message.parameters]}]
    return body | {"type": "template", "template": template}


def classify(status: int, payload: Mapping[str, Any], retry_after: str | None = None) -> DeliveryResult:
    """The outcome of one answer of the messages endpoint: its HTTP status, its JSON body ({} if none)."""
    if 200 <= status < 300:
        return _accepted(status, payload)
    error = payload.get("error") if isinstance(payload.get("error"), Mapping) else {}
    code = str(error["code"]) if error.get("code") is not None else None
    detail = _detail(error, payload, status)
    if code in AUTH_CODES or code in ACCOUNT_CODES or code in TEMPLATE_CODES or code == WRONG_PHONE_NUMBER_ID:
        return DeliveryResult(Outcome.CONFIG_ERROR, code=code, detail=detail)
    if code == "100" and str(error.get("error_subcode")) == WRONG_PHONE_NUMBER_ID:
        return DeliveryResult(Outcome.CONFIG_ERROR, code=code, detail=detail)  # the path's phone number id
    if code in RATE_LIMIT_CODES or code in TRANSIENT_CODES or status == 429 or status >= 500:
        return DeliveryResult(Outcome.RETRY, code=code or str(status), detail=detail,
                              retry_after=parse_retry_after(retry_after))
    if code == WHATSAPP_STOPPED_MARKETING:
        return DeliveryResult(Outcome.BAD_ADDRESS, code=code, detail=detail)
    if code is None and status in (401, 403, 404):  # no Graph error body: a proxy, or a wrong base_url
        return DeliveryResult(Outcome.CONFIG_ERROR, code=str(status), detail=detail)
    return DeliveryResult(Outcome.FAILED, code=code or str(status), detail=detail)


def _accepted(status: int, payload: Mapping[str, Any]) -> DeliveryResult:
    messages = payload.get("messages")
    first = messages[0] if isinstance(messages, list) and messages and isinstance(messages[0], Mapping) else {}
    wamid = first.get("id")
    if isinstance(wamid, str) and wamid:
        return DeliveryResult(Outcome.SENT, provider_id=wamid, detail=str(first.get("message_status") or "accepted"))
    return DeliveryResult(Outcome.CONFIG_ERROR,
                          detail=f"HTTP {status} without a message id: is base_url the Graph API?")


def _detail(error: Mapping[str, Any], payload: Mapping[str, Any], status: int) -> str:
    """Meta's message, its ``error_data.details`` (the most telling part) and the fbtrace_id support asks for."""
    data = error.get("error_data") if isinstance(error.get("error_data"), Mapping) else {}
    text = str(error.get("message") or payload.get("message") or f"HTTP {status}")
    if data.get("details"):
        text += f": {data['details']}"
    if error.get("fbtrace_id"):
        text += f" (fbtrace_id {error['fbtrace_id']})"
    return _line(text)





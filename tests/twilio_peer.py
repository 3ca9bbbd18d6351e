"""A local Twilio Messages and Calls API for tests: ``http.server`` on 127.0.0.1 (an ephemeral port), in a thread.

    with TwilioPeer(account_sid="AC...", auth_token="secret") as peer:
        ... POST to peer.base_url + "/2010-04-01/Accounts/AC.../Messages.json" (or .../Calls.json) ...
        peer.requests, peer.messages, peer.calls
        peer.send_status_callback(url, sid)       # a signed delivery receipt, as Twilio posts it
        peer.send_call_status_callback(url, sid, "completed")   # a signed call status callback

It checks basic auth (wrong: 401, code 20003) and the account SID of the path (another: 404, code
20404), then answers by the recipient number's ending (``DEFAULT_ANSWERS``: "...0001" is 21211, "...0429"
is 429 with Retry-After ...), else 201 with a message resource (sid "SM" + 32 hex, status "queued", or
"accepted" for a sender pool). Every request is recorded; a repeated ``I-Twilio-Idempotency-Token``
gets the first answer again and creates no second message, as Twilio does. The error bodies have
Twilio's shape: ``{"code": 21211, "message": ..., "more_info": ..., "status": 400}``.

Calls (https://www.twilio.com/docs/voice/api/call-resource#create-a-call-resource): the same auth and
idempotency; To and From are required (21201, 21213) and must be E.164 (21211, 21212); ``Twiml`` must be
a well-formed XML document with a ``<Response>`` root (else 12100, "Document parse failure",
https://www.twilio.com/docs/api/errors/12100) of at most 4,000 characters (else 32018,
https://www.twilio.com/docs/api/errors/32018). Scripted errors come from ``DEFAULT_CALL_ANSWERS`` by
the To number's ending; a placed call answers 201 with a call resource (sid "CA" + 32 hex, status
"queued") and is recorded in ``peer.calls`` with the TwiML parsed: what each ``<Say>`` says, in which
language and voice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode

from clarion.channels.sms_segments import count_segments
from threaded_server import PeerHandler, ThreadedPeer

BODY_LIMIT = 1600  # characters: Twilio refuses a longer body with 21617
TWIML_LIMIT = 4000  # characters of the Calls API's Twiml parameter: Twilio refuses a longer one with 32018
_E164 = re.compile(r"\+[1-9]\d{1,14}")


@dataclass(frozen=True)
class Answer:
    status: int
    code: int | None = None
    message: str = ""
    retry_after: str | None = None  # the Retry-After header, as sent


DEFAULT_ANSWERS: Mapping[str, Answer] = {
    "0001": Answer(400, 21211, "The 'To' number +1555... is not a valid phone number."),
    "0002": Answer(400, 21610, "Attempt to send to unsubscribed recipient"),
    "0003": Answer(400, 21614, "'To' number is not a valid mobile number"),
    "0004": Answer(400, 21612, "The 'To' phone number is not currently reachable via SMS"),
    "0005": Answer(400, 21408, "Permission to send an SMS has not been enabled for the region"),
    "0006": Answer(400, 21606, "The 'From' phone number provided is not a valid message-capable number"),
    "0007": Answer(400, 30007, "Message filtered"),  # any other 4xx: FAILED
    "0429": Answer(429, 20429, "Too Many Requests", retry_after="7"),
    "0500": Answer(500, 20500, "Internal Server Error"),
    "0503": Answer(503, None, "Service Unavailable"),
}

# The Calls API's errors by the To number's ending (https://www.twilio.com/docs/api/errors/<code>).
DEFAULT_CALL_ANSWERS: Mapping[str, Answer] = {
    "0001": Answer(400, 21211, "The 'To' number +1555... is not a valid phone number."),
    "0013": Answer(400, 13224, "Twilio does not support calling this number or the number is invalid"),
    "0023": Answer(400, 13223, "Invalid phone number format"),
    "0010": Answer(400, 21210, "The source phone number provided, +1555..., is not yet verified for your account"),
    "0012": Answer(400, 21212, "The 'From' number +1555... is not a valid phone number"),
    "0015": Answer(400, 21215, "Account not authorized to call +1555.... Perhaps you need to enable some "
                               "international permissions"),
    "0016": Answer(400, 21216, "Call blocked by Twilio"),
    "0429": Answer(429, 20429, "Too Many Requests", retry_after="7"),
    "0500": Answer(500, 20500, "Internal Server Error"),
    "0503": Answer(503, None, "Service Unavailable"),
}


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]  # names lower-cased
    form: dict[str, str]  # the last value of each name
    pairs: tuple[tuple[str, str], ...] = ()  # every name=value in order (StatusCallbackEvent repeats)

    @property
    def idempotency_token(self) -> str | None:
        return self.headers.get("i-twilio-idempotency-token")

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]


@dataclass(frozen=True)
class Said:
    text: str
    language: str | None
    voice: str | None


@dataclass(frozen=True)
class PlacedCall:
    """A call the peer accepted: its resource as answered, and its TwiML as Twilio would read it."""

    resource: dict
    twiml: str
    says: tuple[Said, ...]
    status_callback: str | None
    status_callback_events: tuple[str, ...]
    machine_detection: str | None

    @property
    def sid(self) -> str:
        return self.resource["sid"]

    @property
    def to(self) -> str:
        return self.resource["to"]

    @property
    def text(self) -> str:
        return " ".join(said.text for said in self.says)

    @property
    def language(self) -> str | None:
        return self.says[0].language if self.says else None

    @property
    def voice(self) -> str | None:
        return self.says[0].voice if self.says else None


@dataclass
class TwilioPeer(ThreadedPeer):
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "test-auth-token"
    answers: Mapping[str, Answer] = field(default_factory=lambda: dict(DEFAULT_ANSWERS))
    call_answers: Mapping[str, Answer] = field(default_factory=lambda: dict(DEFAULT_CALL_ANSWERS))
    requests: list[Request] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    calls: list[PlacedCall] = field(default_factory=list)
    _replies: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    thread_name = "twilio-peer"

    def handler(self) -> type[_Handler]:
        return type("Handler", (_Handler,), {"twilio": self})

    def handle(self, path: str, headers: dict[str, str], form: dict[str, str],
               pairs: tuple[tuple[str, str], ...] = ()) -> tuple[int, dict[str, str], bytes]:
        """The answer to one POST: recorded first, replayed for a token already answered."""
        request = Request(path, headers, form, pairs or tuple(form.items()))
        with self._lock:
            self.requests.append(request)
            token = request.idempotency_token
            if token is not None and token in self._replies:
                return self._replies[token]
            status, extra, payload = self._answer(request)
            reply = status, {"Content-Type": "application/json"} | extra, json.dumps(payload).encode()
            if token is not None:
                self._replies[token] = reply
            return reply

    def _answer(self, request: Request) -> tuple[int, dict[str, str], dict]:
        if request.headers.get("authorization") != _basic(self.account_sid, self.auth_token):
            return _error(Answer(401, 20003, "Authenticate"))
        if request.path == f"/2010-04-01/Accounts/{self.account_sid}/Calls.json":
            return self._call(request)
        if request.path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return _error(Answer(404, 20404, f"The requested resource {request.path} was not found"))
        form = request.form
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return _error(Answer(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required"))
        if len(form.get("Body", "")) > BODY_LIMIT:
            return _error(Answer(400, 21617, "The concatenated message body exceeds the 1600 character limit"))
        to = form.get("To", "")
        for ending, answer in self.answers.items():
            if to.endswith(ending):
                return _error(answer)
        message = self._message(form)
        self.messages.append(message)
        return 201, {}, message

    def _message(self, form: dict[str, str]) -> dict:
        body = form.get("Body", "")
        pool = form.get("MessagingServiceSid")
        return {
            "sid": "SM" + secrets.token_hex(16), "account_sid": self.account_sid, "api_version": "2010-04-01",
            "to": form.get("To"), "from": form.get("From"), "messaging_service_sid": pool, "body": body,
            "status": "accepted" if pool and not form.get("From") else "queued",
            "num_segments": str(count_segments(body).segments), "direction": "outbound-api",
            "error_code": None, "error_message": None, "price": None,
            "status_callback": form.get("StatusCallback"),
        }

    def _call(self, request: Request) -> tuple[int, dict[str, str], dict]:
        form = request.form
        to, sender, twiml = form.get("To", ""), form.get("From", ""), form.get("Twiml")
        if not to:
            return _error(Answer(400, 21201, "No 'To' number is specified"))
        if not sender:
            return _error(Answer(400, 21213, "No 'From' number is specified"))
        if not _E164.fullmatch(to):
            return _error(Answer(400, 21211, f"The 'To' number {to} is not a valid phone number."))
        if not _E164.fullmatch(sender):
            return _error(Answer(400, 21212, f"The 'From' number {sender} is not a valid phone number."))
        if twiml is None:
            return _error(Answer(400, 21200, "A Url, Twiml or ApplicationSid parameter is required"))
        if len(twiml) > TWIML_LIMIT:
            return _error(Answer(400, 32018, "Twiml size exceeded maximum allowed value of 4000 characters"))
        says = parse_says(twiml)
        if says is None:
            return _error(Answer(400, 12100, "Document parse failure"))
        for ending, answer in self.call_answers.items():
            if to.endswith(ending):
                return _error(answer)
        resource = self._call_resource(form)
        self.calls.append(PlacedCall(resource, twiml, says, form.get("StatusCallback"),
                                     tuple(request.values("StatusCallbackEvent")), form.get("MachineDetection")))
        return 201, {}, resource

    def _call_resource(self, form: dict[str, str]) -> dict:
        sid = "CA" + secrets.token_hex(16)
        return {
            "sid": sid, "account_sid": self.account_sid, "api_version": "2010-04-01", "to": form.get("To"),
            "from": form.get("From"), "status": "queued", "direction": "outbound-api", "answered_by": None,
            "duration": None, "price": None, "parent_call_sid": None,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{sid}.json",
        }

    def send_call_status_callback(self, url: str, sid: str, status: str = "completed", **extra: str) -> int:
        """POSTs a call status callback (CallStatus ...) to ``url``, signed; returns the HTTP status."""
        params = {"CallSid": sid, "CallStatus": status, "AccountSid": self.account_sid, "ApiVersion": "2010-04-01",
                  "Direction": "outbound-api"} | extra
        return self._post_signed(url, params)

    def send_status_callback(self, url: str, sid: str, status: str = "delivered", **extra: str) -> int:
        """POSTs a delivery receipt to ``url`` signed as Twilio signs it; returns the HTTP status."""
        params = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
                  "AccountSid": self.account_sid, "ApiVersion": "2010-04-01"} | extra
        return self._post_signed(url, params)

    def _post_signed(self, url: str, params: dict[str, str]) -> int:
        request = urllib.request.Request(url, data=urlencode(params).encode(), method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign(self.auth_token, url, params)})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status


def parse_says(twiml: str) -> tuple[Said, ...] | None:
    """Each ``<Say>`` of a TwiML document; None when it is not well-formed XML with a ``<Response>`` root."""
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError:
        return None
    if root.tag != "Response":
        return None
    return tuple(Said("".join(say.itertext()), say.get("language"), say.get("voice")) for say in root.iter("Say"))


def sign(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's webhook signature, written out here on its own so that the tests check the channel's."""
    data = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _error(answer: Answer) -> tuple[int, dict[str, str], dict]:
    headers = {"Retry-After": answer.retry_after} if answer.retry_after else {}
    more_info = f"https://www.twilio.com/docs/errors/{answer.code}" if answer.code else None
    return answer.status, headers, {"code": answer.code, "message": answer.message, "more_info": more_info,
                                    "status": answer.status}


class _Handler(PeerHandler):
    twilio: TwilioPeer

    def do_POST(self) -> None:  # noqa: N802 (named by http.server)
        pairs = tuple(parse_qsl(self.request_body().decode(), keep_blank_values=True))
        self.reply(*self.twilio.handle(self.path, self.lower_headers(), dict(pairs), pairs))

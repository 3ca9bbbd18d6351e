"""A local WhatsApp Cloud API (Graph API) for tests: ``http.server`` on 127.0.0.1 (an ephemeral port), in a thread.

    with WhatsAppPeer() as peer:
        ... POST to peer.base_url + "/v21.0/<phone number id>/messages" with "Authorization: Bearer <token>" ...
        peer.requests, peer.messages
        body, headers = peer.webhook(inbound_text("15551230001", "STOP"))   # signed as Meta signs it
        peer.post_webhook(url, status_update("wamid...", "delivered", "15551230001"))   # over a real socket

It follows Meta's documented wire format (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/
messages) and error bodies (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes):

- ``Authorization: Bearer`` other than the peer's token: 401, code 190 (OAuthException).
- a phone number id in the path other than the peer's: 400, code 100 with error_subcode 33, as the Graph API
  answers for an object that does not exist.
- a body that is not the messages shape (messaging_product, to as digits, type text or template ...): 400,
  code 100 "Invalid parameter".
- an unknown template name, or a language it was not approved in: 404, code 132001; a number of body
  parameters other than the template's: 400, code 132000.
- then the recipient number's ending (``DEFAULT_ANSWERS``: "...0001" is 131026, "...0002" 131050 ...),
- else 200 with ``{"messaging_product": "whatsapp", "contacts": [{"input", "wa_id"}], "messages": [{"id":
  "wamid...", "message_status": "accepted"}]}`` (``message_status`` for templates only).

Error bodies: ``{"error": {"message": "(#131026) Message undeliverable", "type": "OAuthException", "code":
131026, "error_data": {"messaging_product": "whatsapp", "details": ...}, "fbtrace_id": ...}}``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from threaded_server import PeerHandler, ThreadedPeer

TEXT_LIMIT = 4096  # characters: a text message body (Cloud API messages reference)
WABA_ID = "102290129340398"  # the WhatsApp Business Account id webhooks name (Meta's example value)
DISPLAY_NUMBER = "15550783881"


@dataclass(frozen=True)
class Answer:
    status: int
    code: int | None
    message: str = ""
    details: str = ""
    retry_after: str | None = None  # the Retry-After header, as sent
    raw: str | None = None  # a non-Graph body (a proxy's page), sent instead of the JSON error


DEFAULT_ANSWERS: Mapping[str, Answer] = {
    "0001": Answer(400, 131026, "Message undeliverable", "Unable to deliver message: not a WhatsApp number."),
    "0002": Answer(400, 131050, "Unable to deliver the message. This recipient has chosen to stop receiving "
                                "marketing messages on WhatsApp from your business"),
    "0003": Answer(400, 131047, "Re-engagement message", "More than 24 hours have passed since the recipient "
                                                          "last replied to the sender number."),
    "0004": Answer(400, 131021, "Recipient cannot be sender", "Sender and recipient phone number is the same."),
    "0005": Answer(400, 100, "Invalid parameter", "Parameter value is not valid"),
    "0006": Answer(400, 132015, "Template is Paused", "Template is paused due to low quality."),
    "0007": Answer(400, 131056, "(Business Account, Consumer Account) pair rate limit hit"),
    "0008": Answer(401, 190, "Error validating access token: Session has expired"),
    "0009": Answer(403, 10, "Application does not have permission for this action"),
    "0010": Answer(400, 130429, "Rate limit hit", "Cloud API message throughput has been reached."),
    "0011": Answer(400, 131048, "Spam rate limit hit"),
    "0012": Answer(400, 80007, "Rate limit issues", "The WhatsApp Business Account has reached its rate limit."),
    "0013": Answer(400, 368, "Temporarily blocked for policies violations"),
    "0014": Answer(400, 132012, "Parameter format does not match format in the created template"),
    "0015": Answer(400, 131009, "Parameter value is not valid"),  # not in any table: FAILED
    "0429": Answer(429, 4, "Application request limit reached", retry_after="7"),
    "0500": Answer(500, 131000, "Something went wrong"),
    "0501": Answer(503, 131016, "Service unavailable"),
    "0503": Answer(503, None, raw="<html><body>503 Service Unavailable</body></html>"),
}


@dataclass(frozen=True)
class Template:
    """An approved template: its languages and how many body parameters ({{1}}, {{2}} ...) it takes."""

    languages: tuple[str, ...] = ("en_US",)
    body_parameters: int = 0


DEFAULT_TEMPLATES: Mapping[str, Template] = {
    "hello_world": Template(("en_US",), 0),
    "autumn_offer": Template(("en_US", "pt_BR"), 2),
}


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # the parsed JSON, or the raw text when it is not JSON


@dataclass
class WhatsAppPeer(ThreadedPeer):
    phone_number_id: str = "106540352242922"
    access_token: str = "test-access-token"
    app_secret: str = "test-app-secret"
    answers: Mapping[str, Answer] = field(default_factory=lambda: dict(DEFAULT_ANSWERS))
    templates: Mapping[str, Template] = field(default_factory=lambda: dict(DEFAULT_TEMPLATES))
    requests: list[Request] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)  # accepted: the request body with its wamid as "id"
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    thread_name = "whatsapp-peer"

    def handler(self) -> type[_Handler]:
        return type("Handler", (_Handler,), {"graph": self})

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], bytes]:
        """The answer to one POST, recorded first."""
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        request = Request(path, headers, body)
        with self._lock:
            self.requests.append(request)
            status, extra, payload = self._answer(request)
        if isinstance(payload, str):
            return status, {"Content-Type": "text/html"} | extra, payload.encode()
        return status, {"Content-Type": "application/json"} | extra, json.dumps(payload).encode()

    def _answer(self, request: Request) -> tuple[int, dict[str, str], Any]:
        if request.headers.get("authorization") != f"Bearer {self.access_token}":
            return _error(Answer(401, 190, "Error validating access token: The session is invalid"))
        found = re.fullmatch(r"/v\d+\.\d+/([^/]+)/messages", request.path)
        if found is None or found.group(1) != self.phone_number_id:
            return _error(Answer(400, 100, f"Unsupported post request. Object with ID '{request.path}' does not "
                                           "exist, cannot be loaded due to missing permissions, or does not support "
                                           "this operation"), subcode=33)
        body = request.body
        problem = shape_problem(body)
        if problem:
            return _error(Answer(400, 100, "Invalid parameter", problem))
        if body["type"] == "template":
            refused = self._template_problem(body["template"])
            if refused:
                return _error(refused)
        for ending, answer in self.answers.items():
            if body["to"].endswith(ending):
                return _error(answer)
        wamid = "wamid." + base64.b64encode(secrets.token_bytes(36)).decode()
        self.messages.append(body | {"id": wamid})
        accepted: dict[str, Any] = {"id": wamid}
        if body["type"] == "template":
            accepted["message_status"] = "accepted"
        return 200, {}, {"messaging_product": "whatsapp", "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                         "messages": [accepted]}

    def _template_problem(self, template: dict) -> Answer | None:
        known = self.templates.get(template["name"])
        language = template["language"]["code"]
        if known is None or language not in known.languages:
            return Answer(404, 132001, "Template name does not exist in the translation",
                          f"template name ({template['name']}) does not exist in {language}")
        given = sum(len(c.get("parameters", [])) for c in template.get("components", []) if c.get("type") == "body")
        if given != known.body_parameters:
            return Answer(400, 132000, "Number of parameters does not match the expected number of params",
                          f"body: number of localizable_params ({given}) does not match the expected number of "
                          f"params ({known.body_parameters})")
        return None

    # -- webhooks, as Meta sends them ---------------------------------------------------------------------

    def webhook(self, value: dict, *, secret: str | None = None) -> tuple[bytes, dict[str, str]]:
        """The body and headers of one notification carrying ``value`` (a "messages" change), signed."""
        # ensure_ascii (the default), as Meta escapes non-ASCII ("Ol\\u00e1"): the signature covers those bytes
        body = json.dumps(envelope(value, self.phone_number_id)).encode()
        return body, {"Content-Type": "application/json",
                      "X-Hub-Signature-256": sign(self.app_secret if secret is None else secret, body)}

    def post_webhook(self, url: str, value: dict) -> int:
        """POSTs a signed notification to ``url`` over a real socket; returns the HTTP status."""
        body, headers = self.webhook(value)
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status


def shape_problem(body: Any) -> str | None:
    """Why a messages request body is not the documented shape, or None."""
    if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
        return "messaging_product must be 'whatsapp'"
    if body.get("recipient_type", "individual") != "individual":
        return "recipient_type must be 'individual'"
    to = body.get("to")
    if not isinstance(to, str) or not re.fullmatch(r"\d{3,15}", to):
        return "to must be the phone number's digits"
    kind = body.get("type")
    if kind == "text":
        text = body.get("text")
        if not isinstance(text, dict) or not isinstance(text.get("body"), str) or not text["body"].strip():
            return "text.body is required"
        return f"text.body is longer than {TEXT_LIMIT} characters" if len(text["body"]) > TEXT_LIMIT else None
    if kind == "template":
        template = body.get("template")
        if not isinstance(template, dict) or not isinstance(template.get("name"), str):
            return "template.name is required"
        if not isinstance(template.get("language"), dict) or not isinstance(template["language"].get("code"), str):
            return "template.language.code is required"
        for component in template.get("components", []):
            for parameter in component.get("parameters", []):
                if parameter.get("type") != "text" or not isinstance(parameter.get("text"), str):
                    return "body parameters must be {'type': 'text', 'text': ...}"
        return None
    return f"type {kind!r} is not text or template"


def envelope(value: dict, phone_number_id: str = "106540352242922") -> dict:
    """A whole notification: one entry, one "messages" change, the business number's metadata."""
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": phone_number_id}} | value
    return {"object": "whatsapp_business_account",
            "entry": [{"id": WABA_ID, "changes": [{"field": "messages", "value": value}]}]}


def inbound_text(sender: str, body: str, *, wamid: str | None = None, at: float | None = None,
                 name: str = "Ana") -> dict:
    """A "messages" value with one text from ``sender`` (digits, no "+") sent at ``at`` (Unix seconds)."""
    wamid = wamid or "wamid." + secrets.token_hex(16)
    return {"contacts": [{"profile": {"name": name}, "wa_id": sender}],
            "messages": [{"from": sender, "id": wamid, "timestamp": str(int(at or time.time())), "type": "text",
                          "text": {"body": body}}]}


def status_update(wamid: str, status: str, recipient: str, *, at: float | None = None,
                  callback_data: str | None = None, error_code: int | None = None) -> dict:
    """A "messages" value with one status of a message we sent; ``failed`` carries ``errors``."""
    item: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(int(at or time.time())),
                            "recipient_id": recipient}
    if callback_data is not None:
        item["biz_opaque_callback_data"] = callback_data
    if error_code is not None:
        item["errors"] = [{"code": error_code, "title": f"error {error_code}", "message": f"error {error_code}",
                           "error_data": {"details": "as reported by the peer"}}]
    return {"statuses": [item]}


def sign(app_secret: str, body: bytes) -> str:
    """Meta's X-Hub-Signature-256, written out here on its own so that the tests check Clarion's."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def _error(answer: Answer, subcode: int | None = None) -> tuple[int, dict[str, str], Any]:
    headers = {"Retry-After": answer.retry_after} if answer.retry_after else {}
    if answer.raw is not None:
        return answer.status, headers, answer.raw
    data = {"messaging_product": "whatsapp", "details": answer.details or answer.message}
    error: dict[str, Any] = {"message": f"(#{answer.code}) {answer.message}", "type": "OAuthException",
                             "code": answer.code, "error_data": data, "fbtrace_id": "A" + secrets.token_hex(10)}
    if subcode is not None:
        error["error_subcode"] = subcode
    return answer.status, headers, {"error": error}


class _Handler(PeerHandler):
    graph: WhatsAppPeer

    def do_POST(self) -> None:  # noqa: N802 (named by http.server)
        self.reply(*self.graph.handle(self.path, self.lower_headers(), self.request_body()))

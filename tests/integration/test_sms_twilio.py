"""The Twilio SMS channel against a local Messages API on 127.0.0.1 (``tests/twilio_peer.py``).

The peer answers by the recipient number's ending: "...0001" 21211, "...0002" 21610, "...0429" 429 with
Retry-After ... Nothing on the network is mocked; the status callback goes over a real socket too.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest

from channel_runs import send_all
from clarion.channels.base import DeliveryResult, OutboundSms, Outcome
from clarion.channels.sms_twilio import (
    IDEMPOTENCY_HEADER,
    START_KEYWORDS,
    STOP_KEYWORDS,
    TwilioSettings,
    TwilioSmsChannel,
    classify,
    keyword_action,
    verify_signature,
)
from twilio_peer import TwilioPeer

SENDER = "+15550000000"


@pytest.fixture
def peer() -> Iterator[TwilioPeer]:
    with TwilioPeer() as running:
        yield running


def settings(peer: TwilioPeer, **overrides) -> TwilioSettings:
    values = {"account_sid": peer.account_sid, "auth_token": peer.auth_token, "base_url": peer.base_url,
              "from_number": SENDER, "timeout": 5.0} | overrides
    return TwilioSettings(**values)


def sms(to: str, n: int = 0, **fields) -> OutboundSms:
    values = {"to": to, "body": f"Hello {n}", "message_id": f"d{n}", "idempotency_key": f"k{n}-{to}"} | fields
    return OutboundSms(**values)


def send_one(channel_settings: TwilioSettings, message: OutboundSms) -> DeliveryResult:
    return send_all(TwilioSmsChannel(channel_settings), [message])[0]


def test_an_accepted_message_is_sent_with_twilios_sid(peer):
    # given a channel sending from a number, with a status callback
    channel_settings = settings(peer, status_callback_url="https://clarion.example/hooks/twilio?x=1")
    # when
    result = send_one(channel_settings, sms("+15551234567", body="Votre code : 5 €"))
    # then the peer made a message resource, and the form and headers are Twilio's
    assert result.outcome is Outcome.SENT
    assert result.provider_id == peer.messages[0]["sid"]
    assert result.provider_id.startswith("SM") and len(result.provider_id) == 34
    assert result.detail == "queued"
    request = peer.requests[0]
    assert request.form == {"To": "+15551234567", "Body": "Votre code : 5 €", "From": SENDER,
                            "StatusCallback": "https://clarion.example/hooks/twilio?x=1&message_id=d0"}
    assert request.idempotency_token == "k0-+15551234567"
    assert peer.messages[0]["num_segments"] == "1"


def test_the_sender_pool_is_used_unless_the_message_names_its_sender(peer):
    # given a channel with a messaging service
    channel = TwilioSmsChannel(settings(peer, messaging_service_sid="MG" + "1" * 32))
    # when one message has no sender of its own and another has one
    results = send_all(channel, [sms("+15551230010", 1), sms("+15551230011", 2, sender="Shop")])
    # then
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    forms = {r.form["To"]: r.form for r in peer.requests}
    assert forms["+15551230010"]["MessagingServiceSid"] == "MG" + "1" * 32
    assert "From" not in forms["+15551230010"]
    assert forms["+15551230011"]["From"] == "Shop"
    assert {m["status"] for m in peer.messages} == {"accepted", "queued"}


@pytest.mark.parametrize(("to", "outcome", "code"), [
    ("+15551230001", Outcome.BAD_ADDRESS, "21211"),
    ("+15551230002", Outcome.BAD_ADDRESS, "21610"),
    ("+15551230003", Outcome.BAD_ADDRESS, "21614"),
    ("+15551230004", Outcome.BAD_ADDRESS, "21612"),
    ("+15551230005", Outcome.CONFIG_ERROR, "21408"),
    ("+15551230006", Outcome.CONFIG_ERROR, "21606"),
    ("+15551230007", Outcome.FAILED, "30007"),
    ("+15551230500", Outcome.RETRY, "20500"),
    ("+15551230503", Outcome.RETRY, "503"),
])
def test_each_error_is_classified(peer, to, outcome, code):
    # when
    result = send_one(settings(peer), sms(to))
    # then
    assert (result.outcome, result.code) == (outcome, code)
    assert result.detail
    assert not peer.messages


def test_a_body_over_twilios_limit_fails_the_message_not_the_address(peer):
    # when the body is longer than Twilio's 1600 characters
    result = send_one(settings(peer), sms("+15551234567", body="a" * 1601))
    # then
    assert (result.outcome, result.code) == (Outcome.FAILED, "21617")


def test_rate_limiting_is_retried_after_the_time_twilio_asks(peer):
    # when
    result = send_one(settings(peer), sms("+15551230429"))
    # then
    assert (result.outcome, result.code, result.retry_after) == (Outcome.RETRY, "20429", 7.0)


@pytest.mark.parametrize("overrides", [{"auth_token": "wrong"}, {"account_sid": "AC" + "9" * 32}])
def test_wrong_credentials_are_a_config_error(peer, overrides):
    # when the token is wrong (401, 20003), or the account SID another (the path then differs)
    result = send_one(settings(peer, **overrides), sms("+15551234567"))
    # then
    assert result.outcome is Outcome.CONFIG_ERROR
    assert result.code in {"20003", "20404"}
    assert not peer.messages


def test_an_unreachable_api_is_retried():
    # given a port nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel_settings = TwilioSettings(account_sid="AC1", auth_token="t", base_url=f"http://127.0.0.1:{port}",
                                      from_number=SENDER, timeout=2.0)
    # when
    result = send_one(channel_settings, sms("+15551234567"))
    # then
    assert result.outcome is Outcome.RETRY
    assert "Connect" in result.detail


def test_a_replayed_idempotency_token_sends_one_message(peer):
    # given the same message sent twice, as a retry after a lost answer would
    message = sms("+15551234567", idempotency_key="delivery-42")
    channel = TwilioSmsChannel(settings(peer))
    # when
    first, second = send_all(channel, [message, message])
    # then both get the same sid; the peer saw two requests and made one message
    assert first.outcome is second.outcome is Outcome.SENT
    assert first.provider_id == second.provider_id
    assert len(peer.requests) == 2 and len(peer.messages) == 1
    assert {r.headers[IDEMPOTENCY_HEADER.lower()] for r in peer.requests} == {"delivery-42"}


def test_a_number_that_is_not_e164_is_refused_without_a_request(peer):
    # when
    result = send_one(settings(peer), sms("0612345678"))
    # then
    assert result.outcome is Outcome.BAD_ADDRESS
    assert not peer.requests


def test_no_sender_at_all_is_a_config_error(peer):
    # when neither the message nor the settings name a sender
    result = send_one(settings(peer, from_number=None), sms("+15551234567"))
    # then
    assert result.outcome is Outcome.CONFIG_ERROR
    assert not peer.requests


@pytest.mark.parametrize(("status", "payload", "outcome"), [
    (200, {"sid": "SM1", "status": "accepted"}, Outcome.SENT),
    (200, {}, Outcome.CONFIG_ERROR),
    (400, {"code": 20429}, Outcome.RETRY),
    (401, {}, Outcome.CONFIG_ERROR),
    (404, {"code": 20404}, Outcome.CONFIG_ERROR),
    (400, {"code": 21212}, Outcome.CONFIG_ERROR),
    (403, {"code": 20008}, Outcome.FAILED),
    (502, {}, Outcome.RETRY),
])
def test_classification_table(status, payload, outcome):
    # when / then
    assert classify(status, payload).outcome is outcome


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, str], dict[str, str]]]

    def do_POST(self) -> None:  # noqa: N802 (named by http.server)
        form = dict(parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
        self.received.append((self.path, dict(self.headers), form))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list]]:
    received: list = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_the_signature_of_a_status_callback_is_verified(peer, receiver):
    # given a delivery receipt for a message, posted by the peer over a socket
    base, received = receiver
    url = f"{base}/hooks/twilio?message_id=d42"
    assert peer.send_status_callback(url, "SM" + "a" * 32) == 204
    path, headers, form = received[0]
    signature = headers["X-Twilio-Signature"]
    # when / then the signature holds for the URL and parameters as received
    assert form["MessageStatus"] == "delivered"
    assert verify_signature(peer.auth_token, base + path, form, signature)
    # and fails for a tampered parameter, URL or token
    assert not verify_signature(peer.auth_token, base + path, form | {"MessageStatus": "failed"}, signature)
    assert not verify_signature(peer.auth_token, f"{base}/hooks/twilio?message_id=d43", form, signature)
    assert not verify_signature("another-token", base + path, form, signature)
    assert not verify_signature(peer.auth_token, base + path, form, "")


def test_twilios_own_signature_vector():
    # given the vector of Twilio's own SDK tests (twilio-csharp, Twilio.Tests/Security/RequestValidatorTest.cs)
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234", "From": "+14158675309",
              "To": "+18005551212"}
    # when / then
    assert verify_signature("12345", url, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


@pytest.mark.parametrize(("body", "action"), [
    ("STOP", "opt_out"), ("stop", "opt_out"), ("  Unsubscribe\n", "opt_out"), ("stopall", "opt_out"),
    ("OptOut", "opt_out"), ("revoke", "opt_out"), ("quit", "opt_out"), ("END", "opt_out"), ("cancel", "opt_out"),
    ("START", "opt_in"), ("yes", "opt_in"), ("Unstop", "opt_in"),
    ("STOP please", None), ("please stop", None), ("HELP", None), ("", None), ("stop!", None),
])
def test_keyword_action(body, action):
    # when / then
    assert keyword_action(body) == action


def test_the_keyword_sets_are_twilios_defaults():
    # then
    assert STOP_KEYWORDS == {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
    assert START_KEYWORDS == {"START", "YES", "UNSTOP"}

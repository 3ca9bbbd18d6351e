"""The WhatsApp channel against a local Cloud API on 127.0.0.1 (``tests/whatsapp_peer.py``).

The peer checks the token, the phone number id, the JSON shape and the templates it knows, then answers by
the recipient number's ending: "...0001" 131026, "...0002" 131050, "...0429" 429 with Retry-After ...
Nothing on the network is mocked.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from channel_runs import send_all
from clarion.channels.base import DeliveryResult, OutboundWhatsApp, Outcome
from clarion.channels.whatsapp import (
    WHATSAPP_STOPPED_MARKETING,
    WhatsAppChannel,
    WhatsAppSettings,
    classify,
)
from clarion.config import Settings
from clarion.content.errors import RenderError
from clarion.content.template_store import template_from_document
from clarion.messages.whatsapp_compose import WhatsAppComposer
from clarion.runners.dispatch import Leased
from whatsapp_peer import DEFAULT_ANSWERS, WhatsAppPeer


@pytest.fixture
def peer() -> Iterator[WhatsAppPeer]:
    with WhatsAppPeer() as running:
        yield running


def settings(peer: WhatsAppPeer, **overrides) -> WhatsAppSettings:
    values = {"phone_number_id": peer.phone_number_id, "access_token": peer.access_token,
              "base_url": peer.base_url, "timeout": 5.0} | overrides
    return WhatsAppSettings(**values)


def template(to: str, n: int = 0, **fields) -> OutboundWhatsApp:
    values = {"to": to, "message_id": f"{n}.abc", "idempotency_key": f"k{n}", "template": "autumn_offer",
              "language": "en_US", "parameters": ("Ana", "20%")} | fields
    return OutboundWhatsApp(**values)


def send_one(channel_settings: WhatsAppSettings, message: OutboundWhatsApp) -> DeliveryResult:
    return send_all(WhatsAppChannel(channel_settings), [message])[0]


def test_a_template_message_is_sent_with_the_documented_json_and_the_wamid_kept(peer):
    # when a template with two body parameters goes to a number
    result = send_one(settings(peer), template("+15551234567"))
    # then the peer accepted it and the wamid is the provider id
    (message,) = peer.messages
    assert result.outcome is Outcome.SENT
    assert result.provider_id == message["id"] and result.provider_id.startswith("wamid.")
    assert result.detail == "accepted"
    # and the request is the Cloud API's shape: digits without "+", body parameters in order, our message id
    request = peer.requests[0]
    assert request.path == f"/v21.0/{peer.phone_number_id}/messages"
    assert request.headers["authorization"] == f"Bearer {peer.access_token}"
    assert request.body == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": "15551234567",
        "biz_opaque_callback_data": "0.abc", "type": "template",
        "template": {"name": "autumn_offer", "language": {"code": "en_US"}, "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "20%"}]}]}}


def test_free_form_text_is_sent_without_a_link_preview(peer):
    # when
    result = send_one(settings(peer), OutboundWhatsApp(to="+15551234567", message_id="1.x", idempotency_key="k",
                                                       text="Olá Ana, still there? 😀"))
    # then
    assert result.outcome is Outcome.SENT
    body = peer.requests[0].body
    assert body["type"] == "text" and body["text"] == {"body": "Olá Ana, still there? 😀", "preview_url": False}
    assert "template" not in body


def test_a_template_without_variables_has_no_components(peer):
    # when the template takes no parameters (the peer knows hello_world with none)
    result = send_one(settings(peer), template("+15551234567", template="hello_world", parameters=()))
    # then it is accepted, and no empty components list was sent
    assert result.outcome is Outcome.SENT
    assert peer.requests[0].body["template"] == {"name": "hello_world", "language": {"code": "en_US"}}


EXPECTED = {  # the recipient ending the peer scripts -> (outcome, code)
    "0001": (Outcome.FAILED, "131026"),  # not on WhatsApp: never suppress the shared phone
    "0002": (Outcome.BAD_ADDRESS, WHATSAPP_STOPPED_MARKETING),
    "0003": (Outcome.FAILED, "131047"),
    "0004": (Outcome.FAILED, "131021"),
    "0005": (Outcome.FAILED, "100"),
    "0006": (Outcome.CONFIG_ERROR, "132015"),
    "0007": (Outcome.RETRY, "131056"),
    "0008": (Outcome.CONFIG_ERROR, "190"),
    "0009": (Outcome.CONFIG_ERROR, "10"),
    "0010": (Outcome.RETRY, "130429"),
    "0011": (Outcome.RETRY, "131048"),
    "0012": (Outcome.RETRY, "80007"),
    "0013": (Outcome.CONFIG_ERROR, "368"),
    "0014": (Outcome.CONFIG_ERROR, "132012"),
    "0015": (Outcome.FAILED, "131009"),
    "0429": (Outcome.RETRY, "4"),
    "0500": (Outcome.RETRY, "131000"),
    "0501": (Outcome.RETRY, "131016"),
    "0503": (Outcome.RETRY, "503"),
}


def test_every_scripted_answer_of_the_peer_has_an_expectation():
    # then: a new scripted answer cannot go untested
    assert set(EXPECTED) == set(DEFAULT_ANSWERS)


@pytest.mark.parametrize(("ending", "expected"), sorted(EXPECTED.items()))
def test_each_error_is_classified(peer, ending, expected):
    # when
    result = send_one(settings(peer), template(f"+1555123{ending}"))
    # then
    assert (result.outcome, result.code) == expected
    assert result.detail
    assert not peer.messages


def test_the_error_detail_keeps_metas_details_and_trace_id(peer):
    # when
    result = send_one(settings(peer), template("+15551230001"))
    # then
    assert result.detail.startswith("(#131026) Message undeliverable: Unable to deliver message")
    assert "(fbtrace_id A" in result.detail


def test_rate_limiting_is_retried_after_the_time_meta_asks(peer):
    # when
    result = send_one(settings(peer), template("+15551230429"))
    # then
    assert (result.outcome, result.code, result.retry_after) == (Outcome.RETRY, "4", 7.0)


@pytest.mark.parametrize(("fields", "code"), [
    ({"template": "spring_sale"}, "132001"),  # not an approved template
    ({"language": "de_DE"}, "132001"),  # approved, but not in this language
    ({"parameters": ("Ana",)}, "132000"),  # autumn_offer takes two
])
def test_template_problems_are_a_config_error_that_pauses_the_campaign(peer, fields, code):
    # when
    result = send_one(settings(peer), template("+15551234567", **fields))
    # then
    assert (result.outcome, result.code) == (Outcome.CONFIG_ERROR, code)
    assert not peer.messages


@pytest.mark.parametrize(("overrides", "code"), [
    ({"access_token": "wrong"}, "190"),
    ({"phone_number_id": "999999999999999"}, "100"),  # the Graph API: no such object (subcode 33)
])
def test_wrong_credentials_or_number_id_are_a_config_error(peer, overrides, code):
    # when
    result = send_one(settings(peer, **overrides), template("+15551234567"))
    # then
    assert (result.outcome, result.code) == (Outcome.CONFIG_ERROR, code)
    assert not peer.messages


def test_an_unreachable_api_is_retried():
    # given a port nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel_settings = WhatsAppSettings(phone_number_id="1", access_token="t", base_url=f"http://127.0.0.1:{port}",
                                        timeout=2.0)
    # when
    result = send_one(channel_settings, template("+15551234567"))
    # then
    assert result.outcome is Outcome.RETRY
    assert "Connect" in result.detail


def test_an_api_that_does_not_answer_in_time_is_retried():
    # given a server that accepts the connection and never answers
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
    thread.start()
    channel_settings = WhatsAppSettings(phone_number_id="1", access_token="t", timeout=0.5,
                                        base_url=f"http://127.0.0.1:{listener.getsockname()[1]}")
    try:
        # when
        result = send_one(channel_settings, template("+15551234567"))
    finally:
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()
    # then
    assert result.outcome is Outcome.RETRY
    assert result.detail.startswith("timed out")


@pytest.mark.parametrize("message", [
    template("0612345678"),  # not E.164
    OutboundWhatsApp(to="+15551234567", message_id="1.x", idempotency_key="k"),  # neither text nor template
])
def test_a_message_that_cannot_be_sent_fails_without_a_request(peer, message):
    # when
    result = send_one(settings(peer), message)
    # then it fails the message (never BAD_ADDRESS: the phone is shared with SMS and voice)
    assert result.outcome is Outcome.FAILED
    assert not peer.requests


def test_send_after_aclose_is_a_bug_of_the_caller(peer):
    # given
    channel = WhatsAppChannel(settings(peer))
    asyncio.run(channel.aclose())
    # when / then
    with pytest.raises(RuntimeError, match="after aclose"):
        asyncio.run(channel.send(template("+15551234567")))


def _error(code, **extra) -> dict:
    return {"error": {"message": f"(#{code}) x", "type": "OAuthException", "code": code, **extra}}


@pytest.mark.parametrize(("status", "payload", "outcome"), [
    (200, {"messages": [{"id": "wamid.1"}]}, Outcome.SENT),
    (200, {}, Outcome.CONFIG_ERROR),  # a 2xx without a message id: not the Graph API
    (200, {"messages": []}, Outcome.CONFIG_ERROR),
    *[(401, _error(code), Outcome.CONFIG_ERROR) for code in (0, 190)],
    (500, _error(3), Outcome.CONFIG_ERROR),  # Meta answers code 3 with HTTP 500: the code decides, not the status
    *[(403, _error(code), Outcome.CONFIG_ERROR) for code in (10, 200, 250, 299)],
    (400, _error(33), Outcome.CONFIG_ERROR),
    (400, _error(100, error_subcode=33), Outcome.CONFIG_ERROR),
    *[(400, _error(code), Outcome.CONFIG_ERROR) for code in (368, 131031, 131042, 131037, 133010)],
    *[(400, _error(code), Outcome.CONFIG_ERROR) for code in (132000, 132001, 132005, 132007, 132012, 132015,
                                                             132016)],
    *[(400, _error(code), Outcome.RETRY) for code in (4, 80007, 130429, 131048, 131056, 131049)],
    *[(500, _error(code), Outcome.RETRY) for code in (1, 2, 131000)],
    (503, _error(131016), Outcome.RETRY),
    (429, {}, Outcome.RETRY),
    (502, {"message": "<html>Bad gateway</html>"}, Outcome.RETRY),
    (400, _error(131050), Outcome.BAD_ADDRESS),
    *[(400, _error(code), Outcome.FAILED) for code in (131026, 131047, 131021, 100, 131051, 12345)],
    (400, _error(100, error_subcode=2494010), Outcome.FAILED),
    (401, {}, Outcome.CONFIG_ERROR),  # no Graph error body: a proxy or a wrong base_url
    (404, {}, Outcome.CONFIG_ERROR),
    (400, {}, Outcome.FAILED),
])
def test_classification_table(status, payload, outcome):
    # when / then
    assert classify(status, payload).outcome is outcome


def test_only_131050_is_a_bad_address():
    # then: every other per-recipient refusal leaves the shared phone alone
    assert classify(400, _error(131050)).code == WHATSAPP_STOPPED_MARKETING == "131050"
    assert classify(400, _error(131026)).outcome is not Outcome.BAD_ADDRESS


def test_settings_come_from_clarions_settings_and_refuse_nonsense():
    # given
    clarion_settings = Settings(_env_file=None, whatsapp_phone_number_id="106540352242922",
                                whatsapp_access_token="EAAG", whatsapp_base_url="http://127.0.0.1:9/",
                                whatsapp_api_version="v20.0", whatsapp_concurrency=3)
    # when
    built = WhatsAppSettings.from_settings(clarion_settings)
    # then
    assert built.messages_url == "http://127.0.0.1:9/v20.0/106540352242922/messages"
    assert built.max_connections == 3 and "EAAG" not in repr(built)
    assert isinstance(WhatsAppChannel.from_settings(clarion_settings), WhatsAppChannel)
    for bad in ({"phone_number_id": ""}, {"access_token": ""}, {"phone_number_id": "+15551234567"},
                {"api_version": "21"}, {"timeout": 0}):
        with pytest.raises(ValueError):
            WhatsAppSettings(**({"phone_number_id": "1", "access_token": "t"} | bad))


# -- the composer: text inside the 24-hour window, the template outside it ------------------------------------

AUTUMN = {"default_locale": "en", "default": {"whatsapp": {
    "template": "autumn_offer", "language": "en_US",
    "parameters": ["{{ contact.first_name }}", "{{ 0.2 | percent }}"],
    "text": "{{ contact.first_name }}, your code AUTUMN is worth {{ 0.2 | percent }}."}},
    "variants": {"pt": {"whatsapp": {"template": "autumn_offer", "language": "pt_BR",
                                     "parameters": ["{{ contact.first_name }}", "{{ 0.2 | percent }}"]}}}}
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def compose(document: dict, last_inbound_at: datetime | None, **profile) -> OutboundWhatsApp:
    campaign = SimpleNamespace(template=template_from_document(document), id=7, channel="whatsapp",
                               render_view={"id": 7, "name": "autumn"}, marketing=True)
    item = Leased(row=SimpleNamespace(id=11, step="main", contact_id=3, data={}),
                  profile={"id": 3, "first_name": "Ana", "phone": "+14155550101"} | profile,
                  address="+14155550101", last_inbound_at=last_inbound_at)
    return WhatsAppComposer(Settings(_env_file=None)).compose(campaign, item, NOW)


@pytest.mark.parametrize(("wrote", "kind"), [
    (timedelta(hours=1), "text"),
    (timedelta(hours=23, minutes=59), "text"),
    (timedelta(hours=24), "template"),  # the window is 24 hours, its end excluded (as the session policy)
    (timedelta(days=3), "template"),
    (None, "template"),  # never wrote
])
def test_the_composer_sends_text_only_inside_the_window(wrote, kind):
    # when
    message = compose(AUTUMN, NOW - wrote if wrote else None)
    # then exactly one of text and template is set, and the ids derive from the delivery
    assert (message.text is not None, message.template is not None) == (kind == "text", kind == "template")
    assert message.to == "+14155550101" and message.message_id.startswith("11.")
    if kind == "text":
        assert message.text == "Ana, your code AUTUMN is worth 20%."
    else:
        assert (message.template, message.language, message.parameters) == ("autumn_offer", "en_US", ("Ana", "20%"))


def test_the_composer_uses_the_variants_approved_language():
    # when a pt-BR contact (whose variant has no text) is composed inside the window
    message = compose(AUTUMN, NOW - timedelta(hours=1), locale="pt-BR", first_name="João")
    # then the template goes in its pt_BR translation, with the numbers in the contact's locale
    assert (message.template, message.language, message.parameters) == ("autumn_offer", "pt_BR", ("João", "20%"))


def test_text_only_content_outside_the_window_is_a_render_error():
    # given content without an approved template (the policy chain normally skips these first)
    document = {"default": {"whatsapp": {"text": "Hi {{ contact.first_name }}"}}}
    # when / then
    with pytest.raises(RenderError) as caught:
        compose(document, NOW - timedelta(days=2))
    assert caught.value.part == "whatsapp.text" and "24 hours" in str(caught.value)
    assert compose(document, NOW - timedelta(hours=2)).text == "Hi Ana"

"""Voice calls: the Twilio Calls adapter against a local peer (tests/twilio_peer.py), the composer's
language, a voice campaign end to end, quiet hours that even transactional calls keep, and the signed
call status callback. Nothing on the network is mocked: every request crosses a real socket.
"""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from delivery_world import Clock, make_campaign, run
from fastapi.testclient import TestClient
from sqlalchemy import select
from test_twilio_hooks import TOKEN, post

from channel_runs import send_all
from clarion.api.app import create_app
from clarion.bootstrap import Clarion
from clarion.channels.base import DeliveryResult, OutboundCall, Outcome
from clarion.channels.file import ConsoleCallChannel
from clarion.channels.voice_twilio import (
    STATUS_EVENTS,
    TwilioVoiceChannel,
    TwilioVoiceSettings,
    classify,
    say_twiml,
)
from clarion.domain.consent import Channel, ConsentStatus
from clarion.domain.profiles import ProfilePatch
from clarion.messages.voice_compose import VoiceComposer, say_language
from clarion.runners.dispatch import ChannelBinding
from clarion.runners.worker import Worker
from clarion.services.campaigns import CampaignService
from clarion.services.delivery_defaults import set_defaults
from clarion.services.identity import Identifiers
from clarion.store.schema_delivery import deliveries, delivery_log
from twilio_peer import TwilioPeer, parse_says

CALLER_ID = "+14155550100"
NOON_UTC = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
VOICE_TEMPLATE = {
    "default_locale": "en",
    "default": {"voice": {"say": "Hello {{ contact.first_name }}, your appointment is tomorrow at nine."}},
    "variants": {"pt-BR": {"voice": {"say": "Olá {{ contact.first_name }}, a sua consulta é amanhã às nove.",
                                     "voice": "Polly.Camila"}}},
}


@pytest.fixture
def peer() -> Iterator[TwilioPeer]:
    with TwilioPeer() as running:
        yield running


def voice_settings(peer: TwilioPeer, **overrides) -> TwilioVoiceSettings:
    values = {"account_sid": peer.account_sid, "auth_token": peer.auth_token, "base_url": peer.base_url,
              "from_number": CALLER_ID, "timeout": 5.0} | overrides
    return TwilioVoiceSettings(**values)


def call(to: str, n: int = 0, **fields) -> OutboundCall:
    values = {"to": to, "text": f"Hello {n}", "language": "en-US", "message_id": f"d{n}",
              "idempotency_key": f"k{n}-{to}"} | fields
    return OutboundCall(**values)


def send_one(settings: TwilioVoiceSettings, message: OutboundCall) -> DeliveryResult:
    return send_all(TwilioVoiceChannel(settings), [message])[0]


# -- the adapter ---------------------------------------------------------------------------------------

def test_a_placed_call_says_the_text_in_its_language_and_reports_its_progress(peer):
    # given a channel with a status callback URL
    settings = voice_settings(peer, status_callback_url="https://clarion.example/hooks/twilio/voice/status")
    # when a call is placed
    result = send_one(settings, call("+5511987654321", text="Olá Ana", language="pt-BR", voice="Polly.Camila"))
    # then Twilio made a call resource and will say the text in Portuguese, in that voice
    (placed,) = peer.calls
    assert result.outcome is Outcome.SENT and result.provider_id == placed.sid
    assert placed.sid.startswith("CA") and len(placed.sid) == 34 and result.detail == "queued"
    assert (placed.text, placed.language, placed.voice) == ("Olá Ana", "pt-BR", "Polly.Camila")
    assert placed.twiml == '<Response><Say language="pt-BR" voice="Polly.Camila">Olá Ana</Say></Response>'
    # and the request is Twilio's: caller id, the idempotency token, a callback naming Clarion's message
    request = peer.requests[0]
    assert request.form["From"] == CALLER_ID and request.idempotency_token == "k0-+5511987654321"
    assert placed.status_callback == "https://clarion.example/hooks/twilio/voice/status?message_id=d0"
    assert placed.status_callback_events == STATUS_EVENTS == ("initiated", "ringing", "answered", "completed")
    assert placed.machine_detection is None


def test_machine_detection_and_the_default_voice_are_sent_when_configured(peer):
    # when the channel has answering machine detection and a default voice, and the call names no voice
    send_one(voice_settings(peer, machine_detection="Enable", default_voice="Polly.Joanna"), call("+14155550142"))
    # then
    (placed,) = peer.calls
    assert placed.machine_detection == "Enable" and placed.voice == "Polly.Joanna"
    assert "StatusCallback" not in peer.requests[0].form


@pytest.mark.parametrize(("to", "outcome", "code"), [
    ("+14155550001", Outcome.BAD_ADDRESS, "21211"),  # invalid To
    ("+14155550013", Outcome.BAD_ADDRESS, "13224"),  # number not supported or invalid
    ("+14155550023", Outcome.BAD_ADDRESS, "13223"),  # bad format
    ("+14155550010", Outcome.CONFIG_ERROR, "21210"),  # caller id not verified
    ("+14155550012", Outcome.CONFIG_ERROR, "21212"),  # invalid From
    ("+14155550015", Outcome.FAILED, "21215"),  # geo permissions
    ("+14155550016", Outcome.FAILED, "21216"),  # blocked by Twilio
    ("+14155550429", Outcome.RETRY, "20429"),
    ("+14155550500", Outcome.RETRY, "20500"),
    ("+14155550503", Outcome.RETRY, "503"),
])
def test_each_calls_api_error_is_classified(peer, to, outcome, code):
    # when
    result = send_one(voice_settings(peer), call(to))
    # then
    assert (result.outcome, result.code) == (outcome, code)
    assert result.detail
    assert not peer.calls


def test_rate_limiting_is_retried_after_the_time_twilio_asks(peer):
    # when / then
    result = send_one(voice_settings(peer), call("+14155550429"))
    assert (result.outcome, result.retry_after) == (Outcome.RETRY, 7.0)


@pytest.mark.parametrize("overrides", [{"auth_token": "wrong"}, {"account_sid": "AC" + "9" * 32}])
def test_wrong_credentials_are_a_config_error(peer, overrides):
    # when the token is wrong (401, 20003), or the account SID another (404, 20404)
    result = send_one(voice_settings(peer, **overrides), call("+14155550142"))
    # then
    assert (result.outcome, result.code) in {(Outcome.CONFIG_ERROR, "20003"), (Outcome.CONFIG_ERROR, "20404")}
    assert not peer.calls


def test_a_closed_port_is_retried():
    # given a port nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = TwilioVoiceSettings(account_sid="AC1", auth_token="t", base_url=f"http://127.0.0.1:{port}",
                                   from_number=CALLER_ID, timeout=2.0)
    # when / then
    result = send_one(settings, call("+14155550142"))
    assert result.outcome is Outcome.RETRY and "Connect" in result.detail


def test_a_replayed_idempotency_token_rings_once(peer):
    # given the same call sent twice, as a retry after a lost answer would
    message = call("+14155550142", idempotency_key="delivery-7")
    # when
    first, second = send_all(TwilioVoiceChannel(voice_settings(peer)), [message, message])
    # then both answers name the same call; the peer saw two requests and placed one call
    assert first.provider_id == second.provider_id and first.outcome is Outcome.SENT
    assert len(peer.requests) == 2 and len(peer.calls) == 1


@pytest.mark.parametrize(("settings_overrides", "to", "outcome"), [
    ({}, "0612345678", Outcome.BAD_ADDRESS),  # not E.164
    ({"from_number": None}, "+14155550142", Outcome.CONFIG_ERROR),  # no caller id anywhere
])
def test_what_cannot_be_called_is_refused_without_a_request(peer, settings_overrides, to, outcome):
    # when / then
    assert send_one(voice_settings(peer, **settings_overrides), call(to)).outcome is outcome
    assert not peer.requests


def test_twiml_over_twilios_4000_characters_fails_before_sending(peer):
    # when the text makes the TwiML longer than the Calls API takes
    result = send_one(voice_settings(peer), call("+14155550142", text="a" * 3990))
    # then the call fails (the number is fine) without a request
    assert (result.outcome, result.code) == (Outcome.FAILED, "32018")
    assert not peer.requests


def test_xml_in_the_text_is_spoken_not_obeyed(peer):
    # given a text and a voice with XML's special characters, and a control character XML forbids
    text = 'Ana <&> "Bo" </Say><Hangup/> \x07'
    # when it is placed
    result = send_one(voice_settings(peer), call("+14155550142", text=text, voice='x" y="1'))
    # then the peer parsed one <Say> with the text as written and no extra verb
    assert result.outcome is Outcome.SENT
    (placed,) = peer.calls
    assert placed.text == 'Ana <&> "Bo" </Say><Hangup/> ' and placed.voice == 'x" y="1'
    assert "<Hangup" not in placed.twiml and len(placed.says) == 1


@pytest.mark.parametrize(("form", "code"), [
    ({"Twiml": "a" * 4001}, 32018),
    ({"Twiml": "<Response><Say>unclosed</Response>"}, 12100),
    ({"Twiml": "<Say>no response root</Say>"}, 12100),
    ({"Twiml": "<Response><Say>Ana <&> Bo</Say></Response>"}, 12100),  # what unescaped text would send
    ({}, 21200),  # no instructions at all
    ({"Twiml": "<Response/>", "To": ""}, 21201),
    ({"Twiml": "<Response/>", "From": "shop"}, 21212),
])
def test_the_peer_refuses_what_twilio_refuses(peer, form, code):
    # given a raw request, past the adapter's own checks
    data = {"To": "+14155550142", "From": CALLER_ID} | form
    # when
    answer = httpx.post(f"{peer.base_url}/2010-04-01/Accounts/{peer.account_sid}/Calls.json", data=data,
                        auth=(peer.account_sid, peer.auth_token))
    # then
    assert answer.status_code == 400 and answer.json()["code"] == code
    assert not peer.calls


@pytest.mark.parametrize(("status", "payload", "outcome"), [
    (201, {"sid": "CA1", "status": "queued"}, Outcome.SENT),
    (200, {}, Outcome.CONFIG_ERROR),
    (400, {"code": 13224}, Outcome.BAD_ADDRESS),
    (400, {"code": 13223}, Outcome.BAD_ADDRESS),
    (400, {"code": 21211}, Outcome.BAD_ADDRESS),
    (400, {"code": 21210}, Outcome.CONFIG_ERROR),
    (400, {"code": 21212}, Outcome.CONFIG_ERROR),
    (401, {"code": 20003}, Outcome.CONFIG_ERROR),
    (400, {"code": 21215}, Outcome.FAILED),
    (400, {"code": 21216}, Outcome.FAILED),
    (400, {"code": 20429}, Outcome.RETRY),
    (429, {}, Outcome.RETRY),
    (502, {}, Outcome.RETRY),
    (400, {"code": 21220}, Outcome.FAILED),  # any other 4xx
])
def test_classification_table(status, payload, outcome):
    assert classify(status, payload).outcome is outcome


def test_say_twiml_is_parsed_back_to_the_same_words():
    # when / then: what the adapter writes, an XML parser reads back exactly
    (said,) = parse_says(say_twiml("5 < 6 & \"7\" > 'x'", "fr-FR", "Polly.Léa"))
    assert (said.text, said.language, said.voice) == ("5 < 6 & \"7\" > 'x'", "fr-FR", "Polly.Léa")


def test_the_console_channel_prints_the_call():
    stream = io.StringIO()
    result = asyncio.run(ConsoleCallChannel(stream).send(call("+14155550142", text="Olá", language="pt-BR")))
    assert result.outcome is Outcome.SENT
    assert stream.getvalue() == "call to=+14155550142 language=pt-BR voice=- say='Olá' id=d0\n"


def test_settings_ask_for_status_callbacks_only_when_told(app):
    # given the workspace's settings, without and with status callbacks
    base = app.settings.model_copy(update={"twilio_account_sid": "AC1", "twilio_auth_token": "t",
                                           "voice_from": CALLER_ID, "voice_concurrency": 3,
                                           "public_url": "https://clarion.example/"})
    quiet = TwilioVoiceSettings.from_settings(base)
    told = TwilioVoiceSettings.from_settings(base.model_copy(update={"twilio_status_callbacks": True}))
    # then
    assert quiet.status_callback_url is None and quiet.from_number == CALLER_ID and quiet.max_connections == 3
    assert told.status_callback_url == "https://clarion.example/hooks/twilio/voice/status"


# -- the composer's language ------------------------------------------------------------------------

@pytest.mark.parametrize(("locale", "fallback", "language"), [
    ("pt-BR", "en", "pt-BR"), ("pt", "en", "pt-BR"), ("pt-PT", "en", "pt-PT"), ("pt-AO", "en", "pt-BR"),
    ("en", "en", "en-US"), ("en-GB", "en", "en-GB"), ("fr", "en", "fr-FR"), ("fr-CA", "en", "fr-CA"),
    ("es", "en", "es-ES"), ("es-MX", "en", "es-MX"), ("de_AT", "en", "de-AT"), ("zh-Hant", "en", "zh-TW"),
    ("zh-Hant-HK", "en", "zh-HK"), ("xx", "fr", "fr-FR"), ("xx", "yy", "en-US"), (None, "es", "es-ES"),
])
def test_say_language(locale, fallback, language):
    assert say_language(locale, fallback) == language


# -- a voice campaign ---------------------------------------------------------------------------------

def add_caller(app, phone: str, first_name: str, *, locale: str | None = None, timezone: str = "UTC",
               consent: bool = True) -> int:
    with app.store.write() as conn:
        contact_id = app.contacts.identify(conn, Identifiers(phone=phone), ProfilePatch(
            first_name=first_name, locale=locale, timezone=timezone))
        if consent:
            app.consent.record(conn, contact_id, Channel.VOICE, ConsentStatus.OPTED_IN, source="test")
    return contact_id


def voice_worker(app, peer: TwilioPeer, clock) -> Worker:
    settings = app.settings.model_copy(update={"voice_from": CALLER_ID})
    channel = TwilioVoiceChannel(voice_settings(peer))
    return Worker(app, channels={"voice": ChannelBinding(VoiceComposer(settings), channel, concurrency=2)},
                  clock=clock)


def rows(app) -> dict[int, tuple[str, str | None]]:
    with app.store.read() as conn:
        return {r.contact_id: (r.status, r.reason) for r in conn.execute(select(deliveries))}


def test_a_voice_campaign_calls_each_contact_in_their_language(app, peer):
    # given a Brazilian contact, an English one whose name holds XML, and one without voice consent
    ana = add_caller(app, "+5511987654321", "Ana", locale="pt-BR", timezone="America/Sao_Paulo")
    bo = add_caller(app, "+14155550142", 'Bo <&> "Jr"', locale="en")
    silent = add_caller(app, "+14155550143", "Cy", consent=False)
    make_campaign(app, "remind", channel="voice", rule="phone exists", template_document=VOICE_TEMPLATE,
                  clock=lambda: NOON_UTC)
    # when the worker runs
    run(voice_worker(app, peer, lambda: NOON_UTC))
    # then Ana hears Portuguese in pt-BR, Bo English in en-US with his name spoken as written
    calls = {c.to: c for c in peer.calls}
    assert sorted(calls) == ["+14155550142", "+5511987654321"]
    pt = calls["+5511987654321"]
    assert (pt.text, pt.language, pt.voice) == ("Olá Ana, a sua consulta é amanhã às nove.", "pt-BR", "Polly.Camila")
    en = calls["+14155550142"]
    assert (en.text, en.language) == ('Hello Bo <&> "Jr", your appointment is tomorrow at nine.', "en-US")
    assert '<Say language="en-US">Hello Bo &lt;&amp;&gt; "Jr",' in en.twiml
    # and the ledger says so, with Twilio's call sids
    assert rows(app) == {ana: ("sent", None), bo: ("sent", None), silent: ("skipped", "no_consent")}
    with app.store.read() as conn:
        assert {r.provider_id for r in conn.execute(select(deliveries)) if r.provider_id} == set(
            c.sid for c in peer.calls)


def test_a_variant_without_its_own_voice_part_speaks_the_default_in_the_defaults_language(app, peer):
    # given a French variant that only has an SMS text: the call's words come from the English default
    template = {"default_locale": "en", "default": {"voice": {"say": "Hello {{ contact.first_name }}"}},
                "variants": {"fr": {"sms": {"text": "Bonjour"}}}}
    add_caller(app, "+33612345678", "Zoé", locale="fr-FR", timezone="Europe/Paris")
    make_campaign(app, "remind", channel="voice", rule="phone exists", template_document=template,
                  clock=lambda: NOON_UTC)
    # when
    run(voice_worker(app, peer, lambda: NOON_UTC))
    # then English words are spoken by an English voice, not read with a French accent
    (placed,) = peer.calls
    assert (placed.text, placed.language) == ("Hello Zoé", "en-US")


def test_even_a_transactional_call_keeps_quiet_hours_when_none_are_configured(app, peer):
    # given no quiet hours in the workspace, a transactional voice campaign, and two contacts:
    # one in Tokyo where 14:00 UTC is 23:00, one in UTC where it is 14:00
    with app.store.write() as conn:
        set_defaults(conn, {"quiet_hours": {}})
    tokyo = add_caller(app, "+81312345678", "Dai", timezone="Asia/Tokyo", consent=False)
    london = add_caller(app, "+447700900123", "Eve", consent=False)
    clock = Clock(datetime(2026, 11, 23, 14, 0, tzinfo=UTC))
    make_campaign(app, "reminder", kind="transactional", channel="voice", segment=None, clock=clock,
                  template_document=VOICE_TEMPLATE)
    service = CampaignService(app.settings, clock=clock)
    with app.store.write() as conn:
        service.trigger(conn, "reminder", tokyo, key="appt-1")
        service.trigger(conn, "reminder", london, key="appt-2")
    # when the worker runs at 14:00 UTC
    run(voice_worker(app, peer, clock))
    # then London is called now; Tokyo is deferred for quiet hours to 08:00 Tokyo time (23:00 UTC)
    assert [c.to for c in peer.calls] == ["+447700900123"]
    assert rows(app) == {tokyo: ("deferred", "quiet_hours"), london: ("sent", None)}
    with app.store.read() as conn:
        due = conn.execute(select(deliveries.c.due_at).where(deliveries.c.contact_id == tokyo)).scalar_one()
    assert due.replace(tzinfo=due.tzinfo or UTC) == datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
    # when the clock reaches 08:00 in Tokyo
    clock.now = datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
    run(voice_worker(app, peer, clock))
    # then Tokyo is called
    assert [c.to for c in peer.calls] == ["+447700900123", "+81312345678"]
    assert rows(app)[tokyo] == ("sent", None)


# -- the call status callback -----------------------------------------------------------------------

@pytest.fixture
def hooks(app):
    served = Clarion.from_settings(app.settings.model_copy(update={"twilio_auth_token": TOKEN}))
    with TestClient(create_app(served)) as http:
        yield http
    served.close()


def placed_call(app, peer: TwilioPeer):
    """A voice campaign's call to Bo (+14155550142), placed through the peer: its ledger row."""
    add_caller(app, "+14155550142", "Bo")
    make_campaign(app, "remind", channel="voice", rule="phone exists", template_document=VOICE_TEMPLATE,
                  clock=lambda: NOON_UTC)
    run(voice_worker(app, peer, lambda: NOON_UTC))
    with app.store.read() as conn:
        return conn.execute(select(deliveries)).one()


def test_call_statuses_are_logged_and_an_invalid_number_suppressed(app, peer, hooks):
    # given a call placed for a campaign
    row = placed_call(app, peer)
    path = f"/hooks/twilio/voice/status?message_id={row.message_id}"
    # when Twilio reports it answered and completed, then (another attempt) failed as an invalid number
    for params in ({"CallSid": row.provider_id, "CallStatus": "in-progress"},
                   {"CallSid": row.provider_id, "CallStatus": "completed", "CallDuration": "14"},
                   {"CallSid": row.provider_id, "CallStatus": "failed", "ErrorCode": "13224", "To": "+14155550142"}):
        assert post(hooks, app, path, params).status_code == 204
    # then each status is in the delivery's history, and the number is suppressed
    with app.store.read() as conn:
        log = conn.execute(select(delivery_log.c.outcome, delivery_log.c.code, delivery_log.c.detail)
                           .where(delivery_log.c.delivery_id == row.id).order_by(delivery_log.c.id)).all()
        assert [(o, c) for o, c, _ in log] == [("sent", None), ("in-progress", None), ("completed", None),
                                               ("failed", "13224")]
        assert log[2][2] == "call status (CallDuration 14)"
        assert app.consent.suppression(conn, "phone", "+14155550142")["reason"] == "hard_bounce"


@pytest.mark.parametrize(("status", "code"), [("busy", None), ("no-answer", None), ("canceled", None),
                                              ("failed", "32009")])
def test_other_final_statuses_are_logged_without_suppressing(app, peer, hooks, status, code):
    row = placed_call(app, peer)
    params = {"CallSid": row.provider_id, "CallStatus": status, "To": "+14155550142"} | (
        {"ErrorCode": code} if code else {})
    assert post(hooks, app, f"/hooks/twilio/voice/status?message_id={row.message_id}", params).status_code == 204
    with app.store.read() as conn:
        outcomes = conn.execute(select(delivery_log.c.outcome).where(delivery_log.c.delivery_id == row.id)).scalars()
        assert status in list(outcomes)
        assert app.consent.suppression(conn, "phone", "+14155550142") is None


def test_an_unsigned_or_forged_call_status_changes_nothing(app, peer, hooks):
    # given a placed call
    row = placed_call(app, peer)
    path = f"/hooks/twilio/voice/status?message_id={row.message_id}"
    failed = {"CallSid": row.provider_id, "CallStatus": "failed", "ErrorCode": "21211", "To": "+14155550142"}
    # when the status comes unsigned, or signed with another token
    unsigned = hooks.post(path, data=failed)
    forged = post(hooks, app, path, failed, token="guess")
    # then both are refused and nothing is logged or suppressed
    assert unsigned.status_code == forged.status_code == 403
    with app.store.read() as conn:
        outcomes = conn.execute(select(delivery_log.c.outcome).where(delivery_log.c.delivery_id == row.id)).scalars()
        assert list(outcomes) == ["sent"]
        assert app.consent.suppression(conn, "phone", "+14155550142") is None
    # and a signed status naming no delivery of ours is 404
    assert post(hooks, app, "/hooks/twilio/voice/status?message_id=999.abc", {"CallStatus": "completed"}) \
        .status_code == 404

"""The FCM HTTP v1 provider against a local peer (tests/fcm_peer.py) over real sockets: the OAuth 2.0 token
(fetched once, shared, fetched again near expiry and after a 401), the message's wire shape and its
overrides, every documented error mapped to an outcome, and a push campaign end to end through the worker."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from delivery_world import Clock, make_campaign
from sqlalchemy import select

from clarion.channels.base import DeliveryResult, GoneToken, OutboundPush, Outcome, PushTarget
from clarion.channels.fcm import SCOPE, FcmProvider, FcmSettings
from clarion.channels.push_fanout import PushFanout
from clarion.domain.consent import Channel, ConsentStatus
from clarion.domain.profiles import ProfilePatch
from clarion.messages.push_compose import PushComposer
from clarion.runners.dispatch import ChannelBinding
from clarion.runners.worker import Worker
from clarion.services import devices
from clarion.services.identity import Identifiers
from clarion.store.schema import devices as devices_table
from clarion.store.schema_delivery import deliveries
from fcm_peer import DEFAULT_ANSWERS, FcmPeer, write_service_account

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PUSH_TEMPLATE = {"default": {"push": {"title": "Hi {{ contact.first_name }}", "body": "Your cart misses you",
                                      "deep_link": "shop://cart", "badge": 3, "sound": "default"}}}


def token(prefix: str = "good") -> str:
    return f"{prefix}-{'x' * 24}"  # FCM-shaped: 20+ characters of [A-Za-z0-9_:-.]


def push(**fields) -> OutboundPush:
    values = {"targets": (), "title": "Sale", "body": "20% off today", "message_id": "7.abc", "idempotency_key": "k7"}
    return OutboundPush(**(values | fields))


@pytest.fixture(params=["aiohttp", "httpx"])
def client(request) -> str:
    """Every provider test runs with both HTTP clients the provider can use."""
    return request.param


@pytest.fixture
def peer():
    with FcmPeer() as running:
        yield running


@pytest.fixture
def key_file(peer, tmp_path):
    return peer.service_account(tmp_path / "service-account.json")


def provider_for(peer: FcmPeer, key_file, client: str, **settings) -> FcmProvider:
    return FcmProvider(FcmSettings(service_account_file=str(key_file), base_url=peer.base_url, client=client,
                                   **settings))


def send_all(provider: FcmProvider, pairs: list[tuple[OutboundPush, str]]) -> list[DeliveryResult]:
    """Sends concurrently in one event loop, then closes the provider there."""
    async def go():
        try:
            return await asyncio.gather(*(provider.send_to(m, PushTarget("fcm", t)) for m, t in pairs))
        finally:
            await provider.aclose()
    return asyncio.run(go())


def sends(peer: FcmPeer) -> list:
    return [r for r in peer.requests if r.path.endswith("messages:send")]


def closed_port() -> int:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- the access token ----------------------------------------------------------------------------------
def test_one_access_token_is_fetched_for_many_concurrent_sends(peer, client, key_file):
    # given a provider that has no access token yet
    provider = provider_for(peer, key_file, client)
    # when twenty messages go out at once
    results = send_all(provider, [(push(), token(f"good{i}")) for i in range(20)])
    # then one token was fetched, with a JWT bearer assertion signed by the service account, and every send used it
    assert all(r.sent for r in results)
    (claims,) = peer.token_requests
    assert claims["iss"] == "clarion@clarion-test.iam.gserviceaccount.com" and claims["scope"] == SCOPE
    bearers = {r.headers["authorization"] for r in sends(peer)}
    assert len(bearers) == 1 and next(iter(bearers)).startswith("Bearer ya29.peer-")
    # and each SENT carries the message name FCM returned
    assert sorted(r.provider_id for r in results) == sorted(r.reply["name"] for r in sends(peer))


def test_the_token_is_fetched_again_once_it_nears_expiry(peer, client, key_file):
    # given a provider that sent with a fresh token (the peer's tokens live 3,599 s, as Google's)
    provider = provider_for(peer, key_file, client)

    async def go():
        first = await provider.send_to(push(), PushTarget("fcm", token()))
        # when an hour passes (the peer, in this process, sees the same clock: the old token expired there too)
        with time_machine.travel(datetime.now(UTC) + timedelta(hours=1), tick=True):
            later = [await provider.send_to(push(), PushTarget("fcm", token())) for _ in range(3)]
        await provider.aclose()
        return [first, *later]

    results = asyncio.run(go())
    # then a second token was fetched before the first expired send, and then reused; nothing was refused
    assert all(r.sent for r in results)
    assert len(peer.token_requests) == 2 and provider.token_fetches == 2
    assert [r.answered for r in sends(peer)] == [200, 200, 200, 200]
    assert len({r.headers["authorization"] for r in sends(peer)[1:]}) == 1


def test_a_refused_token_is_fetched_again_and_the_message_resent_once(peer, client, key_file):
    # given a provider holding a token the peer no longer accepts (revoked early)
    provider = provider_for(peer, key_file, client)

    async def go():
        await provider.send_to(push(), PushTarget("fcm", token()))
        peer.expire_tokens()
        result = await provider.send_to(push(message_id="8.def"), PushTarget("fcm", token()))
        await provider.aclose()
        return result

    result = asyncio.run(go())
    # then the 401 led to one new token and one resend, which was accepted
    assert result.sent
    assert [r.answered for r in sends(peer)] == [200, 401, 200]
    assert len(peer.token_requests) == 2


def test_a_token_refused_again_after_a_fresh_fetch_is_a_configuration_error(peer, client, key_file):
    # given a peer that refuses every access token for this device's sends
    provider = provider_for(peer, key_file, client)
    # when a message goes out
    (result,) = send_all(provider, [(push(), token("revoked"))])
    # then one fetch and one resend were tried, no more, and the campaign must pause
    assert (result.outcome, result.code) == (Outcome.CONFIG_ERROR, "UNAUTHENTICATED")
    assert [r.answered for r in sends(peer)] == [401, 401] and len(peer.token_requests) == 2


@pytest.mark.parametrize(("failure", "outcome", "code"), [
    (["invalid_grant"], Outcome.CONFIG_ERROR, "invalid_grant"),  # key revoked or clock skew
    ([503, 503, 503], Outcome.RETRY, "token_endpoint"),  # google-auth retries 5xx itself, then gives up
    ([200], Outcome.CONFIG_ERROR, "token_endpoint"),  # an HTML page, not a token: token_uri is not OAuth
])
def test_a_token_endpoint_failure_is_mapped(peer, client, key_file, failure, outcome, code):
    # given a token endpoint that answers the scripted failure
    peer.token_failures.extend(failure)
    # when a message goes out
    (result,) = send_all(provider_for(peer, key_file, client), [(push(), token())])
    # then no message was sent and the failure says what happened
    assert (result.outcome, result.code) == (outcome, code)
    assert result.detail.startswith("token endpoint") and sends(peer) == []


def test_an_assertion_signed_with_another_key_is_an_invalid_grant(peer, client, key_file, tmp_path):
    # given a key file naming the trusted account but holding another private key
    forged = write_service_account(tmp_path / "forged.json", peer.token_uri)
    document = json.loads(forged.read_text())
    document["client_email"] = json.loads(key_file.read_text())["client_email"]
    forged.write_text(json.dumps(document))
    # when it is used
    (result,) = send_all(provider_for(peer, forged, client), [(push(), token())])
    # then the peer checked the RS256 signature and refused the grant: a configuration error, nothing sent
    assert (result.outcome, result.code) == (Outcome.CONFIG_ERROR, "invalid_grant")
    assert peer.token_requests == [{"refused": "Invalid JWT Signature."}] and sends(peer) == []


def test_an_unreachable_token_endpoint_or_fcm_is_retried(peer, client, tmp_path):
    # given a key file whose token endpoint is closed, and a provider whose FCM base URL is closed
    port = closed_port()
    dead_token = write_service_account(tmp_path / "dead.json", f"http://127.0.0.1:{port}/token")
    live_token = peer.service_account(tmp_path / "live.json")
    no_fcm = FcmProvider(FcmSettings(service_account_file=str(live_token), base_url=f"http://127.0.0.1:{port}",
                                   client=client))
    # when each sends
    (no_token,) = send_all(provider_for(peer, dead_token, client), [(push(), token())])
    (unreachable,) = send_all(no_fcm, [(push(), token())])
    # then both are transient: retried later
    assert (no_token.outcome, no_token.code) == (Outcome.RETRY, "token_endpoint")
    assert unreachable.outcome is Outcome.RETRY and "Connect" in unreachable.detail  # httpx's or aiohttp's error


# -- the message ---------------------------------------------------------------------------------------
def test_the_message_has_fcms_shape_and_the_overrides_are_merged_into_it(peer, client, key_file):
    # given a high-urgency message with a deep link, a badge, a sound, a collapse key and overrides
    message = push(url="https://shop.example/cart", image="https://cdn.example/a.png", badge=2, sound="chime",
                   collapse_key="cart", ttl_seconds=3600, urgency="high", data={"campaign": "12"},
                   overrides={"android": {"ttl": "60s", "notification": {"color": "#ff0000"}},
                              "apns": {"payload": {"aps": {"category": "CART"}}}, "webpush": None})
    # when it is sent
    (result,) = send_all(provider_for(peer, key_file, client), [(message, token())])
    # then FCM got the notification, string data with the message id and link, and the platform blocks
    assert result.sent
    (wire,) = peer.messages
    assert wire["token"] == token()
    assert wire["notification"] == {"title": "Sale", "body": "20% off today", "image": "https://cdn.example/a.png"}
    assert wire["data"] == {"campaign": "12", "message_id": "7.abc", "url": "https://shop.example/cart"}
    # the overrides were merged key by key: the ttl replaced, the colour added next to the sound, web push dropped
    assert wire["android"] == {"priority": "HIGH", "ttl": "60s", "collapse_key": "cart",
                               "notification": {"sound": "chime", "color": "#ff0000"}}
    assert wire["apns"]["payload"] == {"aps": {"sound": "chime", "badge": 2, "category": "CART"}}
    headers = wire["apns"]["headers"]
    assert (headers["apns-priority"], headers["apns-collapse-id"]) == ("10", "cart")
    assert int(headers["apns-expiration"]) > datetime.now(UTC).timestamp() + 3000
    assert "webpush" not in wire


def test_a_plain_message_asks_for_normal_priority_and_links_the_web_page(peer, client, key_file):
    (result,) = send_all(provider_for(peer, key_file, client), [(push(url="https://shop.example/p/1"), token())])
    (wire,) = peer.messages
    assert result.sent and wire["android"] == {"priority": "NORMAL", "ttl": "86400s"}
    assert wire["apns"] == {"headers": {"apns-priority": "5", "apns-expiration": wire["apns"]["headers"][
        "apns-expiration"]}, "payload": {"aps": {}}}
    assert wire["webpush"] == {"headers": {"TTL": "86400", "Urgency": "normal"},
                               "fcm_options": {"link": "https://shop.example/p/1"}}


@pytest.mark.parametrize(("message", "field"), [
    (push(data={"note": "é" * 2100}), "message"),  # 4,200 bytes of data: over FCM's 4,096
    (push(overrides={"android": {"ttl": "one day"}}), "message.android.ttl"),
    (push(overrides={"data": {"count": 3}}), "message.data[1].value"),  # after message_id: not a string
    (push(overrides={"priority": "high"}), "message"),  # a legacy-API field FCM v1 does not know
    (push(overrides={"topic": "news"}), "message"),  # a token and a topic: exactly one target allowed
])
def test_a_message_fcm_refuses_fails_without_blaming_the_token(peer, client, key_file, message, field):
    (result,) = send_all(provider_for(peer, key_file, client), [(message, token())])
    # then the delivery fails with FCM's code and reason, and the device stays registered
    assert (result.outcome, result.code, result.gone) == (Outcome.FAILED, "INVALID_ARGUMENT", ())
    (request,) = sends(peer)
    (violations,) = [d for d in request.reply["error"]["details"] if "fieldViolations" in d]
    assert violations["fieldViolations"][0]["field"] == field


# -- every answer mapped -------------------------------------------------------------------------------
GONE = "gone"
EXPECTED = {  # token prefix -> (outcome, code, token gone?, retry_after)
    "unregistered": (Outcome.BAD_ADDRESS, "UNREGISTERED", GONE, None),
    "invalid-token": (Outcome.BAD_ADDRESS, "INVALID_ARGUMENT", GONE, None),
    "invalid-field": (Outcome.BAD_ADDRESS, "INVALID_ARGUMENT", GONE, None),
    "bad-argument": (Outcome.FAILED, "INVALID_ARGUMENT", None, None),
    "mismatch": (Outcome.BAD_ADDRESS, "SENDER_ID_MISMATCH", GONE, None),
    "quota": (Outcome.RETRY, "QUOTA_EXCEEDED", None, 30.0),
    "unavailable": (Outcome.RETRY, "UNAVAILABLE", None, 10.0),
    "internal": (Outcome.RETRY, "INTERNAL", None, None),
    "apns-auth": (Outcome.CONFIG_ERROR, "THIRD_PARTY_AUTH_ERROR", None, None),
    "denied": (Outcome.CONFIG_ERROR, "PERMISSION_DENIED", None, None),
    "revoked": (Outcome.CONFIG_ERROR, "UNAUTHENTICATED", None, None),
    "good": (Outcome.SENT, None, None, None),
}


def test_every_scripted_answer_has_an_expectation():
    assert set(DEFAULT_ANSWERS) | {"good"} == set(EXPECTED)


@pytest.mark.parametrize("prefix", sorted(EXPECTED))
def test_each_fcm_answer_maps_to_an_outcome(peer, client, key_file, prefix):
    # given a device whose token the peer answers with the scripted FCM error
    device = token(prefix)
    # when a message goes to it
    (result,) = send_all(provider_for(peer, key_file, client), [(push(), device)])
    # then the outcome, FCM's code, the gone token and Retry-After are as documented
    outcome, code, gone, retry_after = EXPECTED[prefix]
    assert (result.outcome, result.code, result.retry_after) == (outcome, code, retry_after)
    assert result.gone == ((GoneToken("fcm", device),) if gone else ())
    # and a THIRD_PARTY_AUTH_ERROR (a 401 about Firebase's APNs key, not ours) fetched no second token
    assert len(peer.token_requests) == (2 if prefix == "revoked" else 1)


def test_a_project_the_service_account_does_not_own_is_a_configuration_error(peer, client, key_file):
    (result,) = send_all(provider_for(peer, key_file, client, project_id="someone-else"), [(push(), token())])
    assert (result.outcome, result.code) == (Outcome.CONFIG_ERROR, "PERMISSION_DENIED")


# -- a push campaign end to end ------------------------------------------------------------------------
def contact_with_devices(app, email: str, *tokens: str) -> int:
    with app.store.write() as conn:
        contact_id = app.contacts.identify(conn, Identifiers(email=email), ProfilePatch(first_name=email[:3].title(),
                                                                                       timezone="UTC"))
        for device in tokens:
            devices.register(conn, contact_id, "fcm", device, platform="android")
        app.consent.record(conn, contact_id, Channel.PUSH, ConsentStatus.OPTED_IN, source="test")
    return contact_id


def test_a_push_campaign_reaches_live_devices_and_invalidates_an_unregistered_token(app, peer, client, key_file):
    # given Ana with an uninstalled app on one phone and a live one on another, and Bo with one live phone
    ana = contact_with_devices(app, "ana@example.com", token("unregistered"), token("good-ana"))
    bo = contact_with_devices(app, "bob@example.com", token("good-bob"))
    make_campaign(app, "cart", channel="push", rule="email exists", template_document=PUSH_TEMPLATE,
                  clock=Clock(NOW))
    provider = provider_for(peer, key_file, client)
    worker = Worker(app, channels={"push": ChannelBinding(PushComposer(app.settings), PushFanout({"fcm": provider}),
                                                          concurrency=4)}, clock=Clock(NOW))

    async def go():
        try:
            await worker.run(until_idle=True)
        finally:
            await provider.aclose()

    # when the worker sends the campaign through FCM
    asyncio.run(go())
    # then each live device got its personalised notification, with the delivery's id in the data
    by_token = {m["token"]: m for m in peer.messages}
    assert set(by_token) == {token("good-ana"), token("good-bob")}
    assert by_token[token("good-ana")]["notification"]["title"] == "Hi Ana"
    assert by_token[token("good-bob")]["apns"]["payload"]["aps"] == {"sound": "default", "badge": 3}
    assert by_token[token("good-bob")]["data"]["url"] == "shop://cart"
    with app.store.read() as conn:
        rows = {r.contact_id: r for r in conn.execute(select(deliveries))}
        live = {r.token: r.invalidated_at for r in conn.execute(select(devices_table))}
    # and both deliveries are sent (Ana was reached on her other phone), Bo's with FCM's message name
    assert rows[ana].status == rows[bo].status == "sent"
    assert rows[bo].provider_id == next(r.reply["name"] for r in sends(peer)
                                        if r.body["message"]["token"] == token("good-bob"))
    # and the uninstalled app's token is invalidated, the live ones are not
    assert live[token("unregistered")] is not None
    assert live[token("good-ana")] is None and live[token("good-bob")] is None
    assert len(peer.token_requests) == 1

"""Web push over real sockets: the provider against a local autopush (HTTPS + its WebSocket protocol).

A Python-side subscriber stands in for the browser: its own P-256 key pair and auth secret, so the
test decrypts what the push service received and compares it byte for byte with what was meant.
"""

# ruff: noqa: F811 - the client fixture imported from test_api_support is a parameter here

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import http_ece
import jwt
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from delivery_world import add_contact, make_campaign, progress
from fastapi.testclient import TestClient
from py_vapid import Vapid02
from sqlalchemy import select
from test_api_support import client  # noqa: F401 - a fixture
from typer.testing import CliRunner

from autopush_peer import AutopushPeer
from clarion.api.app import create_app
from clarion.bootstrap import Clarion
from clarion.channels.base import DeliveryResult, OutboundPush, Outcome, PushTarget
from clarion.channels.push_fanout import PushFanout
from clarion.channels.webpush import (
    MAX_PLAINTEXT,
    VAPID_REUSE,
    WebPushProvider,
    WebPushSettings,
    application_server_key,
    payload,
    topic,
)
from clarion.cli.main import app as cli
from clarion.domain.consent import Channel, ConsentStatus
from clarion.domain.profiles import ProfilePatch
from clarion.messages.push_compose import PushComposer
from clarion.runners.dispatch import ChannelBinding
from clarion.runners.worker import Worker
from clarion.services import devices
from clarion.services.identity import Identifiers
from clarion.store.schema import devices as devices_table
from clarion.store.schema_delivery import deliveries, tracked_links
from clarion.tracking.contact_tokens import sign_contact_token

SUBJECT = "mailto:ops@shop.example"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class Subscriber:
    """What a browser holds for one subscription (RFC 8291 §2): a P-256 key pair and a 16-byte secret."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes

    @classmethod
    def on(cls, peer: AutopushPeer, app_server_key: bytes | None = None) -> Subscriber:
        return cls(peer.subscribe(app_server_key), ec.generate_private_key(ec.SECP256R1()), os.urandom(16))

    @property
    def p256dh(self) -> str:
        return b64(self.private_key.public_key().public_bytes(serialization.Encoding.X962,
                                                              serialization.PublicFormat.UncompressedPoint))

    def target(self) -> PushTarget:
        return PushTarget("webpush", self.endpoint, p256dh=self.p256dh, auth=b64(self.auth))

    def decrypt(self, body: bytes) -> bytes:
        return http_ece.decrypt(body, private_key=self.private_key, auth_secret=self.auth, version="aes128gcm")


@pytest.fixture(scope="module")
def peer():
    with AutopushPeer() as running:
        yield running


@pytest.fixture(scope="module")
def vapid() -> Vapid02:
    key = Vapid02()
    key.generate_keys()
    return key


def provider_for(peer: AutopushPeer, vapid: Vapid02, **overrides) -> WebPushProvider:
    settings = WebPushSettings(vapid_private_key_pem=vapid.private_pem(), subject=SUBJECT, allow_private=True,
                               ca_file=peer.ca_file, timeout=5.0)
    return WebPushProvider(replace(settings, **overrides))


def message(**overrides) -> OutboundPush:
    fields = {"targets": (), "title": "Autumn sale", "body": "20% off, today only ✨", "message_id": "7.abc",
              "idempotency_key": "k7", "icon": "https://shop.example/icon.png", "url": "https://shop.example/sale",
              "data": {"campaign": "3"}, "collapse_key": "autumn-sale", "ttl_seconds": 3600, "urgency": "high"}
    return OutboundPush(**(fields | overrides))


def send(provider: WebPushProvider, outbound: OutboundPush, target: PushTarget) -> DeliveryResult:
    async def go() -> DeliveryResult:
        try:
            return await provider.send_to(outbound, target)
        finally:
            await provider.aclose()
    return asyncio.run(go())


def relayed_to(peer: AutopushPeer, endpoint: str):
    token = endpoint.rsplit("/", 1)[-1]
    return [r for r in peer.relayed if r.token == token]


def test_the_payload_is_encrypted_for_the_subscription_and_signed_with_vapid(peer, vapid):
    # given a subscription created with Clarion's application server key
    provider = provider_for(peer, vapid)
    subscriber = Subscriber.on(peer, app_server_key=base64.urlsafe_b64decode(provider.public_key + "=="))
    outbound = message()
    # when the provider sends a message to it
    result = send(provider, outbound, subscriber.target())
    # then the push service accepted it, and its Location is the provider id
    assert result.outcome is Outcome.SENT and result.gone == ()
    (received,) = relayed_to(peer, subscriber.endpoint)
    assert result.provider_id == f"{peer.origin}/m/{received.version}"
    # and the subscriber decrypts exactly the JSON document Clarion meant
    plaintext = subscriber.decrypt(received.body)
    assert plaintext == payload(outbound)
    assert json.loads(plaintext) == {"title": "Autumn sale", "body": "20% off, today only ✨",
                                     "icon": "https://shop.example/icon.png", "url": "https://shop.example/sale",
                                     "message_id": "7.abc", "data": {"campaign": "3"}}
    # and the RFC 8030 headers say how long to keep it, how urgent it is and what it replaces
    headers = received.headers
    assert (headers["ttl"], headers["urgency"], headers["topic"]) == ("3600", "high", "autumn-sale")
    assert headers["content-encoding"] == "aes128gcm"


def test_the_vapid_jwt_names_the_push_service_and_expires_within_a_day(peer, vapid):
    provider = provider_for(peer, vapid)
    # when a header is made for the peer's origin
    header = provider.authorization(peer.origin)
    # then it is "vapid t=<JWT>,k=<our public key>" and the JWT verifies with that key
    assert header.startswith("vapid t=")
    params = dict(part.strip().split("=", 1) for part in header[len("vapid "):].split(","))
    assert params["k"] == provider.public_key == application_server_key(vapid)
    public = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), base64.urlsafe_b64decode(params["k"] + "=" * (-len(params["k"]) % 4)))
    claims = jwt.decode(params["t"], public, algorithms=["ES256"], audience=peer.origin)
    assert claims["sub"] == SUBJECT
    assert time.time() + 11 * 3600 < claims["exp"] <= time.time() + 24 * 3600
    # and a JWT signed by another key does not verify
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(params["t"], other.public_key(), algorithms=["ES256"], audience=peer.origin)


def test_the_vapid_jwt_is_reused_per_origin_and_renewed_after_twelve_hours(vapid):
    provider = WebPushProvider(WebPushSettings(vapid_private_key_pem=vapid.private_pem(), subject=SUBJECT))
    start = 1_800_000_000.0
    first = provider.authorization("https://push.example", now=start)
    assert provider.authorization("https://push.example", now=start + VAPID_REUSE - 1) == first
    assert provider.authorization("https://other.example", now=start) != first
    assert provider.authorization("https://push.example", now=start + VAPID_REUSE) != first


@pytest.mark.parametrize(("token", "outcome", "code", "gone", "retry_after"), [
    ("answer-404", Outcome.BAD_ADDRESS, "404", True, None),
    ("answer-410", Outcome.BAD_ADDRESS, "410", True, None),
    ("answer-413", Outcome.FAILED, "413", False, None),
    ("answer-429", Outcome.RETRY, "429", False, 9.0),
    ("answer-400", Outcome.FAILED, "400", False, None),
    ("answer-401", Outcome.CONFIG_ERROR, "401", False, None),
    ("answer-403", Outcome.CONFIG_ERROR, "403", False, None),
    ("answer-500", Outcome.RETRY, "500", False, None),
    ("answer-503", Outcome.RETRY, "503", False, 30.0),
])
def test_each_push_service_answer_maps_to_an_outcome(peer, vapid, token, outcome, code, gone, retry_after):
    # given an endpoint the peer answers as scripted (autopush's status and errno)
    target = replace(Subscriber.on(peer).target(), token=peer.endpoint(token))
    # when the provider sends to it
    result = send(provider_for(peer, vapid), message(), target)
    # then the outcome, code, gone subscription and wait follow the module's table
    assert (result.outcome, result.code, result.retry_after) == (outcome, code, retry_after)
    assert [(g.kind, g.token) for g in result.gone] == ([("webpush", target.token)] if gone else [])
    assert result.detail  # autopush's errno and message are kept


def test_an_unknown_or_unsubscribed_endpoint_is_gone(peer, vapid):
    # given one endpoint the push service never issued and one whose browser unsubscribed
    unsubscribed = Subscriber.on(peer)
    peer.unsubscribe(unsubscribed.endpoint)
    unknown = replace(Subscriber.on(peer).target(), token=peer.endpoint("never-issued"))
    # then the first answers 410, the second 404: both subscriptions are gone
    gone = send(provider_for(peer, vapid), message(), unsubscribed.target())
    missing = send(provider_for(peer, vapid), message(), unknown)
    assert (gone.outcome, gone.code, [g.token for g in gone.gone]) == (Outcome.BAD_ADDRESS, "410",
                                                                        [unsubscribed.endpoint])
    assert (missing.outcome, missing.code, [g.token for g in missing.gone]) == (Outcome.BAD_ADDRESS, "404",
                                                                              [unknown.token])
    assert "errno 103" in gone.detail and "errno 102" in missing.detail


def test_a_subscription_made_for_another_application_server_key_is_a_config_error(peer, vapid):
    # given a subscription the browser made with a different VAPID public key
    other = Vapid02()
    other.generate_keys()
    subscriber = Subscriber.on(peer, app_server_key=base64.urlsafe_b64decode(application_server_key(other) + "="))
    # then the push service refuses our signature: our configuration, not the contact, is wrong
    result = send(provider_for(peer, vapid), message(), subscriber.target())
    assert (result.outcome, result.code, result.gone) == (Outcome.CONFIG_ERROR, "401", ())
    assert "VAPID" in result.detail


def test_a_payload_over_the_limit_fails_without_a_request(peer, vapid):
    subscriber = Subscriber.on(peer)
    too_long = message(body="x" * MAX_PLAINTEXT)
    result = send(provider_for(peer, vapid), too_long, subscriber.target())
    assert (result.outcome, result.code) == (Outcome.FAILED, "payload_too_large")
    assert relayed_to(peer, subscriber.endpoint) == []


def test_a_payload_at_the_limit_still_fits_one_record(peer, vapid):
    subscriber = Subscriber.on(peer)
    base = len(payload(message(body="")))
    exact = message(body="y" * (MAX_PLAINTEXT - base))
    assert len(payload(exact)) == MAX_PLAINTEXT
    result = send(provider_for(peer, vapid), exact, subscriber.target())
    assert result.outcome is Outcome.SENT
    (received,) = relayed_to(peer, subscriber.endpoint)
    assert subscriber.decrypt(received.body) == payload(exact) and len(received.body) <= 4096


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "10.0.0.7", "169.254.169.254"])
def test_an_endpoint_on_an_internal_address_is_refused_before_any_request(peer, vapid, host):
    # given an endpoint naming an internal address, and the production setting (no private endpoints)
    subscriber = Subscriber.on(peer)
    endpoint = subscriber.endpoint.replace("127.0.0.1", host)
    target = replace(subscriber.target(), token=endpoint)
    # when the provider sends to it
    result = send(provider_for(peer, vapid, allow_private=False), message(), target)
    # then nothing is sent, and the subscription is dropped as gone
    assert (result.outcome, result.code) == (Outcome.BAD_ADDRESS, "ssrf_blocked")
    assert [g.token for g in result.gone] == [endpoint]
    assert relayed_to(peer, subscriber.endpoint) == []


@pytest.mark.parametrize(("change", "why"), [
    ({"token": "http://push.example/wpush/v2/x"}, "https"),
    ({"p256dh": None}, "keys"),
    ({"auth": b64(b"short")}, "16-byte"),
])
def test_a_malformed_subscription_is_gone_without_a_request(peer, vapid, change, why):
    target = replace(Subscriber.on(peer).target(), **change)
    result = send(provider_for(peer, vapid), message(), target)
    assert (result.outcome, result.code) == (Outcome.BAD_ADDRESS, "bad_subscription")
    assert why in result.detail and result.gone[0].token == target.token


def test_a_push_service_that_does_not_answer_is_retried(peer, vapid):
    # given an endpoint on a port nobody listens on
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = replace(Subscriber.on(peer).target(), token=f"https://127.0.0.1:{port}/wpush/v2/x")
    result = send(provider_for(peer, vapid), message(), target)
    assert result.outcome is Outcome.RETRY and result.gone == ()


def test_an_untrusted_certificate_is_retried_not_sent(peer, vapid):
    subscriber = Subscriber.on(peer)
    result = send(provider_for(peer, vapid, ca_file=None), message(), subscriber.target())
    assert result.outcome is Outcome.RETRY and "SSL" in result.detail.upper()
    assert relayed_to(peer, subscriber.endpoint) == []


def test_a_long_collapse_key_becomes_a_valid_topic():
    assert topic("autumn-sale") == "autumn-sale"
    long = topic("the autumn sale, second reminder (EU)")
    assert len(long) == 32 and long.replace("-", "").replace("_", "").isalnum()


def test_the_peer_relays_over_autopush_websocket_protocol(peer, vapid):
    """The browser side, spoken by a Python client: hello, register with our key, get the message, ack."""
    provider = provider_for(peer, vapid)
    key = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    outbound = message(title="Over the socket")

    async def browser() -> tuple[dict, dict]:
        async with websockets.connect(peer.ws_url, subprotocols=["push-notification"]) as ws:
            await ws.send(json.dumps({"messageType": "hello", "use_webpush": True, "broadcasts": {}}))
            hello = json.loads(await ws.recv())
            await ws.send(json.dumps({"messageType": "register", "channelID": "0ef2ad4a-6c49-41ad-af6e-95d2425276bf",
                                      "key": provider.public_key + "="}))
            registered = json.loads(await ws.recv())
            target = PushTarget("webpush", registered["pushEndpoint"], auth=b64(auth), p256dh=b64(
                key.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint)))
            result = await provider.send_to(outbound, target)
            assert result.outcome is Outcome.SENT
            notification = json.loads(await asyncio.wait_for(ws.recv(), 10))
            await ws.send(json.dumps({"messageType": "ack", "updates": [
                {"channelID": notification["channelID"], "version": notification["version"], "code": 100}]}))
            await ws.send("{}")
            assert await ws.recv() == "{}"  # a ping is answered
            await provider.aclose()
            return hello, notification

    hello, notification = asyncio.run(browser())
    assert hello["status"] == 200 and hello["use_webpush"] is True and hello["uaid"]
    assert notification["messageType"] == "notification" and notification["headers"] == {"encoding": "aes128gcm"}
    body = base64.urlsafe_b64decode(notification["data"] + "=" * (-len(notification["data"]) % 4))
    assert http_ece.decrypt(body, private_key=key, auth_secret=auth, version="aes128gcm") == payload(outbound)
    assert peer.wait_for(lambda: any(a["updates"][0]["version"] == notification["version"] for a in peer.acks))


# -- a webpush campaign end to end ---------------------------------------------------------------------
WEBPUSH_TEMPLATE = {"default": {"webpush": {"title": "{{ contact.first_name }}, autumn sale",
                                            "body": "20% off today", "url": "https://shop.example/sale"}}}


def add_browser_contact(app, email: str, first_name: str, subscriber: Subscriber) -> int:
    with app.store.write() as conn:
        contact_id = app.contacts.identify(conn, Identifiers(email=email), ProfilePatch(first_name=first_name,
                                                                                         timezone="UTC"))
        app.consent.record(conn, contact_id, Channel.WEBPUSH, ConsentStatus.OPTED_IN, source="test")
        devices.register(conn, contact_id, "webpush", subscriber.endpoint, p256dh=subscriber.p256dh,
                         auth=b64(subscriber.auth), allow_private_endpoints=True)
    return contact_id


async def run_then_close(worker: Worker, fanout: PushFanout) -> None:
    try:
        await worker.run(until_idle=True)
    finally:
        await fanout.aclose()  # the worker closes only the channels it built itself


def test_a_webpush_campaign_reaches_live_browsers_and_drops_gone_subscriptions(app, peer, vapid):
    # given Ana with a live subscription and Bo whose browser unsubscribed (the push service answers 410)
    ana_browser, bo_browser = Subscriber.on(peer), Subscriber.on(peer)
    ana = add_browser_contact(app, "ana@example.com", "Ana", ana_browser)
    bo = add_browser_contact(app, "bo@example.com", "Bo", bo_browser)
    peer.unsubscribe(bo_browser.endpoint)
    make_campaign(app, "autumn", channel="webpush", rule="email exists", template_document=WEBPUSH_TEMPLATE,
                  clock=lambda: NOW)
    fanout = PushFanout({"webpush": provider_for(peer, vapid)})
    binding = ChannelBinding(PushComposer(app.settings), fanout, concurrency=4)
    # when the worker sends the campaign
    asyncio.run(run_then_close(Worker(app, channels={"webpush": binding}, clock=lambda: NOW), fanout))
    # then Ana's browser got her personalised notification, encrypted for it
    (received,) = relayed_to(peer, ana_browser.endpoint)
    document = json.loads(ana_browser.decrypt(received.body))
    assert document["title"] == "Ana, autumn sale"
    # and its URL is the tracked link to the sale, with the signed open report for the service worker
    assert document["url"].startswith(f"{app.settings.public_url}/c/")
    assert document["data"]["clarion_open"].startswith(f"{app.settings.public_url}/o/")
    with app.store.read() as conn:
        assert conn.execute(select(tracked_links.c.url)).scalar_one().startswith("https://shop.example/sale?utm_")
    # and Bo's delivery failed as a bad address, and his subscription is invalidated
    with app.store.read() as conn:
        rows = {r.contact_id: (r.status, r.provider_id) for r in conn.execute(select(deliveries))}
        invalidated = {r.contact_id: r.invalidated_at for r in conn.execute(select(devices_table))}
    assert rows[ana] == ("sent", f"{peer.origin}/m/{received.version}")
    assert rows[bo][0] == "failed"
    assert invalidated[ana] is None and invalidated[bo] is not None
    assert progress(app, "autumn")["counts"]["sent"] == 1


# -- the HTTP API a business's page calls -------------------------------------------------------------
@pytest.fixture
def webpush_api(settings, tmp_path, vapid):
    """Clarion's API with a VAPID key configured, and a contact token for Ana."""
    key_file = tmp_path / "vapid.pem"
    key_file.write_bytes(vapid.private_pem())
    clarion = Clarion.from_settings(settings.model_copy(update={
        "webpush_vapid_private_key_file": str(key_file), "webpush_vapid_subject": SUBJECT}))
    try:
        with TestClient(create_app(clarion)) as http:
            ana = add_contact(clarion, "ana@example.com")
            yield http, clarion, ana, sign_contact_token(clarion.settings.link_secret, ana, "webpush", 3600)
    finally:
        clarion.close()


SITE = "https://shop.example"
BROWSER_SUBSCRIPTION = {"endpoint": "https://updates.push.services.mozilla.com/wpush/v2/gAAAAAB-ana",
                        "expirationTime": None,
                        "keys": {"p256dh": b64(b"\x04" + b"\x01" * 64), "auth": b64(b"\x02" * 16)}}


def test_the_page_gets_the_public_key_and_registers_its_subscription_with_a_contact_token(webpush_api, vapid):
    http, clarion, ana, token = webpush_api
    # when the page (on the shop's origin) asks for the key, then it is the applicationServerKey, with CORS
    key = http.get("/webpush/vapid-public-key", headers={"Origin": SITE})
    assert key.json() == {"publicKey": application_server_key(vapid)}
    assert key.headers["access-control-allow-origin"] == SITE
    # when it posts the browser's PushSubscription.toJSON() with Ana's token
    created = http.post("/webpush/subscriptions", json=BROWSER_SUBSCRIPTION,
                        headers={"Origin": SITE, "Authorization": f"Bearer {token}"})
    # then the subscription is Ana's live web push device, keys included
    assert created.status_code == 201, created.text
    assert created.headers["access-control-allow-origin"] == SITE
    with clarion.store.read() as conn:
        (device,) = devices.list_for(conn, ana)
    assert (device["kind"], device["token"], device["p256dh"]) == ("webpush", BROWSER_SUBSCRIPTION["endpoint"],
                                                                  BROWSER_SUBSCRIPTION["keys"]["p256dh"])
    # when the page unsubscribes, then the device is forgotten (and a second DELETE changes nothing)
    for _ in range(2):
        gone = http.request("DELETE", "/webpush/subscriptions", json={"endpoint": BROWSER_SUBSCRIPTION["endpoint"]},
                            headers={"Authorization": f"Bearer {token}"})
        assert gone.status_code == 204
    with clarion.store.read() as conn:
        assert devices.list_for(conn, ana) == []


@pytest.mark.parametrize(("authorization", "why"), [
    (None, "contact token"),
    ("Bearer ct1.bogus.token", "malformed"),
    ("inbox", "not 'webpush'"),
])
def test_a_subscription_without_a_webpush_token_is_refused_readably_cross_origin(webpush_api, authorization, why):
    http, clarion, ana, _token = webpush_api
    if authorization == "inbox":
        authorization = "Bearer " + sign_contact_token(clarion.settings.link_secret, ana, "inbox", 3600)
    headers = {"Origin": SITE} | ({"Authorization": authorization} if authorization else {})
    refused = http.post("/webpush/subscriptions", json=BROWSER_SUBSCRIPTION, headers=headers)
    # then 401, and the page can read why (the CORS header is on the error too)
    assert refused.status_code == 401 and why in refused.json()["message"]
    assert refused.headers["access-control-allow-origin"] == SITE


def test_an_internal_endpoint_is_refused_at_registration(webpush_api):
    http, _clarion, _ana, token = webpush_api
    internal = BROWSER_SUBSCRIPTION | {"endpoint": "https://127.0.0.1:8443/wpush/v2/x"}
    refused = http.post("/webpush/subscriptions", json=internal, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 422 and refused.json()["field"] == "token"


def test_a_cors_preflight_is_answered_for_the_webpush_routes(webpush_api):
    http, *_ = webpush_api
    answer = http.options("/webpush/subscriptions", headers={
        "Origin": SITE, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == SITE
    assert "POST" in answer.headers["access-control-allow-methods"]
    assert "Authorization" in answer.headers["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in answer.headers


@pytest.mark.parametrize("name", ["clarion-webpush.js", "clarion-sw.js"])
def test_the_snippet_and_the_service_worker_are_served_as_javascript(webpush_api, name):
    http, *_ = webpush_api
    answer = http.get(f"/webpush/{name}")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/javascript")
    assert "max-age" in answer.headers["cache-control"]
    marker = {"clarion-webpush.js": "global.Clarion = ", "clarion-sw.js": 'addEventListener("push"'}[name]
    assert marker in answer.text
    assert http.get("/webpush/other.js").status_code == 404


def test_the_public_key_is_404_when_web_push_is_not_configured(client):
    answer = client.get("/webpush/vapid-public-key")
    assert answer.status_code == 404 and answer.json()["error"] == "webpush_not_configured"


def test_the_keys_command_writes_a_private_key_and_prints_its_public_key(tmp_path):
    out = tmp_path / "vapid.pem"
    result = CliRunner().invoke(cli, ["webpush", "keys", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["public_key"] == application_server_key(Vapid02.from_pem(out.read_bytes()))
    assert out.stat().st_mode & 0o777 == 0o600
    again = CliRunner().invoke(cli, ["webpush", "keys", "--out", str(out)])
    assert again.exit_code == 1 and "exists" in again.output


def test_the_request_goes_to_the_vetted_address_under_the_endpoints_name(peer, vapid):
    # given a push service name whose DNS answer is checked once (a resolver that would answer an internal
    # address the second time: DNS rebinding)
    subscriber = Subscriber.on(peer)
    endpoint = subscriber.endpoint.replace("127.0.0.1", "localhost")
    answers = [["127.0.0.1"], ["10.0.0.7"]]
    provider = WebPushProvider(replace(provider_for(peer, vapid).settings),
                               resolver=lambda name, port: answers.pop(0) if name == "localhost" else [name])
    # when the provider sends to it
    result = send(provider, message(), replace(subscriber.target(), token=endpoint))
    # then it was resolved exactly once, and the push service got it under its own name
    assert result.outcome is Outcome.SENT and answers == [["10.0.0.7"]]
    (received,) = relayed_to(peer, subscriber.endpoint)
    assert subscriber.decrypt(received.body) == payload(message())
    assert received.headers["host"] == f"localhost:{peer.https_port}"


def test_a_name_with_any_internal_answer_is_refused(peer, vapid):
    # given a name that resolves to a public address and an internal one (the production setting)
    subscriber = Subscriber.on(peer)
    endpoint = subscriber.endpoint.replace("127.0.0.1", "push.example.com")
    provider = WebPushProvider(provider_for(peer, vapid, allow_private=False).settings,
                               resolver=lambda name, port: ["93.184.216.34", "10.1.2.3"])
    # when the provider sends to it
    result = send(provider, message(), replace(subscriber.target(), token=endpoint))
    # then it is refused, naming the internal address, and nothing is sent
    assert (result.outcome, result.code) == (Outcome.BAD_ADDRESS, "ssrf_blocked") and "10.1.2.3" in result.detail
    assert relayed_to(peer, subscriber.endpoint) == []

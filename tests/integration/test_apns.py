"""The APNs provider against a local HTTP/2 + TLS provider API on 127.0.0.1 (``tests/apns_peer.py``).

The peer verifies the provider JWT with the team key's public key and answers errors scripted by device
token. Nothing is mocked: every notification crosses a real TLS socket, as HTTP/2 streams.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from delivery_world import Clock, make_campaign
from sqlalchemy import select, update

from apns_peer import Answer, ApnsPeer
from clarion.channels.apns import ApnsProvider, ApnsSettings, apns_id
from clarion.channels.base import DeliveryResult, GoneToken, OutboundPush, Outcome, PushTarget
from clarion.channels.push_fanout import PushFanout
from clarion.domain.consent import Channel, ConsentStatus
from clarion.domain.profiles import ProfilePatch
from clarion.messages.push_compose import PushComposer
from clarion.runners.dispatch import ChannelBinding
from clarion.runners.worker import Worker
from clarion.services import devices as device_service
from clarion.services.identity import Identifiers
from clarion.store.schema import devices
from clarion.store.schema_delivery import deliveries

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def token(n: int) -> str:
    return f"{n:064x}"


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def peer(clock) -> Iterator[ApnsPeer]:
    with ApnsPeer(clock=clock, other_topics=("com.clarion.kids",)) as running:
        yield running


def apns_settings(peer: ApnsPeer, **overrides) -> ApnsSettings:
    values = {"key_pem": peer.key_pem, "key_id": peer.key_id, "team_id": peer.team_id, "topic": peer.topic,
              "base_url": peer.base_url, "ca_file": peer.ca_file, "timeout": 5.0} | overrides
    return ApnsSettings(**values)


def push(n: int = 0, **fields) -> OutboundPush:
    values = {"targets": (), "title": "Autumn sale", "body": f"20% off, #{n}", "message_id": f"d{n}",
              "idempotency_key": f"key-{n}"} | fields
    return OutboundPush(**values)


def send_all(provider: ApnsProvider, sends: list[tuple[OutboundPush, PushTarget]]) -> list[DeliveryResult]:
    async def run() -> list[DeliveryResult]:
        try:
            return list(await asyncio.gather(*(provider.send_to(m, t) for m, t in sends)))
        finally:
            await provider.aclose()
    return asyncio.run(run())


def send_one(provider: ApnsProvider, message: OutboundPush, device: str, app_id: str | None = None) -> DeliveryResult:
    return send_all(provider, [(message, PushTarget("apns", device, app_id=app_id))])[0]


# -- the connection and the provider token ---------------------------------------------------------------
def test_many_notifications_share_one_http2_connection_and_one_provider_token(peer, clock):
    # given a provider and twenty devices
    provider = ApnsProvider(apns_settings(peer), clock=clock)
    # when a notification goes to each, concurrently
    results = send_all(provider, [(push(n), PushTarget("apns", token(n))) for n in range(20)])
    # then all are sent, as HTTP/2 streams of one connection, all carrying the same JWT
    assert [r.outcome for r in results] == [Outcome.SENT] * 20
    assert {r.http_version for r in peer.requests} == {"2"}
    assert len({r.client for r in peer.requests}) == 1
    (bearer,) = peer.jwts
    # and the JWT is APNs's: ES256 with the key id, issued by the team, at the clock's time
    assert jwt.get_unverified_header(bearer) == {"alg": "ES256", "kid": peer.key_id, "typ": "JWT"}
    assert jwt.decode(bearer, options={"verify_signature": False}) == {"iss": peer.team_id,
                                                                       "iat": int(NOW.timestamp())}


def test_the_provider_token_is_reused_until_it_is_50_minutes_old_then_renewed(peer, clock):
    provider = ApnsProvider(apns_settings(peer), clock=clock)

    async def run() -> list[DeliveryResult]:
        results = []
        for n, minutes in enumerate((0, 20, 49, 50, 60, 99)):  # the peer shares the clock
            clock.now = NOW + timedelta(minutes=minutes)
            results.append(await provider.send_to(push(n), PushTarget("apns", token(n))))
        await provider.aclose()
        return results

    # when notifications go at 0, 20, 49, 50, 60 and 99 minutes
    results = asyncio.run(run())
    # then the first token served until minute 49, a second from minute 50, a third from minute 100 on only
    assert all(r.sent for r in results)
    used = [r.jwt for r in peer.requests]
    assert used[0] == used[1] == used[2] != used[3] == used[4] == used[5]
    assert [jwt.decode(b, options={"verify_signature": False})["iat"] for b in peer.jwts] == [
        int(NOW.timestamp()), int((NOW + timedelta(minutes=50)).timestamp())]


def test_an_expired_provider_token_is_renewed_and_the_notification_resent_once(peer, clock):
    # given a provider whose clock runs 20 minutes slow: its 45-minute-old token is 65 minutes old for APNs
    provider_clock = Clock(NOW)
    provider = ApnsProvider(apns_settings(peer), clock=provider_clock)

    async def run() -> list[DeliveryResult]:
        first = await provider.send_to(push(1), PushTarget("apns", token(1)))
        provider_clock.now, clock.now = NOW + timedelta(minutes=45), NOW + timedelta(minutes=65)
        second = await provider.send_to(push(2), PushTarget("apns", token(2)))
        await provider.aclose()
        return [first, second]

    # when
    results = asyncio.run(run())
    # then APNs refused the stale token once, and the same notification went again with a new one
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert [(r.token, r.status, r.reason) for r in peer.requests] == [
        (token(1), 200, None), (token(2), 403, "ExpiredProviderToken"), (token(2), 200, None)]
    assert peer.requests[1].jwt == peer.requests[0].jwt != peer.requests[2].jwt
    assert peer.requests[1].headers["apns-id"] == peer.requests[2].headers["apns-id"]
    assert peer.requests[1].body == peer.requests[2].body


def test_a_provider_token_refused_again_after_renewal_is_a_retry_not_a_loop(peer, clock):
    # given APNs calling every token expired for this device
    peer.answers[token(7)] = Answer(403, "ExpiredProviderToken")
    # when
    result = send_one(ApnsProvider(apns_settings(peer), clock=clock), push(7), token(7))
    # then it was sent twice (the second time with a new token) and is retried later
    assert (result.outcome, result.code) == (Outcome.RETRY, "ExpiredProviderToken")
    assert len(peer.requests) == 2 and len(peer.jwts) == 2


# -- every answer ----------------------------------------------------------------------------------------
GONE_AT = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
GONE_MS = int(GONE_AT.timestamp() * 1000)


@pytest.mark.parametrize(("answer", "outcome", "gone_since"), [
    (Answer(400, "BadDeviceToken"), Outcome.BAD_ADDRESS, None),
    (Answer(400, "DeviceTokenNotForTopic"), Outcome.BAD_ADDRESS, None),
    (Answer(410, "Unregistered", timestamp_ms=GONE_MS), Outcome.BAD_ADDRESS, GONE_AT),
    (Answer(410, "ExpiredToken", timestamp_ms=GONE_MS), Outcome.BAD_ADDRESS, GONE_AT),
    (Answer(410, "Unregistered"), Outcome.BAD_ADDRESS, None),  # no timestamp: gone, since unknown
    (Answer(400, "BadTopic"), Outcome.CONFIG_ERROR, None),
    (Answer(400, "TopicDisallowed"), Outcome.CONFIG_ERROR, None),
    (Answer(400, "MissingTopic"), Outcome.CONFIG_ERROR, None),
    (Answer(403, "InvalidProviderToken"), Outcome.CONFIG_ERROR, None),
    (Answer(403, "MissingProviderToken"), Outcome.CONFIG_ERROR, None),
    (Answer(403, "BadCertificate"), Outcome.CONFIG_ERROR, None),
    (Answer(403, "BadCertificateEnvironment"), Outcome.CONFIG_ERROR, None),
    (Answer(403, "Forbidden"), Outcome.CONFIG_ERROR, None),
    (Answer(404, "BadPath"), Outcome.CONFIG_ERROR, None),
    (Answer(405, "MethodNotAllowed"), Outcome.CONFIG_ERROR, None),
    (Answer(413, "PayloadTooLarge"), Outcome.FAILED, None),
    (Answer(429, "TooManyRequests"), Outcome.RETRY, None),
    (Answer(429, "TooManyProviderTokenUpdates"), Outcome.RETRY, None),
    (Answer(500, "InternalServerError"), Outcome.RETRY, None),
    (Answer(503, "ServiceUnavailable"), Outcome.RETRY, None),
    (Answer(503, "Shutdown"), Outcome.RETRY, None),
    (Answer(400, "IdleTimeout"), Outcome.RETRY, None),
    (Answer(400, "BadCollapseId"), Outcome.FAILED, None),
    (Answer(400, "BadExpirationDate"), Outcome.FAILED, None),
    (Answer(400, "BadPriority"), Outcome.FAILED, None),
    (Answer(400, "BadMessageId"), Outcome.FAILED, None),
    (Answer(400, "PayloadEmpty"), Outcome.FAILED, None),
    (Answer(400, "DuplicateHeaders"), Outcome.FAILED, None),
], ids=lambda value: f"{value.status}-{value.reason}" if isinstance(value, Answer) else None)
def test_each_answer_is_classified(peer, clock, answer, outcome, gone_since):
    # given APNs answering this for the device
    device = token(42)
    peer.answers[device] = answer
    # when
    result = send_one(ApnsProvider(apns_settings(peer), clock=clock), push(42), device)
    # then the outcome carries Apple's reason; only a bad or unregistered token is declared gone
    assert (result.outcome, result.code) == (outcome, answer.reason)
    assert answer.reason in result.detail
    expected_gone = (GoneToken("apns", device, gone_since),) if outcome is Outcome.BAD_ADDRESS else ()
    assert result.gone == expected_gone


def test_a_signature_from_another_key_is_a_config_error(peer, clock):
    # given the key of another team (the peer made a second one)
    other = ApnsPeer()
    result = send_one(ApnsProvider(apns_settings(peer, key_pem=other.key_pem), clock=clock), push(), token(1))
    other.stop()
    # then APNs could not verify the JWT: our configuration, not the device
    assert (result.outcome, result.code) == (Outcome.CONFIG_ERROR, "InvalidProviderToken")


def test_a_topic_that_is_not_the_teams_is_a_config_error(peer, clock):
    # when the device registered for a bundle id the team does not own
    result = send_one(ApnsProvider(apns_settings(peer), clock=clock), push(), token(1), app_id="com.someone.else")
    # then
    assert (result.outcome, result.code) == (Outcome.CONFIG_ERROR, "TopicDisallowed")


@pytest.mark.parametrize(("message", "device", "outcome", "code"), [
    (push(data={"blob": "x" * 4100}), token(1), Outcome.FAILED, "PayloadTooLarge"),
    (push(collapse_key="k" * 65), token(1), Outcome.FAILED, "BadCollapseId"),
    (push(), "not-a-token/../../x", Outcome.BAD_ADDRESS, "BadDeviceToken"),
])
def test_what_apns_would_refuse_is_not_sent(peer, clock, message, device, outcome, code):
    # when a notification is over APNs's limits, or the token is not one
    result = send_one(ApnsProvider(apns_settings(peer), clock=clock), message, device)
    # then it fails here, with APNs's reason, and nothing reached APNs
    assert (result.outcome, result.code) == (outcome, code)
    assert peer.requests == []


def test_a_connection_refused_is_a_retry(clock):
    # given an address where nothing listens
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    peerless = ApnsPeer()
    provider = ApnsProvider(ApnsSettings(key_pem=peerless.key_pem, key_id="K", team_id="T", topic="t",
                                         base_url=f"https://127.0.0.1:{port}", timeout=5.0), clock=clock)
    peerless.stop()
    # when, then
    assert send_one(provider, push(), token(1)).outcome is Outcome.RETRY


def test_a_timeout_is_a_retry(peer, clock):
    # given APNs that answers later than the provider waits
    peer.answers[token(9)] = Answer(200, "", delay=2.0)
    # when
    result = send_one(ApnsProvider(apns_settings(peer, timeout=0.3), clock=clock), push(9), token(9))
    # then
    assert result.outcome is Outcome.RETRY and "timed out" in result.detail


# -- what reaches the wire -------------------------------------------------------------------------------
def test_headers_and_payload_carry_the_notification(peer, clock):
    # given a high-urgency notification with every option
    message = push(5, urgency="high", collapse_key="autumn-sale", ttl_seconds=3600, badge=3, sound="chime.caf",
                   image="https://cdn.shop.example/a.png", url="shop://sale/autumn", data={"campaign": "12"},
                   overrides={"apns": {"payload": {"aps": {"thread-id": "sales"}}}})
    # when it goes to a device of the team's second app
    result = send_one(ApnsProvider(apns_settings(peer), clock=clock), message, token(5), app_id="com.clarion.kids")
    # then the headers are APNs's, the expiration is the clock plus the lifetime, the apns-id is the answer's
    (request,) = peer.requests
    assert {k: v for k, v in request.headers.items() if k.startswith("apns-")} == {
        "apns-push-type": "alert", "apns-topic": "com.clarion.kids", "apns-priority": "10",
        "apns-expiration": str(int(NOW.timestamp()) + 3600), "apns-collapse-id": "autumn-sale",
        "apns-id": apns_id("key-5", token(5))}
    assert result.provider_id == request.headers["apns-id"]
    assert request.payload == {
        "aps": {"alert": {"title": "Autumn sale", "body": "20% off, #5"}, "badge": 3, "sound": "chime.caf",
                "mutable-content": 1, "thread-id": "sales"},
        "url": "shop://sale/autumn", "image": "https://cdn.shop.example/a.png", "message_id": "d5",
        "campaign": "12"}


def test_a_normal_notification_without_lifetime_is_priority_5_and_expires_at_once(peer, clock):
    send_one(ApnsProvider(apns_settings(peer), clock=clock), push(6, ttl_seconds=0), token(6))
    (request,) = peer.requests
    assert (request.headers["apns-priority"], request.headers["apns-expiration"]) == ("5", "0")
    assert request.headers["apns-topic"] == peer.topic and "apns-collapse-id" not in request.headers


def test_a_data_only_message_is_a_background_notification(peer, clock):
    # given a message with no title or body, marked urgent
    message = push(8, title="", body="", urgency="high", data={"sync": "inbox"})
    # when
    result = send_one(ApnsProvider(apns_settings(peer), clock=clock), message, token(8))
    # then it is a background push at priority 5 (Apple refuses 10), waking the app without an alert
    assert result.sent
    (request,) = peer.requests
    assert (request.headers["apns-push-type"], request.headers["apns-priority"]) == ("background", "5")
    assert request.payload == {"aps": {"content-available": 1}, "message_id": "d8", "sync": "inbox"}


def test_a_retried_notification_keeps_its_apns_id(peer, clock):
    # given a device APNs is too busy for at first
    peer.answers[token(3)] = [Answer(503, "ServiceUnavailable")]
    provider_settings = apns_settings(peer)
    # when the same notification is sent twice (the ledger's retry), and once to another device
    first = send_one(ApnsProvider(provider_settings, clock=clock), push(3), token(3))
    second = send_one(ApnsProvider(provider_settings, clock=clock), push(3), token(3))
    send_one(ApnsProvider(provider_settings, clock=clock), push(3), token(4))
    # then both attempts carried one apns-id, which the other device does not share
    assert (first.outcome, second.outcome) == (Outcome.RETRY, Outcome.SENT)
    ids = [r.headers["apns-id"] for r in peer.requests]
    assert ids[0] == ids[1] == second.provider_id != ids[2]


def test_settings_come_from_clarions_configuration(peer, settings):
    # given nothing configured, then a full configuration, then a partial one
    assert ApnsProvider.from_settings(settings) is None
    full = settings.model_copy(update={"apns_key_file": peer.key_file, "apns_key_id": peer.key_id,
                                       "apns_team_id": peer.team_id, "apns_topic": peer.topic,
                                       "apns_base_url": peer.base_url, "apns_ca_file": peer.ca_file})
    provider = ApnsProvider.from_settings(full)
    assert provider is not None and provider.settings.key_pem == peer.key_pem
    assert provider.settings.concurrency == settings.push_concurrency
    with pytest.raises(ValueError, match="CLARION_APNS_TEAM_ID"):
        ApnsSettings.from_settings(full.model_copy(update={"apns_team_id": ""}))
    with pytest.raises(ValueError, match="EC P-256|PEM"):
        ApnsProvider(apns_settings(peer, key_pem="-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))


# -- a push campaign end to end --------------------------------------------------------------------------
PUSH_TEMPLATE = {"default": {"push": {"title": "{{ contact.first_name }}, autumn sale", "body": "20% off today",
                                      "badge": 1, "sound": "default"}}}


def add_device_contact(app, email: str, device: str, last_seen: datetime, first_name: str) -> int:
    with app.store.write() as conn:
        contact_id = app.contacts.identify(conn, Identifiers(email=email), ProfilePatch(first_name=first_name,
                                                                                         timezone="UTC"))
        app.consent.record(conn, contact_id, Channel.PUSH, ConsentStatus.OPTED_IN, source="test")
        device_service.register(conn, contact_id, "apns", device, platform="ios")
        conn.execute(update(devices).where(devices.c.token == device).values(last_seen_at=last_seen))
    return contact_id


def test_a_push_campaign_invalidates_tokens_apns_says_are_gone_unless_registered_again(app, peer, clock):
    # given three iPhones; APNs says Ana's and Bo's tokens went unregistered on 22 November
    unregistered_at = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    ana = add_device_contact(app, "ana@example.com", token(101), NOW - timedelta(days=5), "Ana")  # before: gone
    bo = add_device_contact(app, "bo@example.com", token(102), NOW - timedelta(hours=1), "Bo")  # re-registered after
    cy = add_device_contact(app, "cy@example.com", token(103), NOW - timedelta(days=1), "Cy")
    for device in (token(101), token(102)):
        peer.answers[device] = Answer(410, "Unregistered", timestamp_ms=int(unregistered_at.timestamp() * 1000))
    make_campaign(app, "autumn-push", channel="push", rule='reachable("push")', template_document=PUSH_TEMPLATE,
                  settings={"push_urgency": "high", "push_ttl_seconds": 7200}, clock=clock)
    fanout = PushFanout({"apns": ApnsProvider(apns_settings(peer), clock=clock)})
    worker = Worker(app, channels={"push": ChannelBinding(PushComposer(app.settings), fanout)}, clock=clock)

    async def run() -> None:
        try:
            await worker.run(until_idle=True)
        finally:
            await fanout.aclose()

    # when the worker sends the campaign through the fan-out and the APNs provider
    asyncio.run(run())
    # then Cy got it over HTTP/2, with the campaign's urgency and lifetime and the template's badge and sound
    (delivered,) = peer.delivered
    assert delivered.token == token(103) and delivered.http_version == "2"
    assert delivered.payload["aps"] == {"alert": {"title": "Cy, autumn sale", "body": "20% off today"},
                                        "badge": 1, "sound": "default"}
    assert (delivered.headers["apns-priority"], delivered.headers["apns-expiration"]) == (
        "10", str(int(NOW.timestamp()) + 7200))
    with app.store.read() as conn:
        rows = {r.contact_id: (r.status, r.reason, r.provider_id) for r in conn.execute(select(deliveries))}
        live = {r.token: r.invalidated_at for r in conn.execute(select(devices.c.token, devices.c.invalidated_at))}
    assert rows[cy] == ("sent", None, delivered.headers["apns-id"])
    assert rows[ana][:2] == ("failed", "bad_address") and rows[bo][:2] == ("failed", "bad_address")
    # and Ana's token, last registered before APNs's timestamp, is invalidated; Bo registered again since: kept
    assert live[token(101)] is not None
    assert live[token(102)] is None and live[token(103)] is None

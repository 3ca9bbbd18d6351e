"""The webhook channel over real sockets: signed requests, every answer classified, SSRF refused before any
connection, redirects not followed, and a webhook campaign end to end through the worker."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime

import pytest
from delivery_world import make_campaign, progress, run
from sqlalchemy import select

from clarion.channels.base import DeliveryResult, OutboundWebhook, Outcome
from clarion.channels.webhook import MAX_RETRY_AFTER, WebhookChannel, WebhookSettings, sign, verify_signature
from clarion.domain.profiles import ProfilePatch
from clarion.messages.webhook_compose import WebhookComposer
from clarion.runners.dispatch import ChannelBinding
from clarion.runners.worker import Worker
from clarion.services.identity import Identifiers
from clarion.store.schema_delivery import deliveries
from webhook_peer import WebhookPeer

SECRET = "whsec_test"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BODY = b'{"message_id":"7.abc","data":{"order":"A-1"}}'
WEBHOOK_TEMPLATE = {"default": {"webhook": {"body": {
    "event": "churn_risk", "name": "{{ contact.first_name }}", "order": "{{ data.order_id | default('none') }}",
    "score": 0.82}}}}


def message(url: str, body: bytes = BODY) -> OutboundWebhook:
    return OutboundWebhook(url=url, body=body, message_id="7.abc", idempotency_key="key-7", contact_id=7)


def send(url: str, *, allow_private: bool = True, timeout: float = 5.0, resolver=None, ca_file=None,
         secret: str = SECRET) -> DeliveryResult:
    async def go() -> DeliveryResult:
        channel = WebhookChannel(WebhookSettings(secret=secret, timeout=timeout, allow_private=allow_private,
                                                 ca_file=ca_file), resolver=resolver)
        try:
            return await channel.send(message(url))
        finally:
            await channel.aclose()
    return asyncio.run(go())


# -- the signature ---------------------------------------------------------------------------------------

def test_a_signature_verifies_and_a_tampered_body_or_an_old_timestamp_does_not():
    # given a request signed at 1_790_000_000
    header = sign(SECRET, 1_790_000_000, BODY)
    # then the receiver accepts it within the tolerance, with the timestamp as text or number
    assert header.startswith("v1=") and len(header) == 3 + 64
    assert verify_signature(SECRET, "1790000000", BODY, header, now=1_790_000_100)
    assert verify_signature(SECRET, 1_790_000_000, BODY, f"v1=deadbeef, {header}", now=1_790_000_000)  # rotation
    # and refuses a changed body, another secret, a changed timestamp, a stale or future one, garbage
    assert not verify_signature(SECRET, "1790000000", BODY.replace(b"A-1", b"A-2"), header, now=1_790_000_000)
    assert not verify_signature("whsec_other", "1790000000", BODY, header, now=1_790_000_000)
    assert not verify_signature(SECRET, "1790000001", BODY, header, now=1_790_000_000)
    assert not verify_signature(SECRET, "1790000000", BODY, header, now=1_790_000_000 + 301)
    assert not verify_signature(SECRET, "1790000000", BODY, header, now=1_790_000_000 - 301)
    assert not verify_signature(SECRET, "soon", BODY, header, now=1_790_000_000)
    assert not verify_signature(SECRET, None, BODY, None, now=1_790_000_000)


def test_the_request_carries_the_body_as_composed_and_the_signed_headers():
    with WebhookPeer(secret=SECRET) as peer:
        # when one message is sent
        result = send(peer.url("/ok"))
        # then the receiver verified it and got Clarion's headers
        assert result.outcome is Outcome.SENT and result.code == "200"
        (request,) = peer.requests
        assert request.signature_ok and request.body == BODY
        headers = request.headers
        assert headers["content-type"] == "application/json" and headers["user-agent"] == "Clarion-Webhook/1"
        assert headers["x-clarion-message-id"] == "7.abc" and headers["idempotency-key"] == "key-7"
        assert headers["host"] == f"127.0.0.1:{peer.port}"
        assert verify_signature(SECRET, headers["x-clarion-timestamp"], BODY, headers["x-clarion-signature"])


def test_a_receiver_with_another_secret_refuses_and_the_message_fails():
    with WebhookPeer(secret="whsec_rotated") as peer:
        result = send(peer.url("/ok"))
    assert (result.outcome, result.code) == (Outcome.FAILED, "401")


# -- every answer --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "outcome", "code", "retry_after"), [
    ("/ok", Outcome.SENT, "200", None),
    ("/accepted", Outcome.SENT, "202", None),
    ("/no-content", Outcome.SENT, "204", None),
    ("/moved", Outcome.FAILED, "redirect", None),
    ("/permanent", Outcome.FAILED, "redirect", None),
    ("/bad", Outcome.FAILED, "400", None),
    ("/forbidden", Outcome.FAILED, "403", None),
    ("/missing", Outcome.FAILED, "404", None),
    ("/gone", Outcome.FAILED, "410", None),
    ("/unprocessable", Outcome.FAILED, "422", None),
    ("/request-timeout", Outcome.RETRY, "408", None),
    ("/too-early", Outcome.RETRY, "425", None),
    ("/slow-down", Outcome.RETRY, "429", 7.0),
    ("/broken", Outcome.RETRY, "500", None),
    ("/bad-gateway", Outcome.RETRY, "502", None),
    ("/busy", Outcome.RETRY, "503", 120.0),
    ("/come-back-next-year", Outcome.RETRY, "503", MAX_RETRY_AFTER),  # a year is cut to the cap
    ("/huge", Outcome.RETRY, "500", None),  # a 1 MB error page: only its start is read
])
def test_each_answer_maps_to_its_outcome(path, outcome, code, retry_after):
    with WebhookPeer(secret=SECRET) as peer:
        result = send(peer.url(path))
        # then the outcome, the code and the capped Retry-After are the table's; one request only
        assert (result.outcome, result.code, result.retry_after) == (outcome, code, retry_after)
        assert len(peer.requests) == 1
    assert len(result.detail) <= 300


def test_a_redirect_is_not_followed():
    with WebhookPeer(secret=SECRET) as peer:
        # when the receiver answers 302 to the metadata service
        result = send(peer.url("/moved"))
        # then nothing else was requested, and the detail names where it pointed
        assert len(peer.requests) == 1
    assert result.outcome is Outcome.FAILED and "redirect refused" in result.detail and "169.254" in result.detail


def test_a_timeout_and_a_refused_connection_are_retried():
    with WebhookPeer(secret=SECRET, hang_seconds=3) as peer:
        slow = send(peer.url("/hang"), timeout=0.3)
    # a port nobody listens on: bind one, note it, close it
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    refused = send(f"http://127.0.0.1:{closed_port}/ok")
    assert (slow.outcome, slow.code) == (Outcome.RETRY, "timeout")
    assert (refused.outcome, refused.code) == (Outcome.RETRY, "connect")


def test_a_name_that_does_not_resolve_is_retried():
    result = send("https://no-such-host.invalid/hook", allow_private=False)
    assert (result.outcome, result.code) == (Outcome.RETRY, "dns")


# -- SSRF ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "[::1]", "localhost",
                                  "[::ffff:127.0.0.1]", "100.64.0.1", "192.168.0.10", "0.0.0.0"])
def test_internal_addresses_are_refused_before_any_connection(host):
    # given a receiver listening on loopback (which 127.0.0.1 and localhost would reach)
    with WebhookPeer(secret=SECRET, tls=True) as peer:
        # when the channel, not allowed private addresses, is asked to call an internal host
        result = send(f"https://{host}:{peer.port}/latest/meta-data", allow_private=False, ca_file=peer.ca_file)
        # then it refuses, and no request reached the receiver
        assert peer.requests == []
    assert (result.outcome, result.code) == (Outcome.FAILED, "ssrf_blocked")
    assert "not a public address" in result.detail


def test_a_name_with_any_internal_address_among_public_ones_is_refused():
    # given a name that resolves to a public address and to the metadata service (the resolver is the DNS answer)
    def resolver(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "169.254.169.254"]
    result = send("https://hooks.example.com/x", allow_private=False, resolver=resolver)
    assert (result.outcome, result.code) == (Outcome.FAILED, "ssrf_blocked") and "169.254.169.254" in result.detail


@pytest.mark.parametrize(("url", "code"), [
    ("http://hooks.example.com/x", "https_required"),
    ("ftp://hooks.example.com/x", "bad_url"),
    ("https://user:pw@hooks.example.com/x", "bad_url"),
    ("https:///no-host", "bad_url"),
    ("https://hooks.example.com:99999/x", "bad_url"),
])
def test_a_url_that_cannot_be_called_is_a_configuration_error(url, code):
    result = send(url, allow_private=False)
    assert (result.outcome, result.code) == (Outcome.CONFIG_ERROR, code)


def test_the_vetted_address_is_called_with_the_name_as_host_and_sni():
    # given a name the resolver maps to loopback once (as DNS answered when checked), and an https receiver
    # whose certificate is for that name; the name exists nowhere else, so a second lookup by httpx would fail
    calls = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]
    with WebhookPeer(secret=SECRET, tls=True, names=("hooks.test",)) as peer:
        result = send(f"https://hooks.test:{peer.port}/ok?tenant=7", resolver=resolver, ca_file=peer.ca_file)
        # then the request went to the vetted address, verified the certificate for the name, and said the name
        assert result.outcome is Outcome.SENT, result
        (request,) = peer.requests
        assert request.headers["host"] == f"hooks.test:{peer.port}" and request.server_name == "hooks.test"
        assert request.path == "/ok?tenant=7"
    assert calls == ["hooks.test"]


def test_a_certificate_for_another_name_is_refused_and_retried():
    with WebhookPeer(secret=SECRET, tls=True, names=("other.test",)) as peer:
        result = send(f"https://hooks.test:{peer.port}/ok", resolver=lambda h, p: ["127.0.0.1"], ca_file=peer.ca_file)
        assert not any(r.body for r in peer.requests)
    assert (result.outcome, result.code) == (Outcome.RETRY, "tls") and "certificate" in result.detail.lower()


# -- end to end ------------------------------------------------------------------------------------------

def add_person(app, email: str, first_name: str, **fields) -> int:
    with app.store.write() as conn:
        return app.contacts.identify(conn, Identifiers(email=email, external_id=f"ext-{first_name}"),
                                     ProfilePatch(first_name=first_name, timezone="UTC", **fields))


def webhook_worker(app, channel: WebhookChannel) -> Worker:
    binding = ChannelBinding(WebhookComposer(app.settings), channel, concurrency=4)
    return Worker(app, channels={"webhook": binding}, clock=lambda: NOW)


def test_a_webhook_campaign_posts_one_signed_envelope_per_contact(app):
    # given two contacts and a (non-marketing) webhook campaign pointed at a local receiver
    ana = add_person(app, "ana@example.com", "Ana", phone="+14155550101")
    bo = add_person(app, "bo@example.com", "Bo")
    with WebhookPeer(secret=SECRET) as peer:
        make_campaign(app, "churn", channel="webhook", marketing=False, template_document=WEBHOOK_TEMPLATE,
                      settings={"webhook_url": peer.url("/crm")}, clock=lambda: NOW)
        channel = WebhookChannel(WebhookSettings(secret=SECRET, allow_private=True))
        # when the worker sends
        run(webhook_worker(app, channel))
        # then the receiver verified and took one envelope per contact, with the rendered data
        assert all(r.signature_ok for r in peer.requests) and len(peer.received) == 2
        by_contact = {env["contact"]["id"]: env for env in peer.received}
    envelope = by_contact[ana]
    assert envelope["contact"] == {"id": ana, "external_id": "ext-Ana", "email": "ana@example.com",
                                   "phone": "+14155550101"}
    assert envelope["campaign"]["name"] == "churn" and envelope["sent_at"] == NOW.isoformat()
    assert envelope["data"] == {"event": "churn_risk", "name": "Ana", "order": "none", "score": 0.82}
    assert by_contact[bo]["data"]["name"] == "Bo"
    with app.store.read() as conn:
        rows = {r.contact_id: (r.status, r.message_id) for r in conn.execute(select(deliveries))}
    assert rows[ana][0] == "sent" and rows[ana][1] == envelope["message_id"]
    assert progress(app, "churn")["counts"]["sent"] == 2


def test_a_webhook_campaign_without_a_url_fails_each_message_with_the_reason(app):
    # given no campaign URL and no CLARION_WEBHOOK_URL
    add_person(app, "ana@example.com", "Ana")
    make_campaign(app, "churn", channel="webhook", marketing=False, template_document=WEBHOOK_TEMPLATE,
                  clock=lambda: NOW)
    channel = WebhookChannel(WebhookSettings(secret=SECRET))
    run(webhook_worker(app, channel))
    with app.store.read() as conn:
        (row,) = conn.execute(select(deliveries)).all()
    assert (row.status, row.reason) == ("failed", "render_error") and "webhook.url" in row.detail

"""Amazon SES feedback through SNS: signed notifications change the suppression list and the engagements;
unsigned, forged or oddly certified ones change nothing, and a certificate URL off SNS is never fetched."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from delivery_world import ScriptedChannel, add_contact, make_campaign, run, worker
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from clarion.api.app import create_app
from clarion.bootstrap import Clarion
from clarion.store.schema import contacts
from clarion.store.schema_delivery import deliveries
from clarion.store.schema_scores import engagements
from clarion.tracking.sns import SnsRejected, UrlPolicy
from ses_peer import SesPeer, bounce, complaint, delivery, new_signing_key

FOREIGN = (b"From: Shop <news@shop.example>\r\nTo: ana@example.com\r\nSubject: not ours\r\n"
           b"Message-ID: <0000014644fe5ef6@mail.elsewhere.example>\r\nX-Clarion-Delivery: 1\r\n\r\nHello\r\n")


def serve_hooks(app: Clarion, **settings: str) -> Iterator[TestClient]:
    """Clarion's API over the test's store, with ``settings`` on top of the test's."""
    served = Clarion.from_settings(app.settings.model_copy(update=settings))
    with TestClient(create_app(served)) as http:
        yield http
    served.close()


def send_mail(app: Clarion, *addresses: str) -> dict[str, bytes]:
    """One campaign email to each address, relayed (scripted) as accepted: the bytes the ESP took, by address."""
    for address in addresses:
        add_contact(app, address)
    make_campaign(app, "spring")
    channel = ScriptedChannel()
    run(worker(app, channel))
    return {message.recipient: message.data for message in channel.messages}


def feedback(app: Clarion) -> list[tuple[str, str, str | None]]:
    """(recipient, action, reason) of every engagement but the worker's ``received``, oldest first."""
    with app.store.read() as conn:
        rows = conn.execute(select(contacts.c.email, engagements.c.action, engagements.c.reason)
                            .join(contacts, contacts.c.id == engagements.c.contact_id)
                            .where(engagements.c.action != "received").order_by(engagements.c.id)).all()
    return [tuple(row) for row in rows]


def suppressed(app: Clarion, address: str) -> str | None:
    with app.store.read() as conn:
        entry = app.consent.suppression(conn, "email", address)
    return entry["reason"] if entry else None


@pytest.fixture
def sns() -> Iterator[SesPeer]:
    with SesPeer() as peer:
        yield peer


@pytest.fixture
def hooks(app, sns) -> Iterator[TestClient]:
    yield from serve_hooks(app, ses_certificate_resolve=sns.resolve, ses_certificate_ca_file=sns.ca_file,
                           ses_topic_arns=sns.topic_arn)


def post(http: TestClient, message: dict):
    body, headers = SesPeer.http_request(message)
    return http.post("/hooks/ses", content=body, headers=headers)


def test_a_permanent_bounce_suppresses_the_address_like_a_550(app, sns, hooks):
    # given a message SES accepted for ana
    raw = send_mail(app, "ana@example.com", "ben@example.com")["ana@example.com"]
    # when SES reports that it bounced for good
    answer = post(hooks, sns.notification(bounce(raw)))
    # then the address is suppressed as a hard bounce and the delivery has its bounce
    assert answer.status_code == 200 and answer.json() == {"recorded": 1, "replayed": 0, "unknown": 0, "ignored": 0}
    assert suppressed(app, "ana@example.com") == "hard_bounce"
    assert suppressed(app, "ben@example.com") is None
    assert feedback(app) == [("ana@example.com", "bounced", "permanent")]
    # and the certificate came over HTTPS from the SNS host the URL names
    assert [(r.path, r.host) for r in sns.requests] == [(sns.cert_path, f"{sns.host}:{sns.port}")]


def test_a_transient_bounce_is_recorded_and_the_address_kept(app, sns, hooks):
    raw = send_mail(app, "ana@example.com")["ana@example.com"]
    answer = post(hooks, sns.notification(bounce(raw, bounce_type="Transient", sub_type="MailboxFull")))
    assert answer.status_code == 200 and answer.json()["recorded"] == 1
    assert suppressed(app, "ana@example.com") is None
    assert feedback(app) == [("ana@example.com", "bounced", "transient")]
    # a permanent bounce after it is a different bounce: recorded, and now the address is suppressed
    post(hooks, sns.notification(bounce(raw)))
    assert suppressed(app, "ana@example.com") == "hard_bounce"
    assert feedback(app)[-1] == ("ana@example.com", "bounced", "permanent")


def test_a_complaint_suppresses_the_address(app, sns, hooks):
    # given two messages; SES event publishing (eventType), signed with SignatureVersion 2
    sent = send_mail(app, "ana@example.com", "ben@example.com")
    abuse = sns.notification(complaint(sent["ana@example.com"], event_publishing=True), version="2")
    not_spam = sns.notification(complaint(sent["ben@example.com"], feedback_type="not-spam"))
    # when both are reported
    assert post(hooks, abuse).json()["recorded"] == 1
    assert post(hooks, not_spam).json()["ignored"] == 1
    # then the abuse report suppresses ana; ben's "not spam" is no complaint
    assert suppressed(app, "ana@example.com") == "complaint"
    assert suppressed(app, "ben@example.com") is None
    assert feedback(app) == [("ana@example.com", "complained", "ses")]


def test_a_delivery_is_recorded_once_however_often_sns_sends_it(app, sns, hooks):
    raw = send_mail(app, "ana@example.com")["ana@example.com"]
    message = sns.notification(delivery(raw))
    first, again = post(hooks, message), post(hooks, message)
    later = post(hooks, sns.notification(delivery(raw), subject="Delivery"))  # another one, with a Subject
    assert [first.json()["recorded"], again.json()["replayed"], later.json()["replayed"]] == [1, 1, 1]
    assert feedback(app) == [("ana@example.com", "delivered", "ses")]
    assert suppressed(app, "ana@example.com") is None
    assert len(sns.requests) == 1  # the certificate was fetched once, then cached


def test_the_same_bounce_twice_is_recorded_once(app, sns, hooks):
    raw = send_mail(app, "ana@example.com")["ana@example.com"]
    message = sns.notification(bounce(raw))
    assert post(hooks, message).json()["recorded"] == 1
    assert post(hooks, message).json() == {"recorded": 0, "replayed": 1, "unknown": 0, "ignored": 0}
    assert feedback(app) == [("ana@example.com", "bounced", "permanent")]


def test_a_bad_signature_is_refused_and_changes_nothing(app, sns, hooks):
    raw = send_mail(app, "ana@example.com")["ana@example.com"]
    forged = sns.notification(bounce(raw), key=new_signing_key())  # a key that is not the certificate's
    edited = sns.notification(delivery(raw))
    edited["Message"] = edited["Message"].replace('"Delivery"', '"Bounce"')
    unsigned = {k: v for k, v in sns.notification(bounce(raw)).items() if k != "Signature"}
    unknown_version = {**sns.notification(bounce(raw)), "SignatureVersion": "3"}
    for message in (forged, edited, unsigned, unknown_version):
        answer = post(hooks, message)
        assert answer.status_code == 403 and answer.json()["error"] == "invalid_signature"
    assert suppressed(app, "ana@example.com") is None
    assert feedback(app) == []


@pytest.mark.parametrize("url", [
    "https://127.0.0.1:{port}{path}",  # the peer itself, by address
    "https://localhost:{port}{path}",
    "https://attacker-bucket.s3.amazonaws.com:{port}{path}",  # an amazonaws.com host anyone can fill
    "https://sns.us-east-1.amazonaws.com.evil.example:{port}{path}",
    "https://sns.us-east-1.amazonaws.com@127.0.0.1:{port}{path}",
    "https://sns.us-east-1.amazonaws.com:{other}{path}",  # an SNS host on a port nothing routes
    "https://sns.us-east-1.amazonaws.com:{port}/SimpleNotificationService.txt",
])
def test_a_certificate_url_off_sns_is_refused_before_any_fetch(sns, hooks, url):
    cert_url = url.format(port=sns.port, other=sns.port + 1, path=sns.cert_path)
    answer = post(hooks, sns.notification(bounce(FOREIGN), cert_url=cert_url))
    assert answer.status_code == 403 and answer.json()["error"] == "invalid_signature"
    assert sns.requests == []


def test_a_plain_http_certificate_url_is_refused_before_any_fetch(app, sns, hooks):
    raw = send_mail(app, "ana@example.com")["ana@example.com"]
    answer = post(hooks, sns.notification(bounce(raw), cert_url=f"http://{sns.host}:{sns.port}{sns.cert_path}"))
    assert answer.status_code == 403 and "https" in answer.json()["message"]
    assert sns.requests == []
    assert suppressed(app, "ana@example.com") is None


def test_a_certificate_server_whose_tls_does_not_verify_is_not_believed(app, sns):
    # given Clarion routed to the peer but not trusting its TLS authority (a man in the middle, say)
    raw = send_mail(app, "ana@example.com")["ana@example.com"]
    for http in serve_hooks(app, ses_certificate_resolve=sns.resolve):
        # when a notification names the certificate there
        answer = post(http, sns.notification(bounce(raw)))
        # then nothing is believed: 502, so SNS tries again later
        assert answer.status_code == 502 and answer.json()["error"] == "fetch_failed"
    assert suppressed(app, "ana@example.com") is None and feedback(app) == []


def test_feedback_on_a_message_clarion_did_not_send_is_answered_200_and_recorded_nowhere(app, sns, hooks):
    send_mail(app, "ana@example.com")
    answer = post(hooks, sns.notification(bounce(FOREIGN)))
    assert answer.status_code == 200
    assert answer.json() == {"recorded": 0, "replayed": 0, "unknown": 1, "ignored": 0}
    assert suppressed(app, "ana@example.com") is None and feedback(app) == []


def test_x_clarion_delivery_finds_a_delivery_only_when_the_message_id_agrees(app, sns, hooks):
    # given a notification that overtook the worker's checkpoint: no delivery has its Message-ID yet
    sent = send_mail(app, "ana@example.com", "ben@example.com")
    with app.store.write() as conn:
        conn.execute(update(deliveries).values(message_id=None))
    ana, ben = sent["ana@example.com"], sent["ben@example.com"]
    ben_id = ben.split(b"X-Clarion-Delivery: ", 1)[1].split(b"\r\n", 1)[0]
    claims_ben = ana.replace(b"X-Clarion-Delivery: ", b"X-Clarion-Delivery: " + ben_id + b"\r\nX-Old: ", 1)
    # when SES reports bounces: with the original headers, without them, and with a header naming another delivery
    with_headers = post(hooks, sns.notification(bounce(ana)))
    without = post(hooks, sns.notification(bounce(ben, include_headers=False)))
    disagreeing = post(hooks, sns.notification(bounce(claims_ben)))
    # then only the first is recorded: X-Clarion-Delivery agrees with the Message-ID's delivery part
    assert [a.json()["recorded"] for a in (with_headers, without, disagreeing)] == [1, 0, 0]
    assert [a.json()["unknown"] for a in (without, disagreeing)] == [1, 1]
    assert feedback(app) == [("ana@example.com", "bounced", "permanent")]
    assert suppressed(app, "ben@example.com") is None


def test_a_subscription_is_confirmed_by_fetching_its_subscribe_url(app, sns, hooks):
    answer = post(hooks, sns.subscription_confirmation())
    assert answer.status_code == 200 and answer.json() == {"confirmed": sns.topic_arn}
    assert sns.confirmed == [sns.topic_arn]
    assert [r.path.split("?")[0] for r in sns.requests] == [sns.cert_path, "/"]


def test_a_topic_outside_the_allow_list_is_refused_before_any_fetch(app, sns, hooks):
    raw = send_mail(app, "ana@example.com")["ana@example.com"]
    other = f"arn:aws:sns:us-east-1:999999999999:{sns.topic}"
    assert post(hooks, sns.subscription_confirmation(topic_arn=other)).status_code == 403
    assert post(hooks, sns.notification(bounce(raw), topic_arn=other)).status_code == 403
    assert sns.requests == [] and sns.confirmed == []
    assert suppressed(app, "ana@example.com") is None


def test_without_an_allow_list_any_topic_that_verifies_is_accepted(app, sns):
    raw = send_mail(app, "ana@example.com")["ana@example.com"]
    other = f"arn:aws:sns:eu-west-1:999999999999:{sns.topic}"
    for http in serve_hooks(app, ses_certificate_resolve=sns.resolve, ses_certificate_ca_file=sns.ca_file):
        assert post(http, sns.notification(bounce(raw), topic_arn=other)).json()["recorded"] == 1
    assert suppressed(app, "ana@example.com") == "hard_bounce"


def test_the_certificate_url_policy():
    policy = UrlPolicy()
    for url in ("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123.pem",
                "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-0123.pem",
                "https://SNS.EU-WEST-1.AMAZONAWS.COM:443/SimpleNotificationService-0123.pem"):
        assert policy.check(url, certificate=True).hostname
    for url in ("http://sns.us-east-1.amazonaws.com/a.pem", "https://amazonaws.com/a.pem",
                "https://s3.amazonaws.com/a.pem", "https://sns.us-east-1.amazonaws.com.example/a.pem",
                "https://user@sns.us-east-1.amazonaws.com/a.pem", "https://sns.us-east-1.amazonaws.com:8443/a.pem",
                "https://sns..amazonaws.com/a.pem", "https://sns.us-east-1.amazonaws.com/a.txt?x=.pem",
                "https://sns.us-east-1.amazonaws.com/a.crt", "https://[::1]/a.pem", "", None, 42):
        with pytest.raises(SnsRejected):
            policy.check(url, certificate=True)

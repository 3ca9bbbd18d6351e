"""Response tracking end to end: a sent email's links and pixel, through /c/ and /o/, into engagements."""

# ruff: noqa: F811 - pytest fixtures imported from test_api_support are parameters here

from __future__ import annotations

import email
import re
from datetime import UTC, datetime, timedelta

import pytest
from delivery_world import ScriptedChannel, add_contact, make_campaign, run, worker
from sqlalchemy import select, update
from test_api_support import admin, admin_key, client, ingest_key, write_key  # noqa: F401 - fixtures

from clarion.domain.profiles import ProfilePatch
from clarion.services.identity import Identifiers
from clarion.store.schema_delivery import deliveries, tracked_links
from clarion.store.schema_scores import engagements
from clarion.tracking.tokens import sign_click

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"}
SCANNER = {"User-Agent": "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"}
TEMPLATE = {"default": {
    "email": {"subject": "Spring sale",
              "html": '<html><body><p>Hi {{ contact.first_name }}, <a href="https://shop.example/sale">see the sale</a>'
                      ' or <a href="https://shop.example/new">what is new</a>. '
                      '<a href="{{ links.unsubscribe }}">Unsubscribe</a></p></body></html>'}}}


def sent_email(app, **settings) -> tuple[str, int]:
    """Given Ana's spring campaign sent a minute ago: her message's HTML and its delivery id."""
    add_contact(app, "ana@example.com")
    make_campaign(app, template_document=TEMPLATE, settings={"quiet_hours": {}, **settings})
    channel = ScriptedChannel()
    run(worker(app, channel))
    message = email.message_from_bytes(channel.messages[0].data)
    html = next(part for part in message.walk() if part.get_content_type() == "text/html")
    with app.store.write() as conn:
        delivery_id = conn.execute(select(deliveries.c.id)).scalar_one()
        conn.execute(update(deliveries).values(sent_at=datetime.now(UTC) - timedelta(minutes=1)))
    return html.get_payload(decode=True).decode(), delivery_id


def paths(html: str, kind: str) -> list[str]:
    return re.findall(rf'"https?://[^/"]+(/{kind}/[A-Za-z0-9_-]+)"', html)


def engagement_rows(app) -> list[dict]:
    with app.store.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(engagements).where(engagements.c.action != "received")
                                                        .order_by(engagements.c.id))]


def test_a_human_click_redirects_to_the_stored_url_and_counts_a_click_and_an_open(app, client):
    # given a sent email with two tracked links, the hidden honeypot and the pixel
    html, delivery_id = sent_email(app)
    sale, new, honeypot = paths(html, "c")
    assert len(paths(html, "o")) == 1 and "/u/" in html  # the unsubscribe link is never rewritten
    with app.store.read() as conn:
        assert conn.execute(select(tracked_links.c.position)).scalars().all() == [1, 2, 3]
    # when Ana clicks the sale link in her browser
    response = client.get(sale, headers=BROWSER, follow_redirects=False)
    # then she lands on the sale with the campaign's UTM parameters, and a human click and open are recorded
    assert response.status_code == 302
    assert response.headers["location"] == ("https://shop.example/sale?utm_source=clarion&utm_medium=email"
                                            "&utm_campaign=spring&utm_content=see+the+sale")
    assert response.headers["cache-control"].startswith("no-store")
    rows = engagement_rows(app)
    assert [(r["action"], r["machine"], r["link"], r["reason"]) for r in rows] == [
        ("clicked", False, 1, None), ("opened", False, None, "click")]
    assert rows[0]["delivery_id"] == delivery_id and rows[0]["agent"] == "browser"
    # and a second click counts again, without a second open
    client.get(sale, headers=BROWSER, follow_redirects=False)
    assert [r["action"] for r in engagement_rows(app)] == ["clicked", "opened", "clicked"]
    assert new and honeypot


def test_scanners_head_requests_and_the_honeypot_are_machines(app, client):
    html, _ = sent_email(app)
    sale, _new, honeypot = paths(html, "c")
    # when a security gateway follows the link, a link checker asks HEAD, and something follows the hidden link
    assert client.get(sale, headers=SCANNER, follow_redirects=False).status_code == 302
    head = client.head(sale, headers=BROWSER, follow_redirects=False)
    assert head.status_code == 200 and "location" not in head.headers
    hidden = client.get(honeypot, headers=BROWSER, follow_redirects=False)
    assert hidden.status_code == 200 and "location" not in hidden.headers
    # then all three are machine clicks with their rule, and none counts as an open
    assert [(r["action"], r["machine"], r["reason"]) for r in engagement_rows(app)] == [
        ("clicked", True, "security_scanner"), ("clicked", True, "head_request"), ("clicked", True, "honeypot_link")]


def test_the_pixel_is_an_uncacheable_gif_and_records_an_open(app, client):
    html, _ = sent_email(app)
    (pixel,) = paths(html, "o")
    response = client.get(pixel, headers=BROWSER)
    assert response.status_code == 200 and response.headers["content-type"] == "image/gif"
    assert response.content.startswith(b"GIF89a") and "no-store" in response.headers["cache-control"]
    client.get(pixel, headers={"User-Agent": "Mozilla/5.0"})  # Apple's Mail Privacy Protection prefetch
    assert [(r["action"], r["machine"], r["reason"]) for r in engagement_rows(app)] == [
        ("opened", False, "pixel"), ("opened", True, "mail_proxy")]


def test_a_campaign_without_tracking_leaves_links_and_adds_no_pixel(app):
    html, _ = sent_email(app, tracking={"links": False, "opens": False})
    assert paths(html, "c") == [] and paths(html, "o") == []
    assert "https://shop.example/sale?utm_source=clarion" in html


@pytest.mark.parametrize("path", ["/c/AAAA", "/c/" + "A" * 5000, "/c/%C3%A9t%C3%A9", "/o/forged", "/c/"])
def test_forged_truncated_huge_or_non_ascii_tokens_get_a_404_and_record_nothing(app, client, path):
    html, _ = sent_email(app)
    response = client.get(path, headers=BROWSER, follow_redirects=False)
    assert response.status_code == 404 and "location" not in response.headers
    truncated = client.get(paths(html, "c")[0][:-3], headers=BROWSER, follow_redirects=False)
    assert truncated.status_code == 404
    assert engagement_rows(app) == []


def test_an_erased_contacts_links_are_gone_and_record_nothing(app, client):
    html, _ = sent_email(app)
    sale = paths(html, "c")[0]
    with app.store.write() as conn:
        contact_id = conn.execute(select(deliveries.c.contact_id)).scalar_one()
        exported = app.gdpr.export(conn, contact_id)
    assert [link["position"] for link in exported["tracked_links"]] == [1, 2, 3]
    with app.store.write() as conn:
        app.gdpr.erase(conn, contact_id)
    assert client.get(sale, headers=BROWSER, follow_redirects=False).status_code == 404
    with app.store.read() as conn:
        assert conn.execute(select(tracked_links)).all() == [] and conn.execute(select(engagements)).all() == []


def test_a_non_ascii_target_is_percent_encoded_in_the_redirect(app, client):
    template = {"default": {"email": {"subject": "Été", "html": '<a href="https://shop.example/été?q=crème">x</a>'}}}
    add_contact(app, "ana@example.com")
    make_campaign(app, template_document=template, settings={"quiet_hours": {}, "tracking": {"utm": False}})
    channel = ScriptedChannel()
    run(worker(app, channel))
    with app.store.write() as conn:
        conn.execute(update(deliveries).values(sent_at=datetime.now(UTC) - timedelta(minutes=1)))
        delivery_id = conn.execute(select(deliveries.c.id)).scalar_one()
    token = sign_click(app.settings.link_secret, delivery_id, 1)
    response = client.get(f"/c/{token}", headers=BROWSER, follow_redirects=False)
    assert response.headers["location"] == "https://shop.example/%C3%A9t%C3%A9?q=cr%C3%A8me"


def test_a_tapped_notification_reported_by_the_app_is_one_open(app, client, ingest_key):
    # given a sent message, and Ana's app that knows her as user u-ana and reports the tap with our message id
    _html, delivery_id = sent_email(app)
    with app.store.write() as conn:
        app.contacts.identify(conn, Identifiers(email="ana@example.com", external_id="u-ana"), ProfilePatch())
        message_id = conn.execute(select(deliveries.c.message_id)).scalar_one()
    for n, properties in enumerate([{"message_id": message_id}, {"message_id": message_id},
                                    {"message_id": f"{delivery_id}.{'0' * 20}"}]):
        event = {"userId": "u-ana", "event": "Notification Opened", "messageId": f"m-{n}", "properties": properties}
        # when the app reports it (twice, and once more with a forged message id)
        assert client.post("/v1/track", json=event, auth=write_key(ingest_key)).status_code == 200
    # then the delivery has exactly one open, from the app
    rows = engagement_rows(app)
    assert [(r["action"], r["reason"], r["delivery_id"]) for r in rows] == [("opened", "app", delivery_id)]

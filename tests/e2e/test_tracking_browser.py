"""End to end in a real browser: a campaign email delivered to a real SMTP server is opened in headless
Chromium; a click on its link goes through Clarion's redirect (/c/{token}) to the shop with UTM parameters,
and a purchase tracked afterwards is credited to the message as a conversion.

Chromium is Debian's (apt-get install chromium), driven by Playwright through ``executable_path``: never
``playwright install``, which downloads browsers. CI installs it: there the test fails without it; locally
it is skipped.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import uvicorn
from sqlalchemy import select, update

from clarion.api.app import create_app
from clarion.bootstrap import Clarion
from clarion.config import Settings
from clarion.domain.consent import Channel, ConsentStatus
from clarion.domain.profiles import ProfilePatch
from clarion.runners.worker import Worker
from clarion.services.attribution import AttributionService
from clarion.services.campaigns import CampaignService
from clarion.services.delivery_defaults import set_defaults
from clarion.services.identity import Identifiers
from clarion.services.reports import campaign_report
from clarion.services.segments import SegmentService
from clarion.services.templates import TemplateService
from clarion.store.schema_delivery import deliveries
from clarion.store.schema_scores import engagements
from smtp_server import SmtpTestServer
from threaded_server import PeerHandler, ThreadedPeer

WAIT = 30.0  # seconds for uvicorn to start and for a page to load or navigate, on a loaded 2-core CI machine
HTML = ('<p>Hello {{ contact.first_name }}, <a href="SHOP/sale" id="sale">Shop the sale</a></p>'
        '<p><a href="{{ links.unsubscribe }}">Unsubscribe</a></p>')


@dataclass
class Shop(ThreadedPeer):
    """The shop's landing site: records the path and query of each request, answers a page."""

    seen: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def handler(self) -> type[PeerHandler]:
        shop = self

        class Handler(PeerHandler):
            def do_GET(self) -> None:  # noqa: N802 (named by http.server)
                shop.seen.append(self.path)
                self.reply(200, {"Content-Type": "text/html"}, b"<!doctype html><title>Autumn sale</title>")
        return Handler


def chromium_or_skip() -> str:
    if found := shutil.which("chromium"):
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed: CI must install it (apt-get install chromium)")
    pytest.skip("chromium is not installed (apt-get install chromium)")


@pytest.fixture
def world(sqlite_template, tmp_path) -> Iterator[tuple[Clarion, SmtpTestServer, Shop]]:
    """Clarion on SQLite (one store is enough here: tracking is tested on both elsewhere) served by uvicorn,
    its worker sending through the real SMTP adapter to a real SMTP server; and the shop."""
    shutil.copyfile(sqlite_template, tmp_path / "clarion.db")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with SmtpTestServer() as smtp, Shop() as shop:
        app = Clarion.from_settings(Settings(
            database_url=f"sqlite:///{tmp_path / 'clarion.db'}", default_timezone="UTC", _env_file=None,
            public_url=f"http://127.0.0.1:{port}", email_transport="smtp", smtp_host="127.0.0.1",
            smtp_port=smtp.port, smtp_security="none"))
        server = uvicorn.Server(uvicorn.Config(create_app(app), host="127.0.0.1", port=port, log_level="warning",
                                               lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + WAIT
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)  # polls for the exact condition: uvicorn says it is serving
        try:
            assert server.started, "uvicorn did not start serving"
            yield app, smtp, shop
        finally:
            server.should_exit = True
            thread.join(10)
            app.close()


def send_campaign(app: Clarion, shop: Shop) -> tuple[int, int]:
    """Ana (userId ana-1, opted in to email) is sent the "autumn" campaign: (her id, the delivery's id)."""
    with app.store.write() as conn:
        ana = app.contacts.identify(conn, Identifiers(external_id="ana-1", email="ana@example.com"),
                                    ProfilePatch(first_name="Ana", timezone="UTC"))
        app.consent.record(conn, ana, Channel.EMAIL, ConsentStatus.OPTED_IN, source="test")
        set_defaults(conn, {"quiet_hours": {}})  # the test runs at any hour (by default 21:00-08:00 is quiet)
        SegmentService(app.settings).create(conn, "everyone", "email exists")
        TemplateService().save(conn, "autumn", {"default": {"email": {
            "subject": "Autumn sale", "html": HTML.replace("SHOP", shop.base_url)}}})
        campaigns = CampaignService(app.settings)
        campaigns.create(conn, {"name": "autumn", "template": "autumn", "segment": "everyone", "channel": "email"})
        campaigns.send(conn, "autumn")
    asyncio.run(Worker(app).run(until_idle=True))  # its channels come from the settings: the SMTP adapter
    with app.store.read() as conn:
        (delivery,) = conn.execute(select(deliveries.c.id, deliveries.c.status)).all()
    assert delivery.status == "sent"
    return ana, delivery.id


def rows(app: Clarion, action: str) -> list:
    with app.store.read() as conn:
        return list(conn.execute(select(engagements).where(engagements.c.action == action)))


def test_a_click_in_chromium_lands_on_the_shop_with_utm_and_the_purchase_converts(world):
    binary = chromium_or_skip()
    from playwright.sync_api import sync_playwright  # a dev dependency, needed once there is a browser

    app, smtp, shop = world
    # given a message delivered to Ana through the SMTP server a minute ago (a click less than 10 s after
    # the send is a link scanner's: tracking/classify.py TOO_SOON)
    ana, delivery = send_campaign(app, shop)
    with app.store.write() as conn:
        conn.execute(update(deliveries).where(deliveries.c.id == delivery)
                     .values(sent_at=datetime.now(UTC) - timedelta(minutes=1)))
    (received,) = smtp.messages
    html = message_from_bytes(received.data, policy=policy.default).get_body(("html",)).get_content()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=binary, headless=True)
        try:
            # Headless Chromium says "HeadlessChrome" in its user agent, which crawlerdetect rightly calls a
            # bot; a person's Chrome never says Headless, so the page runs with the same string without it.
            probe = browser.new_page()
            user_agent = probe.evaluate("navigator.userAgent").replace("HeadlessChrome/", "Chrome/")
            probe.close()
            page = browser.new_context(user_agent=user_agent).new_page()
            page.set_default_timeout(WAIT * 1000)
            # when she opens the message (its images load: the open pixel) and clicks the link
            page.set_content(html, wait_until="load")
            page.click("a#sale")
            page.wait_for_url(lambda url: url.startswith(f"{shop.base_url}/sale?"))
        finally:
            browser.close()
    # then the shop was reached at the original URL with the campaign's UTM parameters
    (visit,) = [path for path in shop.seen if urlsplit(path).path == "/sale"]
    assert dict(parse_qsl(urlsplit(visit).query)) == {
        "utm_source": "clarion", "utm_medium": "email", "utm_campaign": "autumn", "utm_content": "Shop the sale"}
    # and Clarion recorded a browser's human click on the first link, and the pixel's human open
    (click,) = rows(app, "clicked")
    assert (click.delivery_id, click.link, click.machine, click.reason, click.agent) == \
        (delivery, 1, False, None, "browser")
    assert [(o.machine, o.reason, o.agent) for o in rows(app, "opened")] == [(False, "pixel", "browser")]

    # when the shop's backend tracks her purchase, and the attribution pass runs
    with app.store.write() as conn:
        _record, ingest_key = app.keys.create(conn, "shop backend", "ingest")
    tracked = httpx.post(f"{app.settings.public_url}/v1/track", auth=(ingest_key, ""), timeout=WAIT, json={
        "userId": "ana-1", "event": "Order Completed",
        "properties": {"order_id": "o-1", "revenue": 42.5, "currency": "USD"}})
    assert tracked.status_code == 200, tracked.text
    with app.store.write() as conn:
        AttributionService(app.settings).run(conn)
    # then the purchase is a conversion credited to the message, with its revenue (USD: the workspace's)
    (converted,) = rows(app, "converted")
    assert (converted.contact_id, converted.delivery_id, converted.revenue) == (ana, delivery, 42.5)
    # and the campaign's report shows one human click, no machine click, and one conversion
    with app.store.read() as conn:
        report = campaign_report(conn, "autumn")
    assert (report["human"]["clicks"], report["machine"]["clicks"]) == \
        ({"total": 1, "unique": 1}, {"total": 0, "unique": 0})
    assert (report["conversions"], report["revenue"]) == (1, 42.5)

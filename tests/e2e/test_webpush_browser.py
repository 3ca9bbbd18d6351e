"""End to end in a real browser: headless Firefox subscribes through the Push API, Clarion sends a web push
campaign, Firefox decrypts it and its service worker hands the text to the test.

    shop page (http://localhost:<site>)   Clarion (uvicorn, 127.0.0.1)    local autopush (tests/autopush_peer.py)
    clarion-webpush.js ── subscribe ────► /webpush/subscriptions           ws:// browser side ◄── Firefox
    service worker ◄────────────────────────── Worker ── POST https:// ──► relays over the WebSocket
      └─ POST /collect (event.data.text()) ──► the test compares it with the plaintext Clarion encrypted

Firefox is Debian's firefox-esr, started on a fresh profile whose user.js points its push service at the
peer (dom.push.serverURL). CI installs it: there the test fails without it; locally it is skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import uvicorn
from py_vapid import Vapid02
from sqlalchemy import select

from autopush_peer import AutopushPeer
from clarion.api.app import create_app
from clarion.bootstrap import Clarion
from clarion.channels.base import DeliveryResult, OutboundPush, PushTarget
from clarion.channels.push_fanout import PushFanout
from clarion.channels.webpush import WebPushProvider, payload
from clarion.config import Settings
from clarion.domain.consent import Channel, ConsentStatus
from clarion.domain.profiles import ProfilePatch
from clarion.messages.push_compose import PushComposer
from clarion.runners.dispatch import ChannelBinding
from clarion.runners.worker import Worker
from clarion.services import devices as device_service
from clarion.services.campaigns import CampaignService
from clarion.services.identity import Identifiers
from clarion.services.segments import SegmentService
from clarion.services.templates import TemplateService
from clarion.store.schema import devices

T = TypeVar("T")
FIREFOX = "firefox-esr"
# Deadlines are generous: unloaded, Firefox starts and subscribes in about 3 s and a push arrives in under 1 s,
# but CI runs this beside another pytest worker on 2 cores, where each can take several times as long.
SUBSCRIBE_WAIT = 60.0  # seconds for one browser to start, load the page and report its subscription stored
BROWSERS = 2  # a fresh profile whose push connection stalls for good is closed and a new one tried, once
PUSH_WAIT = 60.0  # seconds from the worker's send to the service worker's report, and to Firefox's ack
SERVER_WAIT = 30.0  # seconds for uvicorn to start, and for one HTTP request to Clarion to be answered
TEMPLATE = {"default": {"webpush": {"title": "{{ contact.first_name }}, l'automne est là 🍂",
                                    "body": "20 % de remise aujourd'hui", "url": "https://shop.example/sale",
                                    "icon": "https://shop.example/icon.png"}}}

# Prefs for a quiet, unattended browser: the push service is the peer, permission is granted, and the
# first-run pages, telemetry, updates, Safe Browsing and remote settings make no network noise.
PREFS = {
    "dom.push.enabled": True, "dom.push.connection.enabled": True, "dom.push.testing.allowInsecureServerURL": True,
    "dom.push.testing.ignorePermission": True, "dom.serviceWorkers.enabled": True,
    "dom.serviceWorkers.testing.enabled": True, "permissions.default.desktop-notification": 1,
    "dom.webnotifications.requireuserinteraction": False, "dom.webnotifications.requireinteraction.enabled": False,
    "devtools.console.stdout.content": True, "browser.dom.window.dump.enabled": True,
    "browser.shell.checkDefaultBrowser": False, "browser.startup.homepage_override.mstone": "ignore",
    "startup.homepage_welcome_url": "", "startup.homepage_welcome_url.additional": "",
    "browser.aboutwelcome.enabled": False, "trailhead.firstrun.didSeeAboutWelcome": True,
    "browser.startup.page": 0, "browser.newtabpage.enabled": False, "browser.tabs.warnOnClose": False,
    "datareporting.policy.dataSubmissionEnabled": False, "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False, "toolkit.telemetry.unified": False, "toolkit.telemetry.server": "",
    "toolkit.telemetry.archive.enabled": False, "app.update.auto": False, "app.update.disabledForTesting": True,
    "app.normandy.enabled": False, "app.shield.optoutstudies.enabled": False, "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False, "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False, "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.provider.google4.updateURL": "", "browser.safebrowsing.provider.mozilla.updateURL": "",
    "services.settings.server": "http://127.0.0.1:9/", "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False, "network.dns.disablePrefetch": True,
    "network.prefetch-next": False, "network.http.speculative-parallel-limit": 0,
    "browser.search.update": False, "browser.region.update.enabled": False, "browser.region.network.url": "",
    "media.gmp-manager.url": "", "media.gmp-gmpopenh264.enabled": False, "browser.ping-centre.telemetry": False,
    "browser.topsites.contile.enabled": False, "extensions.pocket.enabled": False, "identity.fxaccounts.enabled": False,
}

PAGE = """<!doctype html><meta charset="utf-8"><title>Shop</title>
<script src="{clarion}/webpush/clarion-webpush.js"></script>
<script>
  function report(what) {{ return fetch("/log", {{method: "POST", body: what}}); }}
  const ATTEMPT_MS = 5000;  // a subscribe that works takes well under a second
  const ATTEMPTS = 8;  // 40 s in all: within the test's SUBSCRIBE_WAIT, which also covers Firefox's start
  function within(ms) {{ return new Promise((_, reject) => setTimeout(() => reject(new Error("timed out")), ms)); }}
  async function go() {{
    // A fresh profile's first pushManager.subscribe() can stall (Firefox sends no "register" to the push
    // service until it is called again): retry it; the second call is answered in milliseconds. A retry
    // joins an attempt that is merely slow (Firefox keeps one pending registration per scope), so retries
    // never make a second subscription.
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {{
      try {{
        const options = {{clarionUrl: "{clarion}", token: "{token}", serviceWorker: "/sw.js"}};
        const subscription = await Promise.race([Clarion.subscribe(options), within(ATTEMPT_MS)]);
        // Clarion.subscribe resolves once Clarion has answered 201: the subscription is stored.
        return report("subscribed " + subscription.endpoint);
      }} catch (error) {{
        await report("attempt " + attempt + " failed: " + error);
      }}
    }}
    await report("gave up");
  }}
  go();
</script>"""

# The site's own service worker: Clarion's (copied to the site, as docs/channels/webpush.md says), plus a
# push listener of the test's that forwards the decrypted text to the collector.
SERVICE_WORKER = """importScripts("/clarion-sw.js");
self.addEventListener("push", (event) => {
  event.waitUntil(fetch("/collect", {method: "POST", body: event.data.text()}));
});"""


@dataclass
class Site:
    """The shop's origin: the page, its service worker, and the collector the service worker reports to."""

    page: str
    collected: list[bytes] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> int:
        site = self
        clarion_sw = (Path(__file__).parents[2] / "src/clarion/api/static/clarion-sw.js").read_bytes()
        files = {"/": ("text/html", lambda: site.page.encode()), "/sw.js": ("text/javascript", SERVICE_WORKER.encode),
                 "/clarion-sw.js": ("text/javascript", lambda: clarion_sw)}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (named by http.server)
                kind, body = files.get(self.path.split("?")[0], ("text/plain", lambda: b""))
                self._answer(200 if self.path.split("?")[0] in files else 404, kind, body())

            def do_POST(self) -> None:  # noqa: N802
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                (site.collected.append(data) if self.path == "/collect" else site.log.append(data.decode()))
                self._answer(204, "text/plain", b"")

            def _answer(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self.server.server_address[1]

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def verdict(self, timeout: float) -> str | None:
        """The page's last word on subscribing ("subscribed <endpoint>" or "gave up"), once it has said it,
        or None if it says neither within ``timeout`` seconds."""
        return wait_for(lambda: next((line for line in self.log if line.startswith(("subscribed ", "gave up"))),
                                     None), timeout)


class Recording:
    """Wraps the real provider to keep the exact plaintext Clarion encrypted for each subscription."""

    def __init__(self, provider: WebPushProvider) -> None:
        self.provider = provider
        self.plaintexts: list[bytes] = []

    async def send_to(self, message: OutboundPush, target: PushTarget) -> DeliveryResult:
        self.plaintexts.append(payload(message))
        return await self.provider.send_to(message, target)

    async def aclose(self) -> None:
        await self.provider.aclose()


def firefox_or_skip() -> str:
    found = shutil.which(FIREFOX)
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"{FIREFOX} is not installed: CI must install it (apt-get install firefox-esr)")
    pytest.skip(f"{FIREFOX} is not installed (apt-get install firefox-esr)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def peer() -> Iterator[AutopushPeer]:
    with AutopushPeer() as running:
        yield running


@pytest.fixture
def clarion(sqlite_template, tmp_path, peer) -> Iterator[Clarion]:
    """Clarion on SQLite (one store is enough here: the ledger is tested on both elsewhere)."""
    database = tmp_path / "clarion.db"
    shutil.copyfile(sqlite_template, database)
    key = Vapid02()
    key.generate_keys()
    (tmp_path / "vapid.pem").write_bytes(key.private_pem())
    settings = Settings(database_url=f"sqlite:///{database}", default_timezone="UTC", _env_file=None,
                        webpush_vapid_private_key_file=str(tmp_path / "vapid.pem"),
                        webpush_vapid_subject="mailto:ops@shop.example", webpush_allow_private_endpoints=True,
                        webpush_ca_file=peer.ca_file)
    app = Clarion.from_settings(settings)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def clarion_url(clarion: Clarion) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(clarion), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    expect(f"uvicorn to start on port {port}", lambda: server.started or not thread.is_alive(), SERVER_WAIT,
           lambda: "its thread ended" if not thread.is_alive() else "not started yet")
    assert server.started, "uvicorn's thread ended before it started serving"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def start_firefox(binary: str, profile: Path, ws_url: str, url: str) -> subprocess.Popen:
    profile.mkdir()
    prefs = PREFS | {"dom.push.serverURL": ws_url}
    (profile / "user.js").write_text("".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n"
                                             for k, v in prefs.items()))
    env = os.environ | {"MOZ_HEADLESS": "1", "MOZ_CRASHREPORTER_DISABLE": "1", "HOME": str(profile.parent)}
    return subprocess.Popen([binary, "--headless", "--no-remote", "--profile", str(profile), url], env=env,
                            stdout=(profile.parent / "firefox.log").open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop_firefox(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def wait_for(found: Callable[[], T], timeout: float) -> T | None:
    """Polls ``found`` until it returns something truthy (returned), or None once ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        result = found()
        if result:
            return result
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def expect(what: str, found: Callable[[], T], timeout: float, seen: Callable[[], object]) -> T:
    """``wait_for``, failing with what was awaited and what was seen instead."""
    result = wait_for(found, timeout)
    if not result:
        pytest.fail(f"waited {timeout:.0f} s for {what}; saw {seen()!r}")
    return result


def open_shop(binary: str, tmp_path: Path, peer: AutopushPeer, page: str,
              forget_abandoned: Callable[[str], None]) -> tuple[Site, subprocess.Popen, str]:
    """Opens the shop's page in a fresh Firefox until the page reports its subscription stored in Clarion;
    returns the site, the browser and the endpoint. A browser whose page gives up, or says nothing in
    SUBSCRIBE_WAIT, is closed with its site, and a new one (new profile, new site) is tried; once that one
    has subscribed, ``forget_abandoned(endpoint)`` drops whatever the closed ones stored."""
    said = []
    for browser in range(BROWSERS):
        site = Site(page=page)
        port = site.start()
        firefox = start_firefox(binary, tmp_path / f"profile{browser}", peer.ws_url, f"http://localhost:{port}/")
        try:
            verdict = site.verdict(SUBSCRIBE_WAIT)
            if verdict and verdict.startswith("subscribed "):
                endpoint = verdict.removeprefix("subscribed ")
                if browser:
                    forget_abandoned(endpoint)
                return site, firefox, endpoint
        except BaseException:
            stop_firefox(firefox)
            site.stop()
            raise
        stop_firefox(firefox)
        site.stop()
        said.append(site.log)
    pytest.fail(f"no browser subscribed in {SUBSCRIBE_WAIT:.0f} s; their pages said {said}; "
                f"the push service saw {peer.ws_log}")


def add_shopper(app: Clarion) -> tuple[int, str]:
    with app.store.write() as conn:
        contact = app.contacts.identify(conn, Identifiers(email="ana@example.com"),
                                        ProfilePatch(first_name="Ana", timezone="UTC"))
        app.consent.record(conn, contact, Channel.WEBPUSH, ConsentStatus.OPTED_IN, source="test")
        _record, admin_key = app.keys.create(conn, "backend", "admin")
    return contact, admin_key


def subscriptions_of(app: Clarion, contact: int) -> list:
    with app.store.read() as conn:
        return list(conn.execute(select(devices).where(devices.c.contact_id == contact, devices.c.kind == "webpush")))


def forget_abandoned_browsers(app: Clarion, contact: int, endpoint: str) -> None:
    """A browser closed for stalling may have stored a subscription first: forget it, as a shop forgets a
    browser that is gone, so the campaign goes to the one browser under test (the page under test reported
    ``endpoint`` seconds after the closed browser was killed, so nothing of that browser is still in flight)."""
    with app.store.write() as conn:
        for subscription in conn.execute(select(devices).where(devices.c.contact_id == contact,
                                                               devices.c.kind == "webpush")):
            if subscription.token != endpoint:
                device_service.remove(conn, contact, subscription.id)


def send_campaign(app: Clarion, provider: Recording) -> None:
    now = datetime.now(UTC)
    with app.store.write() as conn:
        SegmentService(app.settings).create(conn, "everyone", "email exists")
        TemplateService().save(conn, "autumn", TEMPLATE)
        campaigns = CampaignService(app.settings, clock=lambda: now)
        # The clock is real: quiet hours off, or the push waits for the morning when the test runs at night.
        campaigns.create(conn, {"name": "autumn", "template": "autumn", "segment": "everyone", "channel": "webpush",
                                "settings": {"quiet_hours": {}}})
        campaigns.send(conn, "autumn")
    fanout = PushFanout({"webpush": provider})

    async def run() -> None:
        try:
            await Worker(app, channels={"webpush": ChannelBinding(PushComposer(app.settings), fanout)},
                         clock=lambda: now).run(until_idle=True)
        finally:
            await fanout.aclose()
    asyncio.run(run())


def test_firefox_subscribes_and_decrypts_a_campaign_sent_by_clarion(peer, clarion, clarion_url, tmp_path):
    binary = firefox_or_skip()
    # given Ana, and the token the shop's backend got for her browser from Clarion's admin API
    ana, admin_key = add_shopper(clarion)
    issued = httpx.post(f"{clarion_url}/api/contacts/{ana}/client-token", json={"scope": "webpush"},
                        headers={"Authorization": f"Bearer {admin_key}"}, timeout=SERVER_WAIT)
    assert issued.status_code == 200, issued.text
    # when her browser opens the shop's page (localhost: a secure context), the snippet subscribes and the
    # page reports it once Clarion has stored the subscription
    page = PAGE.format(clarion=clarion_url, token=issued.json()["token"])
    site, firefox, endpoint = open_shop(binary, tmp_path, peer, page,
                                        lambda endpoint: forget_abandoned_browsers(clarion, ana, endpoint))
    try:
        # then Clarion holds the subscription the push service issued, with the browser's keys
        (subscription,) = subscriptions_of(clarion, ana)
        assert subscription.token == endpoint and endpoint.startswith(f"{peer.origin}/wpush/v2/"), site.log
        assert subscription.p256dh and subscription.auth
        # when Clarion's worker sends a webpush campaign through the real provider
        provider = Recording(WebPushProvider.from_settings(clarion.settings))
        send_campaign(clarion, provider)
        # then the push service relayed it, Firefox decrypted it and its service worker reported the text
        expect("the service worker to report the decrypted push", lambda: site.collected, PUSH_WAIT,
               lambda: {"page": site.log, "push service": peer.ws_log[-3:]})
        (plaintext,) = provider.plaintexts
        assert site.collected[0] == plaintext  # byte for byte what Clarion encrypted
        assert json.loads(site.collected[0])["title"] == "Ana, l'automne est là 🍂"
        # and Firefox acknowledged the message to the push service (code 100: delivered)
        (relayed,) = peer.relayed
        assert peer.wait_for(lambda: any(u["version"] == relayed.version and u.get("code") == 100
                                         for a in peer.acks for u in a.get("updates", [])), PUSH_WAIT), (
            f"waited {PUSH_WAIT:.0f} s for Firefox to ack version {relayed.version}; it sent {peer.acks}")
    finally:
        stop_firefox(firefox)
        site.stop()

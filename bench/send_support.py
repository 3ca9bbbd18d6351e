"""Helpers of ``bench/send.py``: Postfix's smtp-sink, the synthetic audience, the template and the raw blast.

Nothing here is timed by itself; ``send.py`` decides what the clock covers.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import smtplib
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import bindparam, text

from clarion.store.types import UtcDateTime

SMTP_SINK = "/usr/sbin/smtp-sink"

# (locale, time zone, country, city): the audience rotates through them.
PLACES = [("en-US", "America/New_York", "US", "New York"), ("pt-BR", "America/Sao_Paulo", "BR", "São Paulo"),
          ("fr", "Europe/Paris", "FR", "Lyon"), ("de", "Europe/Berlin", "DE", "Köln"),
          ("es", "Europe/Madrid", "ES", "Sevilla"), ("en-GB", "Europe/London", "GB", "Leeds"),
          ("ja", "Asia/Tokyo", "JP", "Osaka"), ("pt", "Europe/Lisbon", "PT", "Porto")]
FIRST = ["Ana", "Bruno", "Chloé", "Dmitri", "Emma", "Farid", "Grace", "Hiro", "Inês", "Jonas", "Kemi",
         "Liam", "Mei", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera"]
LAST = ["Silva", "Smith", "Müller", "Dubois", "Rossi", "Tanaka", "Kowalski", "García", "Okafor", "Jensen"]
DOMAINS = ["example.org", "example.net", "mail.example.com", "inbox.example"]

SUBJECT = "{{ contact.first_name | default('Hello') }}, {{ contact.attributes.credit | money('EUR') }} is waiting"
PREHEADER = "Your credit expires on {{ contact.custom_dates.credit_expiry | date('long') }}"

_PRODUCT = """
      <tr><td class="card" style="padding:16px 24px">
        <table role="presentation" width="100%" cellspacing="0" cellpadding="0"><tr>
          <td width="120" valign="top"><img src="https://cdn.shop.example/img/p{n}.jpg" width="120" height="120"
               alt="Product {n}" style="display:block;border:0;border-radius:6px"></td>
          <td valign="top" style="padding-left:16px">
            <h3 style="margin:0 0 6px;font-size:17px;color:#1d2533">Seasonal pick number {n}</h3>
            <p style="margin:0 0 10px;font-size:14px;line-height:21px;color:#4a5568">Hand-made from recycled
              materials by a small workshop, this is the kind of thing people ask you about: durable, light,
              and easy to care for. Ships in two days to {{ contact.city | default("your city") }}.</p>
            <a class="button" href="https://shop.example/p/{n}?utm_campaign={{ campaign.id }}&amp;c={{ contact.id }}"
               style="display:inline-block;padding:10px 18px;background:#2b6cb0;color:#fff;border-radius:4px;
               text-decoration:none;font-weight:bold">Shop now</a>
          </td></tr></table>
      </td></tr>"""

HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ campaign.name }}</title>
<style>
  body { margin:0; padding:0; background:#f4f5f7; font-family: Helvetica, Arial, sans-serif; }
  .wrapper { width:100%; background:#f4f5f7; }
  .main { width:600px; max-width:600px; background:#ffffff; }
  .card { border-bottom:1px solid #edf0f4; }
  .footer p { font-size:11px; color:#8a94a6; line-height:16px; }
  @media only screen and (max-width: 620px) { .main { width:100% !important; } }
</style></head>
<body>
<table class="wrapper" role="presentation" width="100%" cellspacing="0" cellpadding="0"><tr><td align="center">
  <table class="main" role="presentation" cellspacing="0" cellpadding="0">
    <tr><td style="padding:24px">
      <img src="https://cdn.shop.example/logo.png" width="140" alt="Boutique Élodie"></td></tr>
    <tr><td style="padding:0 24px 16px">
      <h1 style="margin:0 0 12px;font-size:24px;color:#1d2533">Hello {{ contact.first_name | default("there") }}!</h1>
      <p style="margin:0;font-size:15px;line-height:23px;color:#4a5568">You have
        <strong>{{ contact.attributes.credit | money("EUR") }}</strong> of store credit, valid until
        {{ contact.custom_dates.credit_expiry | date("long") }}. Here are a few things we picked for you this
        week, {{ now | date("full") }}.</p>
    </td></tr>""" + "".join(_PRODUCT.replace("{n}", str(n)) for n in range(6)) + """
    <tr><td class="footer" style="padding:24px">
      <p>You receive this email because you subscribed to news from Boutique Élodie with {{ contact.email }}.</p>
      <p><a href="{{ links.unsubscribe }}" style="color:#8a94a6">Unsubscribe</a> in one click, at any time.
        Boutique Élodie, 12 rue des Lilas, 69001 Lyon, France.</p>
    </td></tr>
  </table>
</td></tr></table>
</body></html>
"""

TEMPLATE = {"default_locale": "en", "default": {"email": {"subject": SUBJECT, "preheader": PREHEADER, "html": HTML}}}


# -- the audience -----------------------------------------------------------------------------------
CONTACT_COLUMNS = ("external_id", "email", "first_name", "last_name", "locale", "timezone", "timezone_source",
                   "country", "city", "custom_dates", "attributes", "created_at", "updated_at")


def contact_rows(count: int, created: datetime | str, chunk: int = 50_000, seed: int = 11) -> Iterator[list[tuple]]:
    """Chunks of contacts rows (``CONTACT_COLUMNS``); ``attributes.bucket`` is the index modulo 100."""
    rng = random.Random(seed)
    rows: list[tuple] = []
    for i in range(count):
        locale, zone, country, city = PLACES[i % len(PLACES)]
        first = FIRST[rng.randrange(len(FIRST))]
        attributes = {"credit": round(rng.uniform(5, 500), 2), "bucket": i % 100}
        dates = {"credit_expiry": f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"}
        rows.append((f"c{i}", f"contact{i}@{DOMAINS[i % len(DOMAINS)]}", first, LAST[rng.randrange(len(LAST))],
                     locale, zone, "explicit", country, city, json.dumps(dates), json.dumps(attributes),
                     created, created))
        if len(rows) >= chunk:
            yield rows
            rows = []
    if rows:
        yield rows


def load_audience(conn, count: int) -> None:
    """``count`` contacts with an email consent (consent ledger, current state and identities), in bulk."""
    now = datetime.now(UTC)
    dialect = conn.dialect.name
    if dialect == "postgresql":
        driver = conn.connection.driver_connection
        with driver.cursor() as cursor, cursor.copy(f"COPY contacts ({', '.join(CONTACT_COLUMNS)}) FROM STDIN") as copy:
            for rows in contact_rows(count, now):
                for row in rows:
                    copy.write_row(row)
    else:
        created = now.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        marks = ", ".join("?" * len(CONTACT_COLUMNS))
        statement = f"INSERT INTO contacts ({', '.join(CONTACT_COLUMNS)}) VALUES ({marks})"
        for rows in contact_rows(count, created):
            conn.exec_driver_sql(statement, rows)
    stamp = bindparam("now", now, type_=UtcDateTime())
    conn.execute(text("INSERT INTO identities (contact_id, kind, value, created_at) "
                      "SELECT id, 'email', email, :now FROM contacts").bindparams(stamp))
    conn.execute(text("INSERT INTO consent_ledger (contact_id, channel, topic, status, occurred_at, recorded_at, "
                      "source, proof) SELECT id, 'email', '*', 'opted_in', :now, :now, 'import', '{}' FROM contacts")
                 .bindparams(stamp))
    conn.execute(text("INSERT INTO consents (contact_id, channel, topic, status, updated_at, ledger_id) "
                      "SELECT contact_id, channel, topic, status, occurred_at, id FROM consent_ledger")
                 .bindparams())


# -- smtp-sink ---------------------------------------------------------------------------------------
def ensure_smtp_sink() -> str:
    """The smtp-sink binary, installing Debian's postfix package when it is missing."""
    found = shutil.which("smtp-sink") or (SMTP_SINK if os.path.exists(SMTP_SINK) else None)
    if found:
        return found
    print("smtp-sink not found: installing postfix (apt-get) ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["debconf-set-selections"], input="postfix postfix/main_mailer_type select No configuration\n",
                   text=True, check=True)
    if subprocess.run(["apt-get", "install", "-y", "postfix"], env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "postfix"], env=env, check=True, capture_output=True)
    if not os.path.exists(SMTP_SINK):
        raise SystemExit("postfix installed but /usr/sbin/smtp-sink is missing")
    return SMTP_SINK


class Sink:
    """``smtp-sink -c`` on 127.0.0.1:port; its running counters (``sess=1 quit=0 mesg=42``) go to a file."""

    def __init__(self, binary: str, port: int, workdir: Path) -> None:
        self.port = port
        self.counter = workdir / f"sink-{port}.out"
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self._out = open(self.counter, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([binary, "-c", *user, f"127.0.0.1:{port}", "1024"],
                                     stdout=self._out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                smtplib.SMTP("127.0.0.1", port, timeout=2).quit()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"smtp-sink did not listen on port {port}")

    def count(self) -> int:
        """Messages received so far (the last ``mesg=`` counter; the probe connection sent none)."""
        with open(self.counter, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256))
            tail = f.read().decode("ascii", "replace")
        for record in reversed(tail.replace("\n", "\r").split("\r")):
            if "mesg=" in record:
                try:
                    return int(record.rsplit("mesg=", 1)[1].split()[0])
                except (ValueError, IndexError):
                    continue
        return 0

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.proc)

    def stop(self) -> None:
        stop_process(self.proc)
        self._out.close()


# -- the raw blast -----------------------------------------------------------------------------------
def process_cpu_seconds(proc: subprocess.Popen) -> float:
    """User + system CPU seconds of a helper process so far (0 once it is gone)."""
    import psutil

    try:
        times = psutil.Process(proc.pid).cpu_times()
        return times.user + times.system
    except psutil.Error:
        return 0.0


def stop_process(proc: subprocess.Popen) -> None:
    """Terminates a helper process, killing it if it does not exit within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def raw_blast(port: int, sender: str, messages: Sequence[bytes], recipients: Sequence[str], total: int,
              connections: int) -> float:
    """Seconds to send ``total`` pre-built messages with smtplib, ``connections`` threads of one connection
    each; message ``i`` is ``messages[i % len(messages)]`` to ``recipients[i % len(recipients)]``."""
    ready = threading.Barrier(connections + 1)
    errors: list[BaseException] = []

    def one(first: int) -> None:
        try:
            client = smtplib.SMTP("127.0.0.1", port, local_hostname="localhost", timeout=60)
            client.ehlo()
        except BaseException as exc:
            errors.append(exc)
            ready.abort()
            raise
        ready.wait()
        try:
            for i in range(first, total, connections):
                client.sendmail(sender, [recipients[i % len(recipients)]], messages[i % len(messages)])
            client.quit()
        except BaseException as exc:
            errors.append(exc)
            raise

    threads = [threading.Thread(target=one, args=(k,), daemon=True) for k in range(connections)]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        raise SystemExit(f"raw blast failed: {errors[0]!r}")
    return seconds


def channel_blast(port: int, sender: str, messages: Sequence[bytes], recipients: Sequence[str], total: int,
                  connections: int, batch: int = 500) -> float:
    """Seconds to send ``total`` pre-built messages through clarion's own ``SmtpChannel`` (aiosmtplib), one
    event loop, ``connections`` pooled connections, ``batch`` messages gathered at a time as a worker does."""
    import asyncio

    from clarion.channels.base import OutboundEmail
    from clarion.channels.smtp import SmtpChannel, SmtpSettings

    async def run() -> float:
        channel = SmtpChannel(SmtpSettings(host="127.0.0.1", port=port, security="none", pool_size=connections,
                                           max_messages_per_connection=1_000, local_hostname="localhost"))
        started = time.perf_counter()
        for first in range(0, total, batch):
            emails = [OutboundEmail(sender=sender, recipient=recipients[i % len(recipients)],
                                    data=messages[i % len(messages)], message_id=f"blast-{i}", idempotency_key=str(i))
                      for i in range(first, min(first + batch, total))]
            results = await asyncio.gather(*(channel.send(email) for email in emails))
            if not all(result.sent for result in results):
                raise SystemExit(f"channel blast: {next(r for r in results if not r.sent)}")
        seconds = time.perf_counter() - started
        await channel.aclose()
        return seconds

    return asyncio.run(run())

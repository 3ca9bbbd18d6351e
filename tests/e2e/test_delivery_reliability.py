"""Delivery reliability end to end: real worker processes, a real SMTP server, real stores.

1. kill -9 the worker ten times during a 20,000-recipient broadcast: nothing is lost, the only duplicates
   are the messages in flight at a kill, and a duplicate carries the Message-ID of the first copy;
2. a server answering 451 (then 250) and 550 5.1.1: retried until delivered, bounced once and suppressed;
3. two workers on one PostgreSQL database never send one delivery twice;
4. quiet hours hold in every IANA zone at any instant (a property test);
5. hostile templates are refused when saved or fail their message (even when written into the store past
   the validator), and never leak the environment.

The SMTP server process records each message before it answers 250 (flushed, not fsynced: the server
process is never killed here, and an fsync per message would make the broadcast three times slower).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import shutil
import signal
import smtplib
import subprocess
import sys
import time
import zoneinfo
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select, text

from clarion.bootstrap import Clarion
from clarion.config import Settings
from clarion.content.errors import InvalidTemplate
from clarion.domain.sending_time import QuietHours
from clarion.runners.worker import Worker
from clarion.services.campaigns import CampaignService
from clarion.services.delivery_defaults import set_defaults
from clarion.services.segments import SegmentService
from clarion.services.templates import TemplateService
from clarion.store.maintenance import refresh_statistics
from clarion.store.schema import consents, contacts
from clarion.store.schema_delivery import deliveries, delivery_log, templates
from smtp_server import Answer, SmtpTestServer, parse_answers

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
from delivery_world import Clock, ScriptedChannel, add_contact, make_campaign, progress, run, worker  # noqa: E402

STORES = [s.strip() for s in os.environ.get("CLARION_TEST_STORES", "sqlite,postgresql").split(",") if s.strip()]
OPEN = ("queued", "leased", "deferred")


# -- building blocks ------------------------------------------------------------------------------

def bulk_contacts(app: Clarion, addresses: list[str]) -> None:
    """Contacts with email consent, in two bulk statements (the services would take a minute for 20,000)."""
    now = datetime.now(UTC)
    with app.store.write() as conn:
        conn.execute(insert(contacts), [
            {"email": address, "first_name": f"Reader{i}", "timezone": "UTC", "custom_dates": {}, "attributes": {},
             "created_at": now, "updated_at": now} for i, address in enumerate(addresses)])
        ids = conn.execute(select(contacts.c.id)).scalars().all()
        conn.execute(insert(consents), [
            {"contact_id": contact_id, "channel": "email", "topic": "*", "status": "opted_in", "updated_at": now,
             "ledger_id": contact_id} for contact_id in ids])
    refresh_statistics(app.store.engine, ["contacts", "consents"])  # as the importer does after a bulk load


def no_quiet_hours(app: Clarion) -> None:
    with app.store.write() as conn:
        set_defaults(conn, {"quiet_hours": {}})


def broadcast(app: Clarion, addresses: list[str], name: str = "blast", **spec: Any) -> dict[str, Any]:
    """A running broadcast to ``addresses`` (every contact there is), quiet hours off."""
    no_quiet_hours(app)
    bulk_contacts(app, addresses)
    return make_campaign(app, name, **spec)


class Processes:
    """The subprocesses a test started; whatever still runs at the end is killed (by its own handle)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: dict[subprocess.Popen, str] = {}

    def start(self, command: list[str], *, name: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        with open(self.logs / f"{name}.err", "w") as err:  # stderr: the worker's log, read when it fails
            process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        self.started[process] = name
        return process

    def worker(self, name: str, env: dict[str, str], *, until_idle: bool = False) -> subprocess.Popen:
        """``clarion worker --id NAME``; on PostgreSQL its sessions carry NAME too (libpq's PGAPPNAME)."""
        command = [sys.executable, "-m", "clarion.cli.main", "worker", "--id", name, "--json"]
        return self.start(command + ["--until-idle"] * until_idle, name=name, cwd=self.logs,
                          env=env | {"PGAPPNAME": name})

    def finish(self, process: subprocess.Popen, timeout: float = 300) -> dict[str, Any]:
        """Waits for a ``clarion worker --until-idle --json``; its summary."""
        out, _ = process.communicate(timeout=timeout)
        log = (self.logs / f"{self.started[process]}.err").read_text()[-3000:]
        assert process.returncode == 0, f"worker {self.started[process]} exited with {process.returncode}:\n{log}"
        return json.loads(out)

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait(10)


@pytest.fixture
def processes(tmp_path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    yield started
    started.stop_all()


@contextmanager
def smtp_process(processes: Processes, record: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    """``python -m tests.smtp_server`` in a process of its own, recording what it accepts; yields its port
    and the process."""
    command = [sys.executable, "-m", "tests.smtp_server", "--port", "0", "--record", str(record)]
    server = processes.start(command, name="smtp-server", cwd=REPO)
    try:
        assert server.stdout is not None
        yield json.loads(server.stdout.readline())["port"], server
    finally:
        server.send_signal(signal.SIGCONT)  # a paused server would keep SIGTERM pending
        server.terminate()
        server.wait(10)


def size_of(record: Path) -> int:
    return record.stat().st_size if record.exists() else 0


def received(record: Path, offset: int = 0) -> list[dict[str, Any]]:
    """The server's record from byte ``offset`` on: one entry per accepted message and recipient."""
    if not record.exists():
        return []
    with open(record, encoding="utf-8") as file:
        file.seek(offset)
        return [json.loads(line) for line in file if line.strip()]


def worker_env(settings: Settings, port: int, **extra: Any) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLARION_")}
    env.update({"CLARION_DATABASE_URL": settings.database_url, "CLARION_HASH_SALT": settings.hash_salt,
                "CLARION_LINK_SECRET": settings.link_secret, "CLARION_DEFAULT_TIMEZONE": "UTC",
                "CLARION_EMAIL_TRANSPORT": "smtp", "CLARION_SMTP_HOST": "127.0.0.1", "CLARION_SMTP_PORT": str(port),
                "CLARION_SMTP_SECURITY": "none", "CLARION_SMTP_POOL_SIZE": "4", "CLARION_WORKER_POLL_SECONDS": "0.2",
                # a retry (none is expected) comes back within a second, not in 30 s
                "CLARION_RETRY_BASE_SECONDS": "0.1", "CLARION_RETRY_CAP_SECONDS": "0.5"})
    env.update({f"CLARION_{key.upper()}": str(value) for key, value in extra.items()})
    return env


def open_deliveries(app: Clarion) -> tuple[int, datetime | None]:
    """How many deliveries are still open, and when the earliest of them is due (a lease's end, a retry)."""
    with app.store.read() as conn:
        count, due = conn.execute(select(func.count(), func.min(deliveries.c.due_at))
                                  .where(deliveries.c.status.in_(OPEN))).one()
    return count, due


def drain(app: Clarion, processes: Processes, env: dict[str, str], *, rounds: int = 30) -> None:
    """``clarion worker --until-idle`` until nothing is open, waiting each time until something is due."""
    for attempt in range(rounds):
        count, due = open_deliveries(app)
        if count == 0:
            return
        if due is not None and due > datetime.now(UTC):  # a dead worker's rows are due when their lease ends
            time.sleep((due - datetime.now(UTC)).total_seconds() + 0.1)
        processes.finish(processes.worker(f"drain-{attempt}", env, until_idle=True))
    pytest.fail(f"deliveries still open after {rounds} worker runs: {open_deliveries(app)}")


def ledger(app: Clarion) -> list[Any]:
    with app.store.read() as conn:
        return conn.execute(select(deliveries, contacts.c.email)
                            .join(contacts, contacts.c.id == deliveries.c.contact_id)
                            .order_by(deliveries.c.id)).all()


def wait_for_sends(record: Path, offset: int, process: subprocess.Popen, limit: float = 60) -> None:
    """Until the server took a message from this worker (the record grew), or the worker ended."""
    deadline = time.monotonic() + limit
    while process.poll() is None and time.monotonic() < deadline and size_of(record) <= offset:
        time.sleep(0.02)


def wait_until(what: str, left: Callable[[], Any], limit: float = 120) -> None:
    """Until ``left()`` (what is still awaited) is empty; fails naming what was awaited and what was left."""
    deadline = time.monotonic() + limit
    while remaining := left():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {limit:.0f} s for {what}; still: {remaining}")
        time.sleep(0.02)


def connections_of(process: subprocess.Popen) -> list[Any]:
    """The TCP connections a process holds, its listening socket left out."""
    return [c for c in psutil.Process(process.pid).net_connections("tcp") if c.status != psutil.CONN_LISTEN]


def sessions_of(app: Clarion, worker_id: str) -> int:
    """The PostgreSQL sessions of a worker started by ``Processes.worker``; 0 on SQLite."""
    if app.store.engine.dialect.name != "postgresql":
        return 0
    with app.store.read() as conn:
        return conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"),
                            {"name": worker_id}).scalar_one()


def settle(app: Clarion, server: subprocess.Popen, worker_id: str) -> None:
    """Until all a killed worker left in flight has landed. The SMTP server then holds no connection but its
    listener: asyncio closes a socket only after its protocol's connection_lost, by when each message the
    server read is recorded (before its 250) or dropped. And on PostgreSQL the worker has no session left: its
    backend finishes a COMMIT it had received before it reads the closed socket and exits. (On SQLite a
    killed process's commit is done, or rolled back, when it dies.)"""
    wait_until(f"the SMTP server and the database to close {worker_id}'s connections",
               lambda: {k: v for k, v in {"smtp": connections_of(server),
                                          "postgresql sessions": sessions_of(app, worker_id)}.items() if v})


def lease_owners(app: Clarion) -> set[str]:
    with app.store.read() as conn:
        return set(conn.execute(select(deliveries.c.lease_owner).where(deliveries.c.status == "leased")
                                .distinct()).scalars())


def accepted_not_checkpointed(app: Clarion, worker_id: str, record: Path, offset: int) -> int:
    """Deliveries a killed worker still held (leased, never checkpointed) whose message the server took from
    it: a later worker sends each once more, so each is one duplicate."""
    with app.store.read() as conn:
        held = set(conn.execute(select(contacts.c.email).join(deliveries, deliveries.c.contact_id == contacts.c.id)
                                .where(deliveries.c.status == "leased", deliveries.c.lease_owner == worker_id))
                   .scalars())
    return len(held & {message["recipient"] for message in received(record, offset)})


def skip_unless(store: str):
    return pytest.mark.skipif(store not in STORES, reason=f"CLARION_TEST_STORES leaves out {store}")


def only(store: str):
    """Runs a test on one store of the ``database_url`` fixture (skipped when that store is left out)."""
    return pytest.mark.parametrize("database_url", [pytest.param(store, marks=skip_unless(store))], indirect=True)


# -- the test server's answers that give up after N attempts -------------------------------------------

def test_an_answer_with_times_is_given_to_each_address_that_often_then_the_server_accepts():
    # given a server that greylists "soft" addresses twice (at RCPT) and "later" ones once (at DATA)
    answers = {**parse_answers('{"soft": {"reply": "451 4.3.0 Try again", "times": 2}}'),
               "later": Answer("451 4.7.1 Greylisted", at="data", times=1), "gone": Answer("550 5.1.1 No such user")}
    with SmtpTestServer(answers=answers) as server, smtplib.SMTP("127.0.0.1", server.port) as client:
        def attempt(address: str) -> int:
            try:
                client.sendmail("news@example.com", [address], f"To: {address}\r\n\r\nHi\r\n")
            except smtplib.SMTPRecipientsRefused as refused:
                return refused.recipients[address][0]
            except smtplib.SMTPDataError as refused:
                client.rset()
                return refused.smtp_code
            return 250

        # when each address is tried a few times, then each gets its own count of refusals, then 250
        assert [attempt("soft+1@example.com") for _ in range(3)] == [451, 451, 250]
        assert [attempt("soft+2@example.com") for _ in range(3)] == [451, 451, 250]
        assert [attempt("later+1@example.com") for _ in range(2)] == [451, 250]
        # and an answer without times is given every time
        assert [attempt("gone+1@example.com") for _ in range(3)] == [550, 550, 550]
    assert server.recipients() == ["soft+1@example.com", "soft+2@example.com", "later+1@example.com"]


# -- 1. kill -9 during a big broadcast -------------------------------------------------------------

AUDIENCE = 20_000
BATCH = 200
KILLS = 10


@pytest.mark.slow
def test_a_worker_killed_ten_times_loses_nothing_and_repeats_only_what_was_in_flight(app, settings, tmp_path,
                                                                                     processes):
    # given a 20,000-recipient broadcast and an SMTP server process that records what it accepts
    audience = [f"reader{i}@example.com" for i in range(AUDIENCE)]
    broadcast(app, audience)
    record = tmp_path / "received.jsonl"
    rng = random.Random(20261123)
    repeated: list[int] = []  # per kill: messages the server took that the dead worker never checkpointed
    with smtp_process(processes, record) as (port, server):
        env = worker_env(settings, port, worker_batch_size=BATCH, worker_lease_seconds=2)
        # when a worker is killed with SIGKILL at a random moment while it sends, ten times over
        for kill in range(KILLS):
            offset = size_of(record)
            victim = processes.worker(f"victim-{kill}", env)
            wait_for_sends(record, offset, victim)
            time.sleep(rng.uniform(0.3, 2.0))
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            settle(app, server, f"victim-{kill}")
            repeated.append(accepted_not_checkpointed(app, f"victim-{kill}", record, offset))
        # and, as the dead workers' leases expire, a worker runs until nothing is open
        drain(app, processes, env)
    messages = received(record)
    copies: dict[str, list[str]] = defaultdict(list)
    for message in messages:
        copies[message["recipient"]].append(message["message_id"])
    duplicates = len(messages) - len(copies)
    print(f"\n[{app.store.engine.dialect.name}] {len(messages):,} messages for {len(audience):,} recipients, "
          f"{duplicates} duplicates; accepted but not checkpointed at each kill: {repeated}")
    # then every recipient got the message: none lost
    assert set(copies) == set(audience)
    # and the only duplicates are the messages in flight at a kill, at most a batch per kill
    assert duplicates == sum(repeated) <= KILLS * BATCH
    # and every copy of one recipient's message carries the same Message-ID, the one in the ledger
    rows = ledger(app)
    assert Counter(row.status for row in rows) == {"sent": AUDIENCE}
    assert {row.email: {row.message_id} for row in rows} == {to: set(ids) for to, ids in copies.items()}


# -- 2. temporary and permanent refusals ------------------------------------------------------------

def kind_of(i: int) -> str:
    """30 % greylisted (15 % once, 15 % twice), 5 % unknown users, the rest plain: fixed by the index."""
    return {0: "soft", 1: "soft", 2: "soft", 3: "busy", 4: "busy", 5: "busy", 6: "gone"}.get(i % 20, "reader")


GREYLISTED = {"soft": 1, "busy": 2}  # refusals before the server accepts


@pytest.mark.slow
def test_temporary_refusals_are_retried_until_delivered_and_unknown_users_bounce_once(app, settings):
    # given 1,000 recipients: 30 % refused with 451 on their first attempt(s), 5 % with 550 5.1.1 always
    addresses = [f"{kind_of(i)}+{i}@example.com" for i in range(1_000)]
    broadcast(app, addresses)
    answers = {"soft": Answer("451 4.3.0 Mailbox temporarily unavailable", times=GREYLISTED["soft"]),
               "busy": Answer("451 4.7.1 Greylisted, please try again later", times=GREYLISTED["busy"]),
               "gone": Answer("550 5.1.1 Recipient address rejected: User unknown in virtual mailbox table")}
    with SmtpTestServer(answers=answers) as server:
        fast = Clarion.from_settings(settings.model_copy(update={
            "email_transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": server.port, "smtp_security": "none",
            "retry_base_seconds": 0.01, "retry_cap_seconds": 0.05, "worker_batch_size": 200}))
        try:
            # when a worker with fast retries runs again and again until nothing is open
            for _ in range(40):
                asyncio.run(Worker(fast, worker_id="retrier").run(until_idle=True))
                if open_deliveries(app)[0] == 0:
                    break
                time.sleep(0.06)  # every retry is due within the 0.05 s cap
            asyncio.run(Worker(fast, worker_id="retrier").run(until_idle=True))  # completes the campaign
        finally:
            fast.close()
        taken = server.recipients()
    rows = {row.email: row for row in ledger(app)}
    # then every greylisted recipient got the message on the attempt after its last refusal
    greylisted = [a for a in addresses if a.split("+")[0] in GREYLISTED]
    assert {a: (rows[a].status, rows[a].attempts) for a in greylisted} == \
        {a: ("sent", GREYLISTED[a.split("+")[0]] + 1) for a in greylisted}
    # and every unknown user failed as a bad address after one attempt, and is suppressed as a hard bounce
    gone = [a for a in addresses if a.startswith("gone+")]
    assert {a: (rows[a].status, rows[a].reason, rows[a].attempts) for a in gone} == \
        {a: ("failed", "bad_address", 1) for a in gone}
    with app.store.read() as conn:
        assert {a: (app.consent.suppression(conn, "email", a) or {}).get("reason") for a in gone} == \
            dict.fromkeys(gone, "hard_bounce")
    # and everybody else got it once, at the first attempt
    assert sorted(taken) == sorted(a for a in addresses if not a.startswith("gone+"))
    assert all((rows[a].status, rows[a].attempts) == ("sent", 1) for a in addresses if a.startswith("reader+"))
    # and 5 % bounces did not pause the campaign (451s do not count): it completed
    state = progress(app, "blast")
    assert (state["status"], state["status_reason"]) == ("completed", None)
    assert {status: n for status, n in state["counts"].items() if n} == {"sent": 950, "failed": 50}


# -- 3. two workers, one PostgreSQL database ------------------------------------------------------

@pytest.mark.slow
@only("postgresql")
def test_two_workers_on_one_postgresql_database_never_send_a_delivery_twice(app, settings, tmp_path, processes):
    # given a 5,000-recipient broadcast on PostgreSQL
    audience = [f"reader{i}@example.com" for i in range(5_000)]
    broadcast(app, audience)
    record = tmp_path / "received.jsonl"
    with smtp_process(processes, record) as (port, server):
        # (the SMTP server is paused below: no client may give up on it meanwhile)
        env = worker_env(settings, port, worker_batch_size=100, smtp_timeout_seconds=600)
        # when two workers start at the same time, each leasing deliveries while the SMTP server is paused (so
        # neither can finish the broadcast before the other has begun), and both run until nothing is due
        server.send_signal(signal.SIGSTOP)
        try:
            first, second = (processes.worker(name, env, until_idle=True) for name in ("left", "right"))
            wait_until("both workers to hold leased deliveries", lambda: {
                name: ("exited" if process.poll() is not None else "no lease")
                for name, process in (("left", first), ("right", second)) if name not in lease_owners(app)})
        finally:
            server.send_signal(signal.SIGCONT)
        summaries = [processes.finish(first), processes.finish(second)]
    # then every recipient got the message exactly once
    messages = received(record)
    assert Counter(message["recipient"] for message in messages) == Counter(audience)
    # and both workers sent a share of it, as their summaries and the delivery log say
    sent = {summary["worker"]: summary["sent"] for summary in summaries}
    print(f"\n[postgresql] two workers sent {sent}")
    assert sent["left"] > 0 and sent["right"] > 0 and sum(sent.values()) == len(audience)
    with app.store.read() as conn:
        logged = dict(conn.execute(select(delivery_log.c.worker, func.count()).where(delivery_log.c.outcome == "sent")
                                   .group_by(delivery_log.c.worker)).all())
    assert logged == sent
    # and no delivery was ever leased twice: one attempt each
    assert Counter((row.status, row.attempts) for row in ledger(app)) == {("sent", 1): len(audience)}


# -- 4. quiet hours in every zone --------------------------------------------------------------------

ZONES = sorted(zoneinfo.available_timezones() - {"localtime"})  # "localtime" is this machine's, not IANA's
DEFAULT_QUIET_HOURS = QuietHours.parse("21:00-08:00")


@skip_unless("sqlite")
@hypothesis_settings(max_examples=30, deadline=None)
@given(zone=st.sampled_from(ZONES),
       instant=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2037, 12, 31), timezones=st.just(UTC)))
@example(zone="America/New_York", instant=datetime(2026, 3, 8, 6, 30, tzinfo=UTC))  # 01:30, then spring forward
@example(zone="Australia/Lord_Howe", instant=datetime(2026, 4, 4, 10, 0, tzinfo=UTC))  # half-hour fall back
@example(zone="Pacific/Apia", instant=datetime(2011, 12, 30, 8, 0, tzinfo=UTC))  # 22:00 before the skipped day
@example(zone="Asia/Tokyo", instant=datetime(2026, 11, 23, 12, 0, tzinfo=UTC))  # 21:00: quiet from this minute
@example(zone="Asia/Tokyo", instant=datetime(2026, 11, 22, 22, 59, 59, tzinfo=UTC))  # 07:59:59
@example(zone="Asia/Tokyo", instant=datetime(2026, 11, 22, 23, 0, tzinfo=UTC))  # 08:00: allowed again
def test_nothing_is_sent_in_quiet_hours_in_any_zone_at_any_instant(sqlite_template, tmp_path_factory, zone, instant):
    # given a contact in a random zone, the default quiet hours 21:00-08:00, and a clock at a random instant
    path = tmp_path_factory.mktemp("quiet") / "clarion.db"
    shutil.copyfile(sqlite_template, path)
    app = Clarion.from_settings(Settings(database_url=f"sqlite:///{path}", hash_salt="test-salt", _env_file=None))
    try:
        contact = add_contact(app, "night@example.com", timezone=zone)
        clock = Clock(instant)
        make_campaign(app, clock=clock)
        channel = ScriptedChannel()
        # when the worker runs now, and again at the time it deferred the message to, if it did
        run(worker(app, channel, clock))
        (row,) = ledger(app)
        if row.status == "deferred":
            assert (row.reason, row.due_at > instant) == ("quiet_hours", True)
            clock.now = row.due_at
            run(worker(app, channel, clock))
        # then the message went exactly once, at an instant outside quiet hours in the contact's zone
        (row,) = ledger(app)
        assert (row.contact_id, row.status, len(channel.messages)) == (contact, "sent", 1)
        local = row.sent_at.astimezone(zoneinfo.ZoneInfo(zone))
        assert not DEFAULT_QUIET_HOURS.contains(row.sent_at, zoneinfo.ZoneInfo(zone)), f"sent at {local} in {zone}"
        # and it went as soon as allowed: at once when the clock was outside quiet hours
        in_quiet = DEFAULT_QUIET_HOURS.contains(instant, zoneinfo.ZoneInfo(zone))
        expected = DEFAULT_QUIET_HOURS.next_allowed(instant, zoneinfo.ZoneInfo(zone)) if in_quiet else instant
        assert row.sent_at == expected
    finally:
        app.close()


# -- 5. hostile templates -------------------------------------------------------------------------

HOSTILE = [
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__.os.environ }}",
    "{{ range(10**9)|list }}",
    "{{ '%s'|format(contact.__class__) }}",
    '{{ "{0.__class__}".format(contact) }}',
    "{{ lipsum.__globals__ }}",
    "{% for i in range(100000000) %}x{% endfor %}",
    "{{ self.__init__.__globals__ }}",
    "{{ config }}",
    "{{ request }}",
]


UNDEFINED_NAMES = {"{{ config }}", "{{ request }}"}  # not Clarion's names: they render empty, like a typo would


def start_with_stored_template(app: Clarion, document: dict[str, Any]) -> None:
    """A running broadcast whose template row was written straight into the store, past the validator (by an
    older version, an import, a hand-edited row): then the sandbox alone stands between the template and the
    process's secrets."""
    with app.store.write() as conn:
        now = datetime.now(UTC)
        conn.execute(insert(templates).values(name="tpl-hostile", document=document, created_at=now, updated_at=now))
        SegmentService(app.settings).create(conn, "seg-hostile", "email exists")
        service = CampaignService(app.settings)
        service.create(conn, {"name": "hostile", "template": "tpl-hostile", "segment": "seg-hostile"})
        service.send(conn, "hostile")


@only("sqlite")
@pytest.mark.parametrize("part", ["subject", "html"])
@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_template_is_refused_or_fails_its_message_and_never_leaks_the_environment(app, monkeypatch,
                                                                                          hostile, part):
    # given a secret in the environment, and a template with a hostile expression in the email's subject or body
    token = f"planted-{secrets.token_hex(16)}"
    monkeypatch.setenv("CLARION_PLANTED_SECRET", token)
    no_quiet_hours(app)
    add_contact(app, "target@example.com")
    email = {"subject": "Our offer", "html": "<p>Hello {{ contact.first_name }}</p>"}
    email[part] = f"Our offer {hostile}" if part == "subject" else f"<p>{hostile}</p>"
    document = {"default": {"email": email}}
    # when it is saved as a template
    try:
        with app.store.write() as conn:
            TemplateService().save(conn, "tpl-hostile", document)
        refused = None
    except InvalidTemplate as problem:
        refused = problem
    # and a campaign sends it through a channel that records every byte: the saved template, or, when saving
    # was refused, the same template written straight into the store
    if refused is None:
        make_campaign(app, "hostile", template_document=document)
    else:
        start_with_stored_template(app, document)
    channel = ScriptedChannel()
    run(worker(app, channel))
    # then a template that could be saved fails its message with render_error, and one that could not be saved
    # fails the same way (or, for a name Clarion does not have, renders it empty)
    (row,) = ledger(app)
    if refused is None or hostile not in UNDEFINED_NAMES:
        assert (row.status, row.reason, channel.messages) == ("failed", "render_error", []), row.detail
    else:
        assert (row.status, len(channel.messages)) == ("sent", 1)
    # and the secret is in no message byte, no ledger or log detail, and not in the refusal
    assert not any(token.encode() in message.data for message in channel.messages)
    with app.store.read() as conn:
        details = [*conn.execute(select(deliveries.c.detail)).scalars(),
                   *conn.execute(select(delivery_log.c.detail)).scalars()]
    assert not any(token in detail for detail in details if detail)
    assert refused is None or token not in str(refused)

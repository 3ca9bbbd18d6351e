"""The SMTP channel against a real SMTP server on 127.0.0.1: pooling, reconnects, TLS, AUTH, classification.

The server is aiosmtpd (``tests/smtp_server.py``), answering by recipient: "soft" 451 4.3.0, "gone"
550 5.1.1, "blocked" 550 5.7.1, "full" 552 5.2.2 ... Nothing on the network is mocked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import socket
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme

from clarion.channels.base import DeliveryResult, OutboundEmail, Outcome
from clarion.channels.file import ConsoleChannel, FileChannel
from clarion.channels.smtp import SmtpChannel, SmtpSettings, classify
from clarion.messages.email_message import EmailSpec, build_email
from smtp_server import SmtpTestServer

ROOT = Path(__file__).resolve().parents[2]
SENDER = "bounces@shop.example"


def outbound(recipient: str, n: int = 0) -> OutboundEmail:
    message_id = f"m{n}.{recipient.split('@')[0]}@shop.example"
    data = build_email(EmailSpec(
        from_name="Shop", from_address="news@shop.example", to_address=recipient, subject=f"Message {n}",
        text=f"Hello {n}\n.\nFrom the shop\n", html=f"<p>Hello {n}</p>", message_id=message_id,
        date=datetime(2026, 3, 1, 15, 0, tzinfo=UTC), list_unsubscribe_url=f"https://u.shop.example/{n}"))
    return OutboundEmail(sender=SENDER, recipient=recipient, data=data, message_id=message_id,
                         idempotency_key=f"k{n}")


def settings(server: SmtpTestServer, **overrides) -> SmtpSettings:
    values = {"host": "127.0.0.1", "port": server.port, "security": "none", "timeout": 5.0, "pool_size": 2,
              "local_hostname": "clarion.test"} | overrides
    return SmtpSettings(**values)


def send_all(channel: SmtpChannel, messages: list[OutboundEmail], concurrently: bool = False) -> list[DeliveryResult]:
    async def run() -> list[DeliveryResult]:
        try:
            if concurrently:
                return list(await asyncio.gather(*(channel.send(m) for m in messages)))
            return [await channel.send(m) for m in messages]
        finally:
            await channel.aclose()
    return asyncio.run(run())


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., SmtpTestServer]]:
    """Starts test SMTP servers with the given options; stops them all afterwards."""
    started: list[SmtpTestServer] = []

    def start(**options) -> SmtpTestServer:
        server = SmtpTestServer(**options).start()
        started.append(server)
        return server
    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> tuple[ssl.SSLContext, str]:
    """A server TLS context for 127.0.0.1 signed by a throwaway CA, and that CA's file for the client."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return context, str(ca_file)


def test_a_message_is_delivered_byte_exact_and_the_queue_id_is_the_provider_id(smtp_server):
    # given a server and a channel
    server = smtp_server()
    message = outbound("ana@example.org")

    # when one message is sent
    [result] = send_all(SmtpChannel(settings(server)), [message])

    # then it is SENT with the server's queue id, and the server got exactly the bytes (dot lines included)
    assert result.outcome is Outcome.SENT
    [received] = server.messages
    assert result.provider_id == received.queue_id
    assert result.code == "250 2.0.0"
    assert (received.sender, received.recipient, received.message_id) == (SENDER, "ana@example.org",
                                                                           message.message_id)
    assert received.data == message.data


@pytest.mark.parametrize("recipient, outcome, code", [
    ("soft@example.org", Outcome.RETRY, "451 4.3.0"),
    ("gone@example.org", Outcome.BAD_ADDRESS, "550 5.1.1"),
    ("blocked@example.org", Outcome.FAILED, "550 5.7.1"),
    ("full@example.org", Outcome.RETRY, "552 5.2.2"),
    ("unknown@example.org", Outcome.BAD_ADDRESS, "550"),
    ("spamtrap@example.org", Outcome.FAILED, "550"),
    ("spam@example.org", Outcome.FAILED, "554 5.7.1"),  # refused at the end of DATA
    ("later@example.org", Outcome.RETRY, "451 4.7.1"),  # deferred at the end of DATA
])
def test_each_refusal_is_classified_and_the_connection_carries_on(smtp_server, recipient, outcome, code):
    # given one connection at most
    server = smtp_server()
    channel = SmtpChannel(settings(server, pool_size=1))

    # when a refused message is followed by a good one
    refused, accepted = send_all(channel, [outbound(recipient, 1), outbound("ok@example.org", 2)])

    # then the refusal is classified, and the next message went on the same connection (after RSET)
    assert (refused.outcome, refused.code) == (outcome, code)
    assert refused.detail
    assert accepted.outcome is Outcome.SENT
    assert server.recipients() == ["ok@example.org"]
    assert server.connections == 1


@pytest.mark.parametrize("sender, recipient, outcome", [
    (SENDER, "josé@example.org", Outcome.FAILED),  # needs SMTPUTF8: the address may well exist
    (SENDER, "ana@example.org> NOTIFY=NEVER", Outcome.BAD_ADDRESS),  # would smuggle an ESMTP parameter
    ("bóunces@shop.example", "ana@example.org", Outcome.CONFIG_ERROR),  # our own envelope sender
])
def test_addresses_that_cannot_go_on_a_command_line_are_classified(smtp_server, sender, recipient, outcome):
    # given one connection, and a message whose envelope SMTP cannot carry
    server = smtp_server()
    channel = SmtpChannel(settings(server, pool_size=1))
    bad = dataclasses.replace(outbound("ana@example.org", 1), sender=sender, recipient=recipient)

    # when it is sent before a good one
    refused, accepted = send_all(channel, [bad, outbound("ok@example.org", 2)])

    # then nothing unsafe reached the server, and the connection carried the next message
    assert refused.outcome is outcome
    assert accepted.sent
    assert server.recipients() == ["ok@example.org"]
    assert server.connections == 1


def test_connections_are_reused_across_many_concurrent_messages(smtp_server):
    # given a pool of 3 connections
    server = smtp_server()
    channel = SmtpChannel(settings(server, pool_size=3))
    messages = [outbound(f"c{n}@example.org", n) for n in range(40)]

    # when 40 messages are sent at once
    results = send_all(channel, messages, concurrently=True)

    # then all are delivered once each, over no more than 3 connections
    assert all(result.outcome is Outcome.SENT for result in results)
    assert Counter(m.message_id for m in server.messages) == Counter(m.message_id for m in messages)
    assert server.connections <= 3
    assert channel.connections_opened == server.connections


def test_a_connection_is_retired_after_its_message_allowance(smtp_server):
    # given connections allowed 5 messages each
    server = smtp_server()
    channel = SmtpChannel(settings(server, pool_size=1, max_messages_per_connection=5))

    # when 12 messages are sent one after another
    results = send_all(channel, [outbound(f"r{n}@example.org", n) for n in range(12)])

    # then three connections carried them (5 + 5 + 2)
    assert all(result.sent for result in results)
    assert server.connections == 3


@pytest.mark.parametrize("close_mode", ["421", "silent"])
def test_a_connection_the_server_ends_is_replaced_without_failing_a_delivery(smtp_server, close_mode):
    # given a server that ends each connection after 2 messages: with a 421 to the next MAIL, or by hanging up
    server = smtp_server(close_after=2, close_mode=close_mode)
    channel = SmtpChannel(settings(server, pool_size=1))
    messages = [outbound(f"d{n}@example.org", n) for n in range(7)]

    # when 7 messages are sent one after another
    results = send_all(channel, messages)

    # then every one is SENT and received exactly once, over a new connection every 2 messages
    assert [result.outcome for result in results] == [Outcome.SENT] * 7
    assert [m.message_id for m in server.messages] == [m.message_id for m in messages]
    assert server.connections == 4


def test_connections_dropped_while_idle_are_replaced(smtp_server):
    # given a channel with an idle pooled connection
    server = smtp_server()
    channel = SmtpChannel(settings(server, pool_size=1))

    async def run() -> list[DeliveryResult]:
        first = await channel.send(outbound("a@example.org", 1))
        server.drop_connections()  # the server restarts, or times the idle session out
        second = await channel.send(outbound("b@example.org", 2))
        await channel.aclose()
        return [first, second]

    # when a message is sent after the server dropped it
    results = asyncio.run(run())

    # then it goes out on a new connection
    assert [result.outcome for result in results] == [Outcome.SENT, Outcome.SENT]
    assert server.recipients() == ["a@example.org", "b@example.org"]
    assert server.connections == 2


def test_aclose_says_quit_on_every_connection(smtp_server):
    # given a channel that has opened two connections
    server = smtp_server()
    channel = SmtpChannel(settings(server, pool_size=2))
    send_all(channel, [outbound(f"q{n}@example.org", n) for n in range(4)], concurrently=True)

    # when it has been closed (send_all closes it), then the server sees no connection left
    deadline = time.monotonic() + 30  # seconds: milliseconds unloaded; generous for a loaded CI machine
    while server.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.open_connections == 0
    with pytest.raises(RuntimeError):
        asyncio.run(channel.send(outbound("late@example.org")))


def test_starttls_with_auth_delivers(smtp_server, certificates):
    # given a server requiring STARTTLS and AUTH, and a client trusting its CA
    context, ca_file = certificates
    server = smtp_server(tls="starttls", tls_context=context, users={"clarion": "s3cret"})
    channel = SmtpChannel(settings(server, security="starttls", ca_file=ca_file, username="clarion",
                                   password="s3cret"))

    # when a message is sent, then it is delivered
    assert [r.outcome for r in send_all(channel, [outbound("tls@example.org")])] == [Outcome.SENT]
    assert server.recipients() == ["tls@example.org"]


@pytest.mark.parametrize("credentials", [{"username": "clarion", "password": "wrong"}, {}],
                         ids=["wrong password", "no credentials"])
def test_refused_or_missing_credentials_are_a_configuration_error(smtp_server, certificates, credentials):
    # given a server requiring AUTH, and a client with a wrong password or none
    context, ca_file = certificates
    server = smtp_server(tls="starttls", tls_context=context, users={"clarion": "s3cret"})
    channel = SmtpChannel(settings(server, security="starttls", ca_file=ca_file, **credentials))

    # when a message is sent
    [result] = send_all(channel, [outbound("ana@example.org")])

    # then the campaign should pause: our settings are wrong, not the contact (535 at AUTH, 530 at MAIL)
    assert result.outcome is Outcome.CONFIG_ERROR
    assert result.code in ("535", "530 5.7.0")
    assert server.messages == []


def test_implicit_tls_delivers_when_the_certificate_is_trusted(smtp_server, certificates):
    # given an implicit-TLS server (port 465 style)
    context, ca_file = certificates
    server = smtp_server(tls="implicit", tls_context=context)

    # when sent with the CA, or with verification turned off, then delivered
    trusted = send_all(SmtpChannel(settings(server, security="tls", ca_file=ca_file)), [outbound("a@example.org")])
    unverified = send_all(SmtpChannel(settings(server, security="tls", tls_verify=False)), [outbound("b@example.org")])
    assert [r.outcome for r in trusted + unverified] == [Outcome.SENT, Outcome.SENT]


@pytest.mark.parametrize("tls, security", [("implicit", "tls"), ("starttls", "starttls")])
def test_an_untrusted_certificate_is_a_configuration_error(smtp_server, certificates, tls, security):
    # given a server whose certificate the client cannot verify (its CA is not given)
    context, _ = certificates
    server = smtp_server(tls=tls, tls_context=context)

    # when a message is sent, then the settings are at fault, and nothing was delivered
    [result] = send_all(SmtpChannel(settings(server, security=security)), [outbound("a@example.org")])
    assert result.outcome is Outcome.CONFIG_ERROR
    assert "TLS" in result.detail
    assert server.messages == []


def test_starttls_demanded_of_a_server_without_it_is_a_configuration_error(smtp_server):
    # given a plain server, and a client that must not send in clear
    server = smtp_server()

    # when sent, then refused to go on: no silent downgrade
    [result] = send_all(SmtpChannel(settings(server, security="starttls")), [outbound("a@example.org")])
    assert result.outcome is Outcome.CONFIG_ERROR
    assert server.messages == []


def test_a_refused_connection_is_retried_later():
    # given a port nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = SmtpChannel(SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=2,
                                       local_hostname="clarion.test"))

    # when a message is sent, then the server may come back: RETRY
    [result] = send_all(channel, [outbound("a@example.org")])
    assert result.outcome is Outcome.RETRY
    assert "refused" in result.detail.lower() or "connect" in result.detail.lower()


def test_a_server_too_slow_to_answer_data_is_a_retry(smtp_server):
    # given a server that takes 2 s to answer DATA, and a 0.5 s timeout
    server = smtp_server(data_delay=2.0)

    # when a message is sent, then it is retried later (the server may have queued it: not resent now)
    [result] = send_all(SmtpChannel(settings(server, timeout=0.5)), [outbound("slow@example.org")])
    assert result.outcome is Outcome.RETRY
    assert "DATA" in result.detail


@pytest.mark.parametrize("code, text, phase, outcome", [
    (250, "2.0.0 Ok: queued as 4ZxK2d3Qm7z9", "DATA", Outcome.SENT),
    (421, "4.7.0 Too many connections", "MAIL", Outcome.RETRY),
    (450, "4.2.1 Mailbox busy", "RCPT", Outcome.RETRY),
    (452, "4.5.3 Too many recipients", "RCPT", Outcome.RETRY),
    (550, "5.1.1 The email account that you tried to reach does not exist", "RCPT", Outcome.BAD_ADDRESS),
    (550, "5.1.10 Null MX", "RCPT", Outcome.BAD_ADDRESS),
    (550, "5.2.1 The email account that you tried to reach is disabled", "RCPT", Outcome.BAD_ADDRESS),
    (552, "5.2.2 Mailbox full", "DATA", Outcome.RETRY),
    (452, "4.2.2 Over quota", "RCPT", Outcome.RETRY),
    (550, "5.7.1 Our system has detected an unusual rate of unsolicited mail", "DATA", Outcome.FAILED),
    (554, "5.7.26 Unauthenticated email is not accepted (DMARC)", "DATA", Outcome.FAILED),
    (553, "5.1.8 Sender address rejected: Domain not found", "RCPT", Outcome.CONFIG_ERROR),
    (550, "User unknown", "RCPT", Outcome.BAD_ADDRESS),
    (551, "User not local; please try <forward@example.org>", "RCPT", Outcome.BAD_ADDRESS),
    (553, "Mailbox name not allowed", "RCPT", Outcome.BAD_ADDRESS),
    (550, "Rejected: IP listed on an RBL", "RCPT", Outcome.FAILED),
    (552, "Requested mail action aborted: exceeded storage allocation", "RCPT", Outcome.RETRY),
    (554, "Transaction failed", "DATA", Outcome.FAILED),
    (552, "5.3.4 Message size exceeds fixed limit", "MAIL", Outcome.FAILED),
    (553, "5.7.1 Sender address rejected: not owned by user", "MAIL", Outcome.CONFIG_ERROR),
    (530, "5.7.0 Authentication required", "MAIL", Outcome.CONFIG_ERROR),
    (550, "4.1.1 mismatched class, the basic code wins", "RCPT", Outcome.BAD_ADDRESS),
    (554, "5.6.0 Message content rejected", "DATA", Outcome.FAILED),
])
def test_the_classification_table(code, text, phase, outcome):
    assert classify(code, text, phase).outcome is outcome


def test_the_record_of_a_server_in_its_own_process_lists_every_accepted_message(tmp_path):
    # given the test server run as a program, recording to a file
    record = tmp_path / "received.jsonl"
    command = [sys.executable, "-m", "tests.smtp_server", "--port", "0", "--record", str(record), "--fsync"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            port = json.loads(process.stdout.readline())["port"]
            channel = SmtpChannel(SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=5,
                                               local_hostname="clarion.test"))
            messages = [outbound(f"p{n}@example.org", n) for n in range(3)] + [outbound("gone@example.org", 3)]

            # when messages are sent to it, one of them refused
            results = send_all(channel, messages)
        finally:
            process.terminate()
            process.wait(10)

    # then each accepted one is recorded with its Message-ID, recipient and the queue id the client got
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [(line["message_id"], line["recipient"], line["queue_id"]) for line in lines] == [
        (m.message_id, m.recipient, r.provider_id) for m, r in zip(messages[:3], results[:3], strict=True)]
    assert results[3].outcome is Outcome.BAD_ADDRESS


# The development channels ----------------------------------------------------------------------------


def test_the_file_channel_writes_one_eml_per_message_id_atomically_and_idempotently(tmp_path):
    # given a file channel, and a message sent twice (a retried delivery) plus another
    channel = FileChannel(tmp_path / "outbox")
    first, other = outbound("a@example.org", 1), outbound("b@example.org", 2)

    async def run() -> list[DeliveryResult]:
        return [await channel.send(first), await channel.send(first), await channel.send(other)]

    results = asyncio.run(run())

    # then there is one complete file per Message-ID, named by it, and no temporary file left
    assert all(result.sent for result in results)
    assert sorted(p.name for p in (tmp_path / "outbox").iterdir()) == sorted(
        [f"{first.message_id}.eml", f"{other.message_id}.eml"])
    assert (tmp_path / "outbox" / results[0].provider_id).read_bytes() == first.data


def test_a_message_id_with_a_slash_cannot_escape_the_directory(tmp_path):
    channel = FileChannel(tmp_path)
    message = outbound("a@example.org")
    tricky = OutboundEmail(sender=SENDER, recipient="a@example.org", data=message.data,
                           message_id="../../etc/x@shop.example", idempotency_key="k")

    result = asyncio.run(channel.send(tricky))

    assert result.sent
    assert [p.parent for p in tmp_path.iterdir()] == [tmp_path]


def test_the_console_channel_prints_a_line_per_message():
    stream = io.StringIO()
    result = asyncio.run(ConsoleChannel(stream).send(outbound("ana@example.org", 5)))

    assert result.sent and result.provider_id == "m5.ana@shop.example"
    assert stream.getvalue().startswith("email to=ana@example.org subject='Message 5' id=m5.ana@shop.example")

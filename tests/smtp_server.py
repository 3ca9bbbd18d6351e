"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, answering each recipient from a table.

In process (a thread with its own event loop), as the SMTP channel tests use it::

    with SmtpTestServer(users={"clarion": "secret"}) as server:
        ... send to 127.0.0.1:server.port ...
        server.messages, server.connections

In its own process, as the reliability tests use it (prints ``{"port": P}`` once listening, and
appends one JSON line per accepted message and recipient to FILE before answering 250, so a record
exists for everything the client was told was queued)::

    python -m tests.smtp_server --port 0 --record FILE [--fsync] [--answers JSON] [--close-after N]

Answers are looked up by recipient address, then by its local part without any "+tag" ("gone+7@x"
answers as "gone"); an answer says its reply and the command it replies to ("rcpt" or "data"), and
optionally ``times``: it is given to each recipient address's first N attempts only, then the server
accepts (``{"soft": {"reply": "451 4.3.0 Later", "times": 1}}``: greylisting, then 250).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import signal
import ssl
import sys
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

TlsMode = Literal["none", "starttls", "implicit"]
HOSTNAME = "smtp.test"  # the server's EHLO name; never socket.getfqdn(), which may wait on DNS


@dataclass(frozen=True)
class Answer:
    reply: str  # the full reply line: "451 4.3.0 Try again later"
    at: Literal["rcpt", "data"] = "rcpt"
    times: int | None = None  # None: always; N: only each recipient address's first N attempts, then accept


DEFAULT_ANSWERS: Mapping[str, Answer] = {
    "soft": Answer("451 4.3.0 Mailbox temporarily unavailable"),
    "gone": Answer("550 5.1.1 Recipient address rejected: User unknown in virtual mailbox table"),
    "blocked": Answer("550 5.7.1 Recipient refused by policy"),
    "full": Answer("552 5.2.2 Mailbox full"),
    "unknown": Answer("550 No such user here"),  # no enhanced code: the basic code decides
    "spamtrap": Answer("550 Rejected: message looks like spam"),  # no enhanced code, a policy
    "spam": Answer("554 5.7.1 Message content rejected as spam", at="data"),
    "later": Answer("451 4.7.1 Greylisted, please try again later", at="data"),
}


@dataclass(frozen=True)
class Received:
    sender: str
    recipient: str
    message_id: str | None
    queue_id: str
    connection: int
    data: bytes


class Recorder:
    """Appends one JSON line per received message and recipient; flushed, and fsynced if asked."""

    def __init__(self, path: Path, fsync: bool = False) -> None:
        self._file = open(path, "a", encoding="utf-8")
        self._fsync = fsync
        self._lock = threading.Lock()

    def write(self, received: Received) -> None:
        line = json.dumps({"message_id": received.message_id, "recipient": received.recipient,
                           "sender": received.sender, "queue_id": received.queue_id,
                           "connection": received.connection, "size": len(received.data), "time": time.time()})
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
            if self._fsync:
                os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


class _Protocol(SMTP):
    """aiosmtpd's session, numbered, counting its messages, and able to hang up after a reply."""

    def __init__(self, owner: SmtpTestServer, number: int, **kwargs: Any) -> None:
        super().__init__(owner, **kwargs)
        self.owner = owner
        self.number = number
        self.completed = 0  # messages taken on this connection
        self.hang_up = False  # close the connection right after the next reply

    async def push(self, status: str | bytes) -> None:
        await super().push(status)
        if self.hang_up and self.transport is not None:
            self.transport.close()

    def connection_lost(self, error: Exception | None) -> None:
        self.owner._live.discard(self)
        super().connection_lost(error)


class SmtpTestServer:
    """The aiosmtpd handler and its server. ``close_after``: the connection ends after that many
    messages, either politely ("421" to the next MAIL) or abruptly ("silent": closed after the 250).
    ``data_delay``: seconds before answering DATA (a slow server, for client timeouts)."""

    def __init__(self, *, answers: Mapping[str, Answer] = DEFAULT_ANSWERS, host: str = "127.0.0.1", port: int = 0,
                 tls: TlsMode = "none", tls_context: ssl.SSLContext | None = None,
                 users: Mapping[str, str] | None = None, close_after: int | None = None,
                 close_mode: Literal["421", "silent"] = "421", record: Path | None = None, fsync: bool = False,
                 data_delay: float = 0.0, keep_messages: bool = True) -> None:
        if tls != "none" and tls_context is None:
            raise ValueError("a TLS mode needs a server tls_context")
        self.answers, self.host, self.port = dict(answers), host, port
        self.tls, self.tls_context, self.users = tls, tls_context, dict(users or {})
        self.close_after, self.close_mode, self.data_delay = close_after, close_mode, data_delay
        self.recorder = Recorder(record, fsync) if record else None
        self.keep_messages = keep_messages  # a long run in its own process only records, in the file
        self.messages: list[Received] = []
        self.connections = 0
        self._live: set[_Protocol] = set()
        self._queue_ids = itertools.count(1)
        self._answered: dict[str, int] = {}  # per recipient address: how often an answer with `times` was given
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # Serving -----------------------------------------------------------------------------------

    async def serve(self) -> asyncio.AbstractServer:
        """Listens in the running loop; ``self.port`` is the bound port afterwards."""
        self._loop = asyncio.get_running_loop()
        server = await self._loop.create_server(self._protocol, self.host, self.port,
                                                ssl=self.tls_context if self.tls == "implicit" else None)
        self.port = server.sockets[0].getsockname()[1]
        return server

    def start(self) -> SmtpTestServer:
        """Serves from a thread of its own until :meth:`stop`."""
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="smtp-test-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise TimeoutError("the test SMTP server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None
        if self.recorder:
            self.recorder.close()

    def __enter__(self) -> SmtpTestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def drop_connections(self) -> None:
        """Closes every open connection now, as a restarting or impatient server would."""
        done = threading.Event()

        def drop() -> None:
            for protocol in list(self._live):
                if protocol.transport is not None:
                    protocol.transport.close()
            # Queued after the close callbacks those calls scheduled: the sockets are closed once it runs.
            asyncio.get_running_loop().call_soon(done.set)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(drop)
        if not done.wait(30):
            raise TimeoutError("the test SMTP server did not drop its connections within 30 s")

    @property
    def open_connections(self) -> int:
        return len(self._live)

    def recipients(self) -> list[str]:
        with self._lock:
            return [message.recipient for message in self.messages]

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(self.serve())
        loop.call_soon(ready.set)
        loop.run_forever()
        server.close()
        for protocol in list(self._live):
            if protocol.transport is not None:
                protocol.transport.abort()
        loop.run_until_complete(server.wait_closed())
        loop.close()

    def _protocol(self) -> _Protocol:
        self.connections += 1
        options: dict[str, Any] = {"hostname": HOSTNAME, "loop": self._loop, "data_size_limit": 10 * 2**20}
        if self.tls == "starttls":
            options |= {"tls_context": self.tls_context, "require_starttls": True}
        if self.users:
            options |= {"authenticator": self._authenticate, "auth_required": True,
                        "auth_require_tls": self.tls != "none"}
        with warnings.catch_warnings():  # AUTH without TLS is what some tests want; no warning for it
            warnings.simplefilter("ignore")
            protocol = _Protocol(self, self.connections, **options)
        self._live.add(protocol)
        return protocol

    # aiosmtpd hooks (named by aiosmtpd) -------------------------------------------------------------

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and \
            self.users.get(auth_data.login.decode()) == auth_data.password.decode()
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    async def handle_MAIL(self, server: _Protocol, session: Session, envelope: Envelope, address: str,  # noqa: N802
                          mail_options: list[str]) -> str:
        if self.close_after is not None and self.close_mode == "421" and server.completed >= self.close_after:
            server.hang_up = True
            return "421 4.7.0 smtp.test closing: too many messages on this connection"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: _Protocol, session: Session, envelope: Envelope, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        answer = self._answer(address, "rcpt")
        if answer is not None:
            return answer.reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: _Protocol, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        for recipient in envelope.rcpt_tos:
            answer = self._answer(recipient, "data")
            if answer is not None:
                return answer.reply
        queue_id = f"{next(self._queue_ids):010X}"
        data = envelope.original_content or b""
        for recipient in envelope.rcpt_tos:
            received = Received(envelope.mail_from or "", recipient, message_id_of(data), queue_id, server.number, data)
            if self.recorder:
                self.recorder.write(received)  # before the 250: "queued" implies "recorded"
            if self.keep_messages:
                with self._lock:
                    self.messages.append(received)
        server.completed += 1
        if self.close_after is not None and self.close_mode == "silent" and server.completed >= self.close_after:
            server.hang_up = True
        return f"250 2.0.0 Ok: queued as {queue_id}"

    def _answer(self, address: str, at: str) -> Answer | None:
        """The answer this attempt gets at RCPT or DATA; None: accept. Counts the attempts ``times`` limits."""
        answer = self.answer_for(address)
        if answer is None or answer.at != at:
            return None
        if answer.times is not None:
            with self._lock:
                given = self._answered.get(address.lower(), 0)
                if given >= answer.times:
                    return None
                self._answered[address.lower()] = given + 1
        return answer

    def answer_for(self, address: str) -> Answer | None:
        local = address.rsplit("@", 1)[0].lower()
        return self.answers.get(address.lower()) or self.answers.get(local) or \
            self.answers.get(local.split("+", 1)[0])


_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*<([^>\r\n]*)>", re.IGNORECASE | re.MULTILINE)


def message_id_of(data: bytes) -> str | None:
    head = data.split(b"\r\n\r\n", 1)[0]
    found = _MESSAGE_ID.search(head)
    return found.group(1).decode("ascii", "replace") if found else None


def parse_answers(text: str) -> dict[str, Answer]:
    """``{"soft": "451 4.3.0 Later", "spam": {"reply": "554 5.7.1 No", "at": "data"}}``, or ``@file.json``."""
    raw = json.loads(Path(text[1:]).read_text() if text.startswith("@") else text)
    return {key: Answer(value) if isinstance(value, str) else Answer(**value) for key, value in raw.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed as JSON on stdout)")
    parser.add_argument("--record", type=Path, help="append one JSON line per accepted message and recipient")
    parser.add_argument("--fsync", action="store_true", help="fsync the record after every line")
    parser.add_argument("--answers", type=parse_answers, help="JSON answers table (replaces the default one)")
    parser.add_argument("--users", type=json.loads, help='JSON {"user": "password"}: require AUTH')
    parser.add_argument("--close-after", type=int, help="end each connection after this many messages")
    parser.add_argument("--close-mode", choices=["421", "silent"], default="421")
    parser.add_argument("--data-delay", type=float, default=0.0, help="seconds to wait before answering DATA")
    args = parser.parse_args(argv)
    server = SmtpTestServer(answers=DEFAULT_ANSWERS if args.answers is None else args.answers, host=args.host,
                            port=args.port, users=args.users, close_after=args.close_after,
                            close_mode=args.close_mode, record=args.record, fsync=args.fsync,
                            data_delay=args.data_delay, keep_messages=False)
    asyncio.run(_serve_until_signalled(server))


async def _serve_until_signalled(server: SmtpTestServer) -> None:
    listening = await server.serve()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    print(json.dumps({"port": server.port}), flush=True)
    await stop.wait()
    listening.close()
    if server.recorder:
        server.recorder.close()
    sys.stdout.flush()


if __name__ == "__main__":
    main()

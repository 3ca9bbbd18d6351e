"""Email over SMTP (aiosmtplib): a pool of authenticated connections and a classification of every reply.

    channel = SmtpChannel(SmtpSettings(host="smtp.relay.example", port=587, security="starttls",
                                       username="clarion", password=secret, pool_size=8))
    result = await channel.send(OutboundEmail(...))     # the pipeline runs up to pool_size at once
    await channel.aclose()                              # QUIT on every connection

Connections: at most ``pool_size`` live at once, each carrying up to ``max_messages_per_connection``
messages one after the other (a refused transaction is reset with RSET), then closed with QUIT. A
connection the server dropped while idle - it answered 421 or the socket closed before the message
was handed over - is not a failed delivery: the message is sent again, once, on a fresh connection.
A connection lost *after* the message data was written is different: the server may have queued it,
so the outcome is RETRY and the pipeline decides (a retry may deliver it twice).

Classification (RFC 5321 basic codes, RFC 3463 enhanced codes first when the reply has one):

==============  ==============================================  ============
Phase           Reply                                           Outcome
==============  ==============================================  ============
any             2xx                                             SENT
any             4xx (421, 450, 451, 452, 4.x.x ...)             RETRY
RCPT or DATA    5.2.2 mailbox full (or 552 without enhanced)    RETRY
RCPT or DATA    5.1.x bad mailbox or domain, 5.2.1 disabled     BAD_ADDRESS
RCPT or DATA    5.1.7 / 5.1.8: the *sender* address is bad      CONFIG_ERROR
RCPT            550/551/553 without enhanced code               BAD_ADDRESS
                  ... whose text names a policy (spam, block,   FAILED
                  SPF/DKIM/DMARC, reputation ...)
RCPT or DATA    5.7.x policy/security: the recipient is fine    FAILED
MAIL            5.3.4 / 552: the message is too big             FAILED
MAIL            other 5xx: our sender or our right to send      CONFIG_ERROR
any             other 5xx                                       FAILED
connect         refused, unreachable, timeout, any 4xx          RETRY
connect         TLS failure, 5xx greeting/EHLO/STARTTLS         CONFIG_ERROR
connect         AUTH refused: 535, 534, 530 (5xx)               CONFIG_ERROR
==============  ==============================================  ============

SENT carries the server's queue id as ``provider_id`` when the 250 reply names one ("queued as X",
"id=X"), else the reply text.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any, Literal

import aiosmtplib
from aiosmtplib import (
    SMTPException,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from .base import DeliveryResult, OutboundEmail, Outcome
from .http import one_line as _line

log = logging.getLogger(__name__)

Security = Literal["none", "starttls", "tls"]
QUIT_TIMEOUT = 5.0  # seconds: a polite QUIT is not worth waiting the full command timeout for

_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?!\S)")
_MAILBOX = re.compile(r"[^\s<>()\[\]\\,;:\"@]+@[^\s<>()\[\]\\,;:\"@]+")
_QUEUE_ID = re.compile(r"queued as\s+([^\s;,]+)|\bid=([^\s;,]+)", re.IGNORECASE)
_POLICY_WORDS = re.compile(r"spam|polic|block|blacklist|denylist|reputation|\bspf\b|\bdkim\b|\bdmarc\b|\brbl\b",
                           re.IGNORECASE)


@dataclass(frozen=True)
class SmtpSettings:
    """``timeout``: seconds per connect or command (the DATA reply included). ``security``: "tls" is
    implicit TLS (port 465), "starttls" upgrades a plain connection and refuses to go on without TLS."""

    host: str
    port: int = 587
    security: Security = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 60.0
    pool_size: int = 4
    max_messages_per_connection: int = 100
    tls_verify: bool = True
    ca_file: str | None = None
    local_hostname: str | None = None  # the EHLO name; the machine's FQDN (looked up once) when None

    def __post_init__(self) -> None:
        if self.security not in ("none", "starttls", "tls"):
            raise ValueError(f"SMTP security must be none, starttls or tls, not {self.security!r}")
        if self.pool_size < 1 or self.max_messages_per_connection < 1 or self.timeout <= 0:
            raise ValueError("SMTP pool_size, max_messages_per_connection and timeout must be positive")
        if (self.username is None) != (self.password is None):
            raise ValueError("SMTP username and password go together")


class _Dropped(Exception):
    """The server closed the connection before taking the message: safe to send it again."""

    def __init__(self, result: DeliveryResult) -> None:
        super().__init__(result.detail)
        self.result = result


class _Client(aiosmtplib.SMTP):
    """aiosmtplib's client, telling when its socket is really closed: a TLS close takes a few loop turns
    (close_notify), and ``aclose`` should not return - nor the loop end - before that."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.lost = asyncio.Event()

    def _on_connection_lost(self, protocol: Any) -> None:
        super()._on_connection_lost(protocol)
        self.lost.set()


@dataclass(eq=False)
class _Connection:
    client: _Client
    number: int
    messages: int = 0


class SmtpChannel:
    """An :class:`~.base.EmailChannel` over one SMTP relay; call :meth:`send` concurrently."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._idle: list[_Connection] = []
        self._slots: asyncio.Semaphore | None = None  # created on first use, in the running loop
        self._tls: ssl.SSLContext | None = None
        self._hostname = settings.local_hostname
        self._opened = 0
        self._closed = False

    @property
    def connections_opened(self) -> int:
        return self._opened

    async def send(self, message: OutboundEmail) -> DeliveryResult:
        if self._closed:
            raise RuntimeError("SmtpChannel.send after aclose")
        if problem := _envelope_problem(message):
            return problem
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.settings.pool_size)
        async with self._slots:
            try:
                return await self._attempt(message, fresh=False)
            except _Dropped as dropped:
                log.info("SMTP connection dropped (%s); sending %s again on a new one", dropped, message.message_id)
            try:
                return await self._attempt(message, fresh=True)
            except _Dropped as dropped:
                return dropped.result

    async def aclose(self) -> None:
        """Closes the idle connections with QUIT; busy ones get theirs as their message completes."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_quit(conn) for conn in idle))

    async def _attempt(self, message: OutboundEmail, fresh: bool) -> DeliveryResult:
        try:
            conn = (None if fresh else self._reusable()) or await self._connect()
        except Exception as exc:  # every connect failure is a classified outcome, never an exception
            return connect_failure(exc)
        try:
            result, keep = await self._transaction(conn, message)
        except BaseException:  # dropped, cancelled or a bug: the session is in an unknown state
            conn.client.close()
            raise
        await self._release(conn, keep)
        return result

    def _reusable(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()  # the most recently used: the least likely to have timed out
            if conn.client.is_connected:
                return conn
        return None

    async def _connect(self) -> _Connection:
        settings = self.settings
        if self._hostname is None:  # socket.getfqdn() may query DNS: once per channel, off the loop
            self._hostname = await asyncio.to_thread(socket.getfqdn)
        client = _Client(
            hostname=settings.host, port=settings.port, username=settings.username, password=settings.password,
            local_hostname=self._hostname, timeout=settings.timeout, use_tls=settings.security == "tls",
            start_tls=settings.security == "starttls", tls_context=self._tls_context())
        await client.connect()
        self._opened += 1
        log.debug("SMTP connection %d to %s:%d open", self._opened, settings.host, settings.port)
        return _Connection(client, self._opened)

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.settings.security == "none":
            return None
        if self._tls is None:  # loading the CA bundle costs milliseconds: once per channel
            context = ssl.create_default_context(cafile=self.settings.ca_file)
            if not self.settings.tls_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._tls = context
        return self._tls

    async def _release(self, conn: _Connection, keep: bool) -> None:
        limit = self.settings.max_messages_per_connection
        if keep and not self._closed and conn.client.is_connected and conn.messages < limit:
            self._idle.append(conn)
        else:
            await _quit(conn)

    async def _transaction(self, conn: _Connection, message: OutboundEmail) -> tuple[DeliveryResult, bool]:
        """One MAIL/RCPT/DATA exchange: the result, and whether the connection can carry another."""
        client = conn.client
        conn.messages += 1
        phase = "MAIL"
        try:
            size = [f"SIZE={len(message.data)}"] if client.supports_extension("size") else []  # RFC 1870
            await client.mail(message.sender, options=size)
            phase = "RCPT"
            await client.rcpt(message.recipient)
            if not client.is_connected:  # hung up after RCPT: the message has not left, safe to resend
                raise SMTPServerDisconnected("the server closed the connection before DATA")
            phase = "DATA"
            reply = await client.data(message.data)
        except SMTPResponseException as exc:
            if exc.code == 421:  # RFC 5321 §3.8: the server is closing this connection; it did not take the message
                client.close()
                raise _Dropped(classify(exc.code, exc.message, phase)) from None
            return classify(exc.code, exc.message, phase), await _reset(client)
        except (SMTPServerDisconnected, ConnectionError) as exc:
            if phase != "DATA":
                raise _Dropped(DeliveryResult(Outcome.RETRY, detail=f"connection lost at {phase}: {exc}")) from None
            return DeliveryResult(Outcome.RETRY, detail=f"connection lost during DATA, the server may have "
                                                         f"queued the message: {exc}"), False
        except SMTPTimeoutError as exc:
            return DeliveryResult(Outcome.RETRY, detail=f"timed out at {phase}: {exc}"), False
        except ValueError as exc:  # aiosmtplib refuses an address it cannot put on a command line
            return _unsendable_address(exc, phase), await _reset(client)
        return sent(reply), True


def _envelope_problem(message: OutboundEmail) -> DeliveryResult | None:
    """A bare ``local@domain`` is all MAIL FROM and RCPT TO take here: aiosmtplib would quietly reduce
    "a@b> NOTIFY=NEVER" or "Ana <a@b>" to an address, and send somewhere nobody checked."""
    if not _MAILBOX.fullmatch(message.sender):
        return DeliveryResult(Outcome.CONFIG_ERROR, detail=_line(f"sender {message.sender!r} is not an address"))
    if not _MAILBOX.fullmatch(message.recipient):
        return DeliveryResult(Outcome.BAD_ADDRESS, detail=_line(f"{message.recipient!r} is not an address"))
    return None


def _unsendable_address(exc: ValueError, phase: str) -> DeliveryResult:
    """A non-ASCII address needs SMTPUTF8 (RFC 6531), not offered here: FAILED, the address may be fine;
    one with characters no SMTP command can carry is not an address. The sender is ours to fix."""
    if phase == "MAIL":
        outcome = Outcome.CONFIG_ERROR
    else:
        outcome = Outcome.FAILED if isinstance(exc, UnicodeError) else Outcome.BAD_ADDRESS
    return DeliveryResult(outcome, detail=_line(f"{phase}: {type(exc).__name__}: {exc}"))


def classify(code: int, text: str, phase: str) -> DeliveryResult:
    """The outcome of a reply to MAIL, RCPT or DATA (see the module's table)."""
    enhanced = _enhanced(code, text)
    return DeliveryResult(_outcome(code, enhanced, text, phase), code=_label(code, enhanced), detail=_line(text))


def _enhanced(code: int, text: str) -> re.Match[str] | None:
    enhanced = _ENHANCED.match(text.lstrip())
    if enhanced and enhanced.group(1) != str(code)[0]:
        return None  # RFC 3463 §2: the class must agree with the basic code; trust the basic code
    return enhanced


def _label(code: int, enhanced: re.Match[str] | None) -> str:
    return f"{code} {enhanced.group(0)}" if enhanced else str(code)


def _outcome(code: int, enhanced: re.Match[str] | None, text: str, phase: str) -> Outcome:
    if 200 <= code < 300:
        return Outcome.SENT
    if code < 500:
        return Outcome.RETRY
    subject, detail = (int(enhanced.group(2)), int(enhanced.group(3))) if enhanced else (None, None)
    if phase == "MAIL":
        too_big = (subject, detail) == (3, 4) or (enhanced is None and code == 552)
        return Outcome.FAILED if too_big else Outcome.CONFIG_ERROR
    if (subject, detail) == (2, 2) or (enhanced is None and code == 552):
        return Outcome.RETRY  # mailbox full: RFC 3463 calls it transient; RFC 5321 §4.5.3.1.10 for bare 552
    if subject == 1:
        return Outcome.CONFIG_ERROR if detail in (7, 8) else Outcome.BAD_ADDRESS
    if (subject, detail) == (2, 1):
        return Outcome.BAD_ADDRESS
    if enhanced is None and phase == "RCPT" and code in (550, 551, 553):
        return Outcome.FAILED if _POLICY_WORDS.search(text) else Outcome.BAD_ADDRESS
    return Outcome.FAILED


def sent(reply: aiosmtplib.SMTPResponse) -> DeliveryResult:
    """SENT, with the queue id of the 250 reply when it names one, else the reply's text."""
    enhanced = _enhanced(reply.code, reply.message)
    found = _QUEUE_ID.search(reply.message)
    if found:
        provider_id = found.group(1) or found.group(2)
    else:
        provider_id = _line(reply.message.lstrip()[enhanced.end():] if enhanced else reply.message) or None
    return DeliveryResult(Outcome.SENT, provider_id=provider_id, code=_label(reply.code, enhanced),
                          detail=_line(reply.message))


def connect_failure(exc: BaseException) -> DeliveryResult:
    """The outcome of a failed connect, TLS handshake, EHLO or AUTH."""
    detail = _line(f"{type(exc).__name__}: {exc}")
    if _caused_by_tls(exc):
        return DeliveryResult(Outcome.CONFIG_ERROR, detail="TLS: " + detail)
    if isinstance(exc, SMTPResponseException):  # the greeting, EHLO, STARTTLS or AUTH refused (535: credentials)
        outcome = Outcome.RETRY if exc.code < 500 else Outcome.CONFIG_ERROR
        return DeliveryResult(outcome, code=str(exc.code), detail=detail)
    if isinstance(exc, (SMTPTimeoutError, SMTPServerDisconnected, OSError, asyncio.TimeoutError)):
        return DeliveryResult(Outcome.RETRY, detail=detail)  # refused, unreachable, slow: it may come back
    if isinstance(exc, SMTPException):  # no STARTTLS or no AUTH offered: the settings do not fit the server
        return DeliveryResult(Outcome.CONFIG_ERROR, detail=detail)
    raise exc  # anything else is a bug here, not an answer from the server


def _caused_by_tls(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 8:  # aiosmtplib wraps the ssl error as the cause of a ConnectError
        if isinstance(exc, ssl.SSLError):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


async def _reset(client: aiosmtplib.SMTP) -> bool:
    """RSET after a refused MAIL or RCPT (RFC 5321 §4.1.1.5): True if the connection is fit for reuse."""
    try:
        await client.rset()
        return True
    except (SMTPException, OSError):
        client.close()
        return False


async def _quit(conn: _Connection) -> None:
    if not conn.client.is_connected:
        return
    try:
        await conn.client.quit(timeout=QUIT_TIMEOUT)
    except (SMTPException, OSError):
        pass  # the goodbye is a courtesy: the server drops the session either way
    finally:
        conn.client.close()
    try:
        await asyncio.wait_for(conn.client.lost.wait(), QUIT_TIMEOUT)
    except TimeoutError:
        log.warning("SMTP connection %d did not close within %s s", conn.number, QUIT_TIMEOUT)



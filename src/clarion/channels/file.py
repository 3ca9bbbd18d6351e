"""Development channels: every email written to a directory, or summarised on a stream. Both say SENT.

``FileChannel(directory)`` writes each message as ``<message_id>.eml``, complete and ready to open in a
mail client. The write is atomic (a temporary file in the same directory, then a rename), so a reader
never sees half a message; and idempotent: a retried delivery has the same Message-ID and replaces its
file rather than adding a second one. ``ConsoleChannel(stream)`` prints one line per message;
``ConsoleSmsChannel`` and ``ConsoleCallChannel`` do the same for texts and calls.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

from .base import DeliveryResult, OutboundCall, OutboundEmail, OutboundSms, Outcome

_SAFE = "@.+-_=~"  # kept as is in file names; anything else (a "/" in a Message-ID ...) is %-escaped
_SUBJECT_CHARS = 120  # a console line stays readable


class FileChannel:
    """Writes ``<directory>/<message_id>.eml``; the file name is the ``provider_id``."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def path_for(self, message_id: str) -> Path:
        """%-escaping is one-to-one, so two Message-IDs never share a file."""
        return self.directory / (quote(message_id, safe=_SAFE) + ".eml")

    async def send(self, message: OutboundEmail) -> DeliveryResult:
        path = self.path_for(message.message_id)
        try:
            await asyncio.to_thread(_write_atomically, path, message.data)
        except (PermissionError, FileNotFoundError, NotADirectoryError) as exc:
            return DeliveryResult(Outcome.CONFIG_ERROR, detail=f"cannot write {path}: {exc}")
        except OSError as exc:  # a full disk, say: it may pass
            return DeliveryResult(Outcome.RETRY, detail=f"cannot write {path}: {exc}")
        return DeliveryResult(Outcome.SENT, provider_id=path.name)

    async def aclose(self) -> None:
        return None


class ConsoleChannel:
    """Prints ``email to=... subject=... id=... bytes=...``; the Message-ID is the ``provider_id``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    async def send(self, message: OutboundEmail) -> DeliveryResult:
        subject = message.headers.get("Subject") or _subject_of(message.data)
        if len(subject) > _SUBJECT_CHARS:
            subject = subject[:_SUBJECT_CHARS - 1] + "…"
        self.stream.write(f"email to={message.recipient} subject={subject!r} id={message.message_id} "
                          f"bytes={len(message.data)}\n")
        self.stream.flush()
        return DeliveryResult(Outcome.SENT, provider_id=message.message_id)

    async def aclose(self) -> None:
        return None


class ConsoleSmsChannel:
    """Prints ``sms to=... body=...`` for development; the message id is the ``provider_id``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    async def send(self, message: OutboundSms) -> DeliveryResult:
        self.stream.write(f"sms to={message.to} body={message.body!r} id={message.message_id}\n")
        self.stream.flush()
        return DeliveryResult(Outcome.SENT, provider_id=message.message_id)

    async def aclose(self) -> None:
        return None


class ConsoleCallChannel:
    """Prints ``call to=... language=... voice=... say=...`` for development; the message id is the ``provider_id``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    async def send(self, message: OutboundCall) -> DeliveryResult:
        self.stream.write(f"call to={message.to} language={message.language} voice={message.voice or '-'} "
                          f"say={message.text!r} id={message.message_id}\n")
        self.stream.flush()
        return DeliveryResult(Outcome.SENT, provider_id=message.message_id)

    async def aclose(self) -> None:
        return None


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
        os.replace(temporary, path)  # atomic within one file system (POSIX rename)
    finally:
        temporary.unlink(missing_ok=True)


def _subject_of(data: bytes) -> str:
    """The decoded Subject, reading the header block only."""
    head = data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    return str(BytesHeaderParser(policy=default_policy).parsebytes(head).get("Subject", ""))

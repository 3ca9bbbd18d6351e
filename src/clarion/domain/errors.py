"""Errors that carry what was wrong, in words a user can act on."""

from __future__ import annotations


class ClarionError(Exception):
    """Base of every expected, user-facing error."""


class FieldError(ClarionError, ValueError):
    """One input field is invalid: the API answers 422 with it, the importer rejects the row."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFound(ClarionError, LookupError):
    def __init__(self, what: str, key: object) -> None:
        super().__init__(f"{what} {key!r} not found")
        self.what = what
        self.key = key


class Conflict(ClarionError):
    """The request contradicts stored data (for example an identifier owned by another contact)."""


class Erased(ClarionError):
    """The contact was erased (GDPR); its identifiers may not be brought back."""

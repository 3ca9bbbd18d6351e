"""Salted hashes of identifiers: what is kept of an erased contact, and how suppressions are looked up."""

from __future__ import annotations

import hashlib


def identity_hash(salt: str, kind: str, value: str) -> str:
    """SHA-256 over salt, kind and the normalised value (hex, 64 characters)."""
    return hashlib.sha256(f"{salt}\x00{kind}\x00{value}".encode()).hexdigest()

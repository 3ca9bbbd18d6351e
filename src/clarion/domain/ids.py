"""Ids: 64-bit signed integers in both stores (BIGINT; SQLite's INTEGER). A number outside can name nothing."""

MAX_ID = 2**63 - 1


def is_id_text(text: str) -> bool:
    """ASCII digits only ("¹" and "٣" are digits to ``str.isdigit`` but never an id) within the id range."""
    return text.isascii() and text.isdecimal() and int(text) <= MAX_ID

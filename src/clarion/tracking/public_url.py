"""Where recipients reach Clarion (``CLARION_PUBLIC_URL``), said out loud while it was never set.

Unsubscribe links, the one-click List-Unsubscribe URL and provider callbacks all carry it. Left at its
default it is ``http://127.0.0.1:8000``: no recipient can reach that, and it is not even where
``clarion serve --port 9000`` listens.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..config import Settings

_DEFAULT_PORTS = {"http": 80, "https": 443}
_EVERY_ADDRESS = ("0.0.0.0", "::", "")  # listening on every address includes the URL's own


def public_url_set(settings: Settings) -> bool:
    """Was CLARION_PUBLIC_URL given (environment, .env or code), rather than left at its default?"""
    return "public_url" in settings.model_fields_set


def public_url_warning(settings: Settings, listening: tuple[str, int] | None = None) -> str | None:
    """None once CLARION_PUBLIC_URL is set; else which URL links carry, how to set it and, given where
    ``clarion serve`` listens (host, port), whether that URL does not even point there."""
    if public_url_set(settings):
        return None
    url = settings.public_url
    text = f"CLARION_PUBLIC_URL is not set, so unsubscribe links carry {url}"
    if listening is not None:
        parts = urlsplit(url)
        host, port = listening
        if port != (parts.port or _DEFAULT_PORTS.get(parts.scheme)) or host not in (parts.hostname, *_EVERY_ADDRESS):
            text += f", while this server listens on {host}:{port}"
    return text + ("; set CLARION_PUBLIC_URL to the address recipients reach Clarion at "
                   "(e.g. https://clarion.example.com)")

"""``clarion webpush keys``: the VAPID key pair (RFC 8292) that signs every web push request.

The private key stays with Clarion (``CLARION_WEBPUSH_VAPID_PRIVATE_KEY_FILE``); the public key is the
``applicationServerKey`` browsers subscribe with. Replacing the key pair orphans every subscription made
with the old one (push services answer 401/403), so the command refuses to overwrite a key file.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ..domain.errors import FieldError
from .output import JSON_OPTION, console, emit

webpush_app = typer.Typer(no_args_is_help=True, help="Web push: the VAPID key pair.")


@webpush_app.command("keys")
def keys(out: Path = typer.Option(..., "--out", help="Where to write the private key (PEM); must not exist."),
         as_json: bool = JSON_OPTION) -> None:
    """Generate a VAPID key pair: writes the private key, prints the public applicationServerKey."""
    from py_vapid import Vapid02

    from ..channels.webpush import application_server_key

    if out.exists():
        raise FieldError("--out", f"{out} exists; a new key would orphan the subscriptions made with the old one")
    if not out.parent.is_dir():
        raise FieldError("--out", f"the directory {out.parent} does not exist")
    vapid = Vapid02()
    vapid.generate_keys()
    # 0o600: the private key signs as this workspace; only its owner reads it.
    descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(vapid.private_pem())
    public = application_server_key(vapid)
    data = {"private_key_file": str(out), "public_key": public}
    emit(data, as_json, lambda: console.print(
        f"Wrote the VAPID private key to {out}.\napplicationServerKey (public): {public}\n"
        f"Set CLARION_WEBPUSH_VAPID_PRIVATE_KEY_FILE={out} and CLARION_WEBPUSH_VAPID_SUBJECT=mailto:you@example.com",
        soft_wrap=True, highlight=False))

"""The lines ``clarion worker`` prints on stderr: where it sends from and how each campaign is going.

stderr, so that stdout carries only the result (``--json``); ``--quiet`` leaves both lines out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .output import err_console

if TYPE_CHECKING:
    from ..runners.progress import CampaignProgress
    from ..runners.worker import Worker

# The setting that names each channel's transport, where there is a choice (file, console, smtp ...).
TRANSPORT_SETTINGS = {"email": "email_transport", "sms": "sms_transport", "voice": "voice_transport"}


def start_line(worker: Worker) -> str:
    settings = worker.app.settings
    store = worker.app.store.engine.url.render_as_string(hide_password=True)
    channels = ", ".join(
        f"{name} ({getattr(settings, TRANSPORT_SETTINGS[name])})" if name in TRANSPORT_SETTINGS else name
        for name in sorted(worker.channels))
    return f"Worker {worker.worker_id} started: store {store}; channels: {channels or 'none'}."


def progress_line(progress: CampaignProgress) -> str:
    return (f"{progress.name}: {progress.sent:,} sent, {progress.skipped:,} skipped, {progress.deferred:,} deferred, "
            f"{progress.failed:,} failed ({progress.rate:,.1f}/s)")


def say(line: str) -> None:
    err_console.print(line, markup=False, highlight=False, soft_wrap=True)


def print_progress(progress: CampaignProgress) -> None:
    say(progress_line(progress))

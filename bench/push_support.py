"""Helpers of ``bench/push.py``: the audience's devices, the push template, the FCM peer's process, one worker
process, and the two blasts it is compared with. Nothing here is timed by itself.

    .venv/bin/python bench/push_support.py worker --id bench-0     # one worker; settings from CLARION_* variables
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import bindparam, text

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEER = ROOT / "tests" / "fcm_peer.py"
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from send_support import process_cpu_seconds, stop_process  # noqa: E402

from clarion.store.types import UtcDateTime  # noqa: E402

# Real registration tokens are about 160 characters ("<instance id>:APA91b<...>"); the body's size matters.
TOKEN_TAIL = ":APA91b" + "Hx3f9Qe_k2Lw" * 12
TEMPLATE = {"default_locale": "en", "default": {"push": {
    "title": "{{ contact.first_name | default('Hello') }}, {{ contact.attributes.credit | money('EUR') }} is waiting",
    "body": "Your credit expires on {{ contact.custom_dates.credit_expiry | date('long') }}. Tap to see this week's "
            "picks for {{ contact.city | default('you') }}.",
    "image": "https://cdn.shop.example/push/autumn.jpg",
    "deep_link": "shop://credit?c={{ contact.id }}&campaign={{ campaign.id }}",
    "badge": 1, "sound": "default"}}}


def device_token(contact_id: int) -> str:
    return f"bench-{contact_id}{TOKEN_TAIL}"


def add_devices(conn) -> None:
    """One FCM device and a push consent for every contact (after send_support.load_audience)."""
    now = bindparam("now", datetime.now(UTC), type_=UtcDateTime())
    conn.execute(text("INSERT INTO devices (contact_id, kind, token, platform, created_at, last_seen_at) "
                      "SELECT id, 'fcm', 'bench-' || id || :tail, 'android', :now, :now FROM contacts")
                 .bindparams(now, tail=TOKEN_TAIL))
    conn.execute(text("INSERT INTO consent_ledger (contact_id, channel, topic, status, occurred_at, recorded_at, "
                      "source, proof) SELECT id, 'push', '*', 'opted_in', :now, :now, 'import', '{}' FROM contacts")
                 .bindparams(now))
    conn.execute(text("INSERT INTO consents (contact_id, channel, topic, status, updated_at, ledger_id) "
                      "SELECT contact_id, channel, topic, status, occurred_at, id FROM consent_ledger "
                      "WHERE channel = 'push'"))


# -- the peer ------------------------------------------------------------------------------------------
class PeerProcess:
    """tests/fcm_peer.py in a process of its own (uvloop when installed), trusting ``key_file``."""

    def __init__(self, key_file: Path, port: int, workdir: Path) -> None:
        self.port = port
        port_file = workdir / f"peer-{port}.port"
        port_file.unlink(missing_ok=True)  # a previous peer's
        self._log = open(workdir / f"peer-{port}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, str(PEER), "--service-account", str(key_file),
                                      "--port", str(port), "--port-file", str(port_file)],
                                     stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not port_file.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"the FCM peer did not start: see {self._log.name}")
            time.sleep(0.05)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.base_url}/stats", timeout=10) as response:
            return json.loads(response.read())

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.proc)

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()


# -- the blasts ----------------------------------------------------------------------------------------
def raw_blast(url: str, bearer: str, bodies: Sequence[bytes], total: int, concurrency: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) to POST ``total`` pre-built bodies (cycled) with aiohttp: ``concurrency``
    loops sharing one session with as many keep-alive connections. Every answer must be 200."""
    import aiohttp

    async def run() -> tuple[float, float]:
        headers = {"Authorization": bearer, "Content-Type": "application/json; charset=UTF-8"}
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            counter = iter(range(total))
            failures: list[int] = []

            async def loop() -> None:
                for i in counter:
                    async with session.post(url, data=bodies[i % len(bodies)], headers=headers) as response:
                        await response.read()
                        if response.status != 200:
                            failures.append(response.status)

            started, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(loop() for _ in range(concurrency)))
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            if failures:
                raise SystemExit(f"raw blast: {len(failures)} answers were not 200 (first {failures[0]})")
            return seconds, cpu

    return asyncio.run(run())


def provider_blast(settings, messages: Sequence, total: int, concurrency: int, client: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) to send ``total`` composed messages (cycled) through FcmProvider.send_to,
    ``concurrency`` at a time: the adapter alone, without the ledger."""
    from clarion.channels.fcm import FcmProvider

    async def run() -> tuple[float, float]:
        provider = FcmProvider.from_settings(settings, client=client)
        await provider.authorization()  # fetched before the clock starts, as in the raw blast
        counter = iter(range(total))
        failures = []

        async def loop() -> None:
            for i in counter:
                message = messages[i % len(messages)]
                result = await provider.send_to(message, message.targets[0])
                if not result.sent:
                    failures.append(result)

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        await provider.aclose()
        if failures:
            raise SystemExit(f"provider blast: {len(failures)} not sent (first {failures[0]})")
        return seconds, cpu

    return asyncio.run(run())


# -- one worker ----------------------------------------------------------------------------------------
def push_bindings(settings, client: str = "auto"):
    """The push channel as the worker binds it: PushComposer -> PushFanout -> FcmProvider."""
    from clarion.channels.fcm import FcmProvider
    from clarion.channels.push_fanout import PushFanout
    from clarion.messages.push_compose import PushComposer
    from clarion.runners.dispatch import ChannelBinding

    provider = FcmProvider.from_settings(settings, client=client)
    binding = ChannelBinding(PushComposer(settings), PushFanout({"fcm": provider}),
                             concurrency=settings.push_concurrency, rate_per_second=settings.push_rate_per_second)
    return {"push": binding}, provider


def run_worker(worker_id: str) -> None:
    """``clarion worker --until-idle`` with the push binding (settings from CLARION_* variables)."""
    from clarion.bootstrap import Clarion
    from clarion.config import Settings
    from clarion.runners.worker import Worker

    settings = Settings()
    app = Clarion.from_settings(settings)
    channels, provider = push_bindings(settings, os.environ.get("BENCH_FCM_CLIENT", "auto"))
    worker = Worker(app, channels=channels, worker_id=worker_id)

    async def run() -> None:
        try:
            await worker.run(until_idle=True)
        finally:
            await provider.aclose()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
    print(json.dumps({"worker": worker_id, "sent": worker.sent, "token_fetches": provider.token_fetches}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["worker"])
    parser.add_argument("--id", default=f"bench-{os.getpid()}")
    args = parser.parse_args()
    run_worker(args.id)


if __name__ == "__main__":
    main()

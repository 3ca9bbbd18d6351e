"""The README's "Using it" walk-through, run as written: a README that drifts from the code fails CI.

The block is taken from README.md and each command runs in ``bash`` in a fresh directory that looks like a
checkout (``examples/`` and ``../shared`` beside it), with the project's virtual environment on PATH. Only two
things differ from a person at a terminal: ``clarion serve`` (which the README runs "in a second terminal")
is started in the background and awaited on /health, on a free port that ``CLARION_API_PORT`` and
``CLARION_PUBLIC_URL`` name; and each command must exit 0 without a traceback. At the end the campaign must
have sent email through the file transport: following the README sends messages.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import CDNOW_DIR, SHARED

REPO = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT = 300.0  # seconds for one command on a loaded 2-core machine (the CDNOW import takes ~3 s)
SERVE_WAIT = 60.0  # seconds for `clarion serve` to answer /health
SEND_WAIT = 120.0  # seconds for the campaign to complete after the README's last command

pytestmark = pytest.mark.slow


def readme_commands(text: str) -> list[str]:
    """The commands of the first ``sh`` block after "## Using it", continuation lines joined, comments dropped."""
    section = text[text.index("## Using it"):]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "README.md has no ```sh block under '## Using it'"
    commands, pending = [], ""
    for line in block.group(1).splitlines():
        pending += line
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if shlex.split(pending, comments=True):  # not a blank or comment-only line
            commands.append(pending.strip())
        pending = ""
    return commands


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A directory shaped like the repository's: examples/ inside, ../shared beside it."""
    if not (CDNOW_DIR / "CDNOW_master.txt").exists():
        pytest.fail(f"the CDNOW data is expected in {CDNOW_DIR} (../shared beside the checkout)")
    (tmp_path / "shared").symlink_to(SHARED)
    root = tmp_path / "checkout"
    root.mkdir()
    (root / "examples").symlink_to(REPO / "examples")
    return root


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Walkthrough:
    def __init__(self, root: Path, servers: list[subprocess.Popen]) -> None:
        self.root = root
        self.servers = servers
        self.port = _free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CLARION_")}
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"
        self.env["COLUMNS"] = "100"
        self._pin_port()

    def _pin_port(self) -> None:
        self.env["CLARION_API_PORT"] = str(self.port)
        self.env["CLARION_PUBLIC_URL"] = f"http://127.0.0.1:{self.port}"

    def run(self, command: str) -> None:
        words = shlex.split(command, comments=True)
        if words[:1] == ["."]:  # activating the virtual environment: its bin/ is on PATH already
            return
        if words[0] == "export":
            for assignment in words[1:]:
                name, _, value = assignment.partition("=")
                self.env[name] = value
            self._pin_port()
            return
        if words[:2] == ["clarion", "serve"]:
            self._serve(command)
            return
        self._shell(command)
        if words[:3] == ["clarion", "db", "upgrade"]:
            # Not in the README: the test runs at any hour, and quiet hours (21:00-08:00 in each contact's zone)
            # would hold the US customers' messages until their morning. Off in this workspace only.
            (self.root / "no-quiet-hours.json").write_text('{"quiet_hours": {}}', encoding="utf-8")
            self._shell("clarion delivery set --file no-quiet-hours.json")

    def _shell(self, command: str) -> None:
        done = subprocess.run(["bash", "-c", command], cwd=self.root, env=self.env, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT)
        said = f"README command `{command}` exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        assert done.returncode == 0, said
        assert "Traceback" not in done.stdout + done.stderr, said

    def _serve(self, command: str) -> None:
        log = (self.root / "serve.log").open("w")
        process = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=self.root, env=self.env, stdout=log,
                                   stderr=subprocess.STDOUT)
        self.servers.append(process)
        deadline = time.monotonic() + SERVE_WAIT
        while time.monotonic() < deadline:
            assert process.poll() is None, f"`{command}` exited: {(self.root / 'serve.log').read_text()}"
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        pytest.fail(f"`{command}` did not answer /health within {SERVE_WAIT:.0f} s: "
                    f"{(self.root / 'serve.log').read_text()}")

    def campaign(self, name: str) -> dict:
        done = subprocess.run(["clarion", "campaigns", "status", name, "--json"], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=True)
        return json.loads(done.stdout)


def test_readme_commands_parse_as_written():
    # given the README; when its walk-through is read
    commands = readme_commands((REPO / "README.md").read_text(encoding="utf-8"))
    # then it holds the steps a newcomer needs, consent before the send
    joined = "\n".join(commands)
    assert "clarion serve" in joined and "clarion campaigns send autumn" in joined
    assert joined.index("consent") < joined.index("clarion campaigns send")


def test_the_readme_walkthrough_sends_its_campaign(checkout, servers):
    # given a fresh directory shaped like a checkout
    walk = Walkthrough(checkout, servers)
    # when every command of the README's walk-through runs, in order
    for command in readme_commands((REPO / "README.md").read_text(encoding="utf-8")):
        walk.run(command)
    # then the campaign completes (the served API's embedded worker may still be sending) ...
    deadline = time.monotonic() + SEND_WAIT
    status = walk.campaign("autumn")
    while status["status"] != "completed" and time.monotonic() < deadline:
        time.sleep(0.5)
        status = walk.campaign("autumn")
    assert status["status"] == "completed", status
    # ... having sent its messages, one file each, and skipped those without consent, saying why
    sent = status["counts"]["sent"]
    assert sent > 0 and len(list((checkout / "outbox").glob("*.eml"))) == sent
    assert {r["reason"] for r in status["reasons"]} <= {"no_consent"}
    assert (checkout / "letters.csv").read_text(encoding="utf-8").count("\n") > 1

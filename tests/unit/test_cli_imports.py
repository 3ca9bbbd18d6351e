"""``import clarion.cli.main`` stays light: every command imports its services, store and channels when it
runs (see cli/main.py), so ``clarion --help`` and the small commands start fast (docs/benchmarks.md).

A new CLI module that imports a service at its top fails here; move the import into the command function.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

# What only sending needs: channel adapters, the worker, DKIM/DNS, the network clients, the API server.
SENDING = ("clarion.channels", "clarion.runners", "dkim", "dns", "aiosmtplib", "httpx", "httpcore", "h2",
           "aiohttp", "google", "fastapi", "uvicorn", "starlette")
# What no command needs before it runs: the settings, the store, the services and their libraries.
RUNNING = ("clarion.bootstrap", "clarion.config", "clarion.store", "clarion.services", "clarion.delivery",
           "clarion.content", "clarion.messages",
           "clarion.segments", "clarion.scoring", "clarion.api", "sqlalchemy", "alembic", "pydantic",
           "pydantic_settings", "numpy", "scipy", "jinja2")


def _modules_after(statement: str) -> list[str]:
    """The modules a fresh interpreter holds after running the statement."""
    script = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def _matching(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [name for name in modules if any(name == p or name.startswith(p + ".") for p in prefixes)]


def test_importing_the_cli_loads_no_channel_worker_or_network_module():
    # given a fresh interpreter; when it imports the CLI
    modules = _modules_after("import clarion.cli.main")
    # then nothing of the sending side is loaded
    assert _matching(modules, SENDING) == []


def test_importing_the_cli_loads_no_settings_store_or_service():
    # given a fresh interpreter; when it imports the CLI
    modules = _modules_after("import clarion.cli.main")
    # then neither Clarion's settings, store and services nor their libraries are loaded yet
    assert _matching(modules, RUNNING) == []


def test_help_lists_the_commands_without_loading_the_store():
    # given a fresh interpreter; when it prints the help
    modules = _modules_after("from clarion.cli.main import app\n"
                             "try:\n    app(['--help'], prog_name='clarion')\nexcept SystemExit:\n    pass")
    # then the store, the services and the sending side are still not loaded
    assert _matching(modules, SENDING + RUNNING) == []


def test_version_prints_the_installed_version():
    # given the installed package; when asked for its version
    result = subprocess.run([sys.executable, "-m", "clarion", "--version"], capture_output=True, text=True,
                            timeout=120)
    # then it prints it and exits 0
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"clarion {version('clarion')}"

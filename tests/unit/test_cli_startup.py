"""The console script pauses the garbage collector while a command starts, and the command resumes it
once it has its Clarion instance, so a long command (the worker, an import) runs with it as usual."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(script: str) -> str:
    # A fresh interpreter: the collector is process-wide, and this test process keeps its own.
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_collector_paused_for_start_up_runs_again_once_the_command_has_its_clarion(tmp_path):
    # given the collector paused as the console script does
    said = _run(f"""
        import gc
        from clarion.cli import startup
        from clarion.cli.output import State
        startup.pause_collector()
        paused = not gc.isenabled()
        # when a command builds its Clarion instance
        State("sqlite:///{tmp_path / 'c.db'}").app
        print(paused, gc.isenabled(), gc.get_freeze_count() > 0)
    """)
    # then the collector was paused, runs again, and what start-up loaded is frozen out of its sight
    assert said == "True True True"


def test_a_collector_the_program_turned_off_stays_off():
    # given a program that disabled the collector itself; when the CLI pauses and resumes it
    said = _run("""
        import gc
        from clarion.cli import startup
        gc.disable()
        startup.pause_collector()
        startup.resume_collector()
        print(gc.isenabled())
    """)
    # then it is left as the program set it
    assert said == "False"

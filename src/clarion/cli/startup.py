"""The garbage collector during a command's start-up.

Starting, a command loads its modules (SQLAlchemy, pydantic, Rich, Clarion's services): some 70,000
tracked objects that all live until it exits, which the collector walks again and again meanwhile. So
the console script pauses it while the command starts, and the command resumes it once it has built
its Clarion instance, with everything loaded so far frozen out of the collector's sight (Python's
gc.freeze docs): a long command (the worker, an import) then runs with the collector as usual. The pause
takes ~0.1 s off ``clarion stats`` (docs/benchmarks.md).

Only ``clarion.cli.main.run`` pauses it: a program or a test that invokes the Typer app keeps its own.
"""

from __future__ import annotations

import gc

_paused = False


def pause_collector() -> None:
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume_collector() -> None:
    """Resume a collector that pause_collector paused; otherwise, nothing."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()

"""How a handler's failure reads on the runner's stderr.

Owns: the traceback reported for a handler that raised or could not be
imported. It starts at the handler's own code: the runner's frames above it
(and the asyncio and importlib machinery they call it through) are dropped;
every frame of the handler and of the libraries it calls is kept; each run
of frames inside the asya-state runtime (the hooks behind ``open`` and
``os``) is condensed into one line that says how many it hides, so an error
the runtime raises points at the handler's line that made the call. A
syntax error shows its file, line and caret as Python prints them.

Must not: import anything outside the standard library (it runs in the
handler process, which stands in for an arbitrary actor image).
"""

from __future__ import annotations

import itertools
import os
import sys
import traceback
from typing import Any

_RUNNER_DIR = os.path.dirname(os.path.abspath(__file__))
_STDLIB = os.path.dirname(os.path.abspath(traceback.__file__))
# What the runner calls the handler through: an async handler runs in the
# event loop, the handler module is imported with importlib.
_MACHINERY = tuple(os.path.join(_STDLIB, package) + os.sep for package in ("asyncio", "importlib"))


def _runtime_dirs() -> tuple[str, ...]:
    """Where the runtime's code lives in this process (its hooks are already installed)."""
    runtime = sys.modules.get("asya_state_runtime")
    location = getattr(runtime, "__file__", None)
    if not location:
        return ()
    package = os.path.dirname(os.path.abspath(location))
    return (package + os.sep, os.path.join(os.path.dirname(package), "sitecustomize.py"))


def _is_runner(filename: str) -> bool:
    return os.path.dirname(filename) == _RUNNER_DIR


def _is_machinery(filename: str) -> bool:
    return filename.startswith("<frozen importlib") or filename.startswith(_MACHINERY)


class _Condensed(traceback.StackSummary):
    """Formats each run of runtime frames as one line saying how many it hides."""

    runtime: tuple[str, ...] = ()

    def _in_runtime(self, filename: str) -> bool:
        return filename.startswith(self.runtime)

    def format(self, **options: Any) -> list[str]:
        lines: list[str] = []
        for in_runtime, run in itertools.groupby(self, lambda f: self._in_runtime(f.filename)):
            frames = list(run)
            if in_runtime:
                plural = "s" if len(frames) > 1 else ""
                lines.append(
                    f"  [{len(frames)} frame{plural} inside the asya-state runtime hidden]\n"
                )
            else:
                lines += traceback.StackSummary.from_list(frames).format(**options)
        return lines


def _condense(report: traceback.TracebackException, runtime: tuple[str, ...]) -> None:
    frames = list(report.stack)
    last_runner = max((i for i, f in enumerate(frames) if _is_runner(f.filename)), default=-1)
    # The runner called the handler through asyncio or importlib: drop the way
    # in, keep whatever the handler itself called. Frozen importlib frames go
    # wherever they are, as Python hides them behind an import statement.
    kept = [f for f in frames[last_runner + 1 :] if not f.filename.startswith("<frozen importlib")]
    while last_runner >= 0 and kept and _is_machinery(kept[0].filename):
        kept.pop(0)
    stack = _Condensed(kept)
    stack.runtime = runtime
    report.stack = stack
    for chained in (report.__cause__, report.__context__, *(report.exceptions or ())):
        if chained is not None:
            _condense(chained, runtime)


def describe(exc: BaseException) -> str:
    """The traceback of ``exc`` from the handler's code down, runtime frames condensed."""
    report = traceback.TracebackException.from_exception(exc)
    _condense(report, _runtime_dirs())
    return "".join(report.format())

"""The CAS counter of examples/cas-counter, with faults the chaos tests ask for in the payload.

``crash_then_count`` kills its own process before the counter reads (as a
crash in an extension or an OOM kill would), once when the payload names a
marker file (the retry goes through) or on every attempt without one; every
other message runs the example's handler unchanged.
"""

import importlib.util
import os
import signal
from pathlib import Path

_COUNTER = Path(__file__).resolve().parents[2] / "examples" / "cas-counter" / "counter.py"
_spec = importlib.util.spec_from_file_location("cas_counter_example", _COUNTER)
assert _spec is not None
assert _spec.loader is not None
counter = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(counter)


def _first_time(marker: str | None) -> bool:
    if marker is None:
        return True
    try:
        with open(marker, "x"):
            return True
    except FileExistsError:
        return False


async def crash_then_count(payload: dict):
    how = payload.pop("crash", None)
    marker = payload.pop("marker", None)
    if how is not None and _first_time(marker):
        if how == "os_exit":
            os._exit(9)
        if how == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise SystemExit(4)
    async for output in counter.update_state_with_cas(payload):
        yield output

"""The handler process of one local "pod": runs messages through the actor's handler.

Owns: resolving ``spec.handler`` (``module.func`` or ``module.Class.method``),
calling every handler shape (sync or async function, generator, async
generator; a class instantiated once per process), and reporting each
message's outputs or failure to the runner as JSON lines, with whether the
failure is worth a retry (a CAS conflict, or a transient error: the
``transient`` field) or must not be retried (``outcome_unknown``: a write
that may have been applied, whose outcome the runtime could not learn
within the mount's timeout). The runtime hooks
are already active in this process (``sitecustomize`` on PYTHONPATH), exactly
as in a pod, and so is the handler's revision scope: the pod passes
``ASYA_HANDLER``, and the runtime gives every call of that handler (every
message, every retry) a fresh revision memory when it is imported here.

Must not: import anything outside the standard library at start-up beyond
the handler itself: it stands in for an arbitrary actor image.

Protocol (one JSON object per line): the runner writes
``{"id", "payload"}`` to stdin; the worker answers on its private channel
``{"ready"}`` or ``{"fatal", "traceback"?}`` once, then per message
``{"id", "outputs"}`` or ``{"id", "error", "traceback", "conflict",
"transient", "outcome_unknown"}`` (the
traceback as ``failures.describe`` writes it). The handler's own prints go
to stderr so they cannot corrupt the channel.
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import inspect
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from .failures import describe

Handler = Callable[[dict[str, Any]], Any]


class HandlerError(Exception):
    """The handler string or the handler's result is unusable."""


def resolve_handler(spec: str) -> Handler:
    """Import ``module.func`` or ``module.Class.method`` (the class is instantiated once)."""
    parts = spec.split(".")
    if len(parts) < 2 or not all(p.isidentifier() for p in parts):
        raise HandlerError(
            f"handler {spec!r} must look like module.function or module.Class.method"
        )
    errors: list[str] = []
    for split in range(len(parts) - 1, 0, -1):
        module_name, attrs = ".".join(parts[:split]), parts[split:]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                errors.append(f"no module {module_name!r}")
                continue
            raise
        target: Any = module
        owner = module_name
        for attr in attrs:
            if not hasattr(target, attr):
                source = getattr(module, "__file__", None) or module_name
                raise HandlerError(
                    f"cannot import handler {spec!r}: {owner!r} ({source}) has no attribute {attr!r}"
                )
            target = getattr(target, attr)
            owner = f"{owner}.{attr}"
            if inspect.isclass(target):
                target = target()  # instantiated once; keeps state across messages
        if not callable(target):
            raise HandlerError(f"handler {spec!r} is not callable")
        handler: Handler = target
        return handler
    raise HandlerError(
        f"cannot import handler {spec!r}: {'; '.join(errors)} in {os.getcwd()} (--handler-path)"
    )


class Runner:
    """Calls the handler and normalises every shape into a list of output dicts."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        # One loop for the process: async handlers may keep loop-bound state.
        self.loop = asyncio.new_event_loop()

    def call(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        result = self.handler(payload)
        if inspect.isawaitable(result):
            result = self.loop.run_until_complete(_awaited(result))
        if inspect.isasyncgen(result):
            outputs = self.loop.run_until_complete(_drain(result))
        elif inspect.isgenerator(result):
            outputs = list(result)
        elif result is None:
            outputs = []
        else:
            outputs = [result]
        for output in outputs:
            if not isinstance(output, dict):
                raise HandlerError(f"handler produced {type(output).__name__}, expected a dict")
        return outputs


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


async def _drain(generator: Any) -> list[Any]:
    return [item async for item in generator]


def _cas_mounts() -> list[str]:
    raw = os.environ.get("ASYA_STATE_RUN_CAS_MOUNTS", "")
    return [p for p in raw.split(":") if p]


def is_cas_conflict(exc: BaseException, cas_mounts: list[str]) -> bool:
    """A FileExistsError raised for a path on a compare-and-swap mount."""
    if not isinstance(exc, FileExistsError) or not cas_mounts:
        return False
    filename = exc.filename
    if not isinstance(filename, str):
        return True  # raised without a path: the runtime's conflicts always name one, be generous
    path = os.path.normpath(filename)
    return any(path == m or path.startswith(m.rstrip("/") + "/") for m in cas_mounts)


def is_transient(exc: BaseException) -> bool:
    """Worth another try after a pause: something the handler talks to was briefly gone.

    The runtime raises ConnectionError for a connector that is unreachable,
    a lost connection and a 503 (a connector draining, a backend down), and
    TimeoutError for a timeout and a 504; a handler's own network calls
    raise the same classes. A connector that speaks another protocol
    (EPROTO) stays foreign however often the message is tried.
    """
    return isinstance(exc, ConnectionError | TimeoutError) and exc.errno != errno.EPROTO


def ended_in_doubt(exc: BaseException) -> bool:
    """A write of this attempt may have been applied: running the message again could apply it twice."""
    try:
        from asya_state_runtime import outcome_unknown
    except ImportError:  # a handler process without the runtime writes nothing through it
        return False
    return outcome_unknown(exc)


def serve(handler_spec: str, channel: TextIO) -> int:
    try:
        runner = Runner(resolve_handler(handler_spec))
    except HandlerError as exc:
        _send(channel, {"fatal": str(exc)})
        return 1
    except Exception as exc:
        _send(
            channel,
            {
                "fatal": f"cannot import handler {handler_spec!r}: {type(exc).__name__}: {exc}",
                "traceback": describe(exc),
            },
        )
        return 1
    _send(channel, {"ready": True, "pid": os.getpid()})
    cas_mounts = _cas_mounts()
    for line in sys.stdin:
        message = json.loads(line)
        try:
            outputs = runner.call(message["payload"])
            json.dumps(outputs)  # fail here, not in the runner, if not JSON
            _send(channel, {"id": message["id"], "outputs": outputs})
        except Exception as exc:
            unknown = ended_in_doubt(exc)
            _send(
                channel,
                {
                    "id": message["id"],
                    "error": f"{type(exc).__name__}: {exc}",
                    # The runner's own complaint (an output that is not a dict) has no handler frame.
                    "traceback": None if isinstance(exc, HandlerError) else describe(exc),
                    "conflict": is_cas_conflict(exc, cas_mounts),
                    "transient": is_transient(exc) and not unknown,
                    "outcome_unknown": unknown,
                },
            )
    return 0


def _send(channel: TextIO, message: dict[str, Any]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def main() -> int:
    handler_spec = sys.argv[1]
    # Keep the real stdout as the private channel; the handler's prints go to stderr.
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # even C-level writes to stdout land on stderr
    sys.stdout = sys.stderr
    return serve(handler_spec, channel)


if __name__ == "__main__":
    sys.exit(main())

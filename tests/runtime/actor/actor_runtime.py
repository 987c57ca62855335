"""A stand-in actor runtime: a long-lived process calling the handler named by ASYA_HANDLER.

It does what an actor runtime in a pod does, and nothing of the local
runner: the asya-state hooks are active through ``sitecustomize`` on
PYTHONPATH, the runtime imports the handler module itself after start-up,
resolves ``module.function`` or ``module.Class.method`` (the class
instantiated once), and calls the handler for message after message in one
event loop and one long-lived task, dispatching on the inspect predicates.
Sync handlers run in that task too. A FileExistsError is the queue's
requeue: the same message is delivered again, at most MAX_ATTEMPTS times.

Protocol: ``{"ready", "scoped"}`` once, then one JSON line in per message
(the payload) and one out: ``{"outputs", "attempts", "conflicts"}`` or
``{"error", "attempts", "conflicts"}``.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import sys
import traceback
from typing import Any

MAX_ATTEMPTS = 50


def resolve(spec: str) -> Any:
    module_name, _, rest = spec.partition(".")
    target: Any = importlib.import_module(module_name)
    for name in rest.split("."):
        target = getattr(target, name)
        if inspect.isclass(target):
            target = target()
    return target


async def call(handler: Any, payload: dict[str, Any]) -> list[Any]:
    if inspect.isasyncgenfunction(handler):
        return [item async for item in handler(payload)]
    if inspect.iscoroutinefunction(handler):
        return [await handler(payload)]
    if inspect.isgeneratorfunction(handler):
        return list(handler(payload))
    return [handler(payload)]


async def serve() -> None:
    handler = resolve(os.environ["ASYA_HANDLER"])
    send({"ready": True, "scoped": bool(getattr(handler, "__asya_scoped__", False))})
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        payload = json.loads(line)
        conflicts = 0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                outputs = await call(handler, payload)
            except FileExistsError:
                conflicts += 1  # requeued: delivered again
                continue
            except Exception:
                send({"error": traceback.format_exc(), "attempts": attempt, "conflicts": conflicts})
                break
            send({"outputs": outputs, "attempts": attempt, "conflicts": conflicts})
            break
        else:
            send({"error": "too many conflicts", "attempts": MAX_ATTEMPTS, "conflicts": conflicts})


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(serve())

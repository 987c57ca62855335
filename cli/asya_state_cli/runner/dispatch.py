"""The message queue shared by the local pods, with CAS-conflict requeue.

Owns: one queue every pod pulls from (as replicas pull from one actor
queue), requeueing a message whose handler hit a compare-and-swap conflict
after an exponential backoff with full jitter, reporting failures with the
input line number (and the handler's traceback), and writing outputs as
JSON lines.

Must not: know how pods run handlers.
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
import sys
import textwrap
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO


class HandlesMessages(Protocol):
    def handle(self, message_id: int, payload: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 0.05
    cap: float = 2.0
    max_attempts: int = 10

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter backoff before attempt ``attempt + 1``."""
        return rng.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))


@dataclass(order=True)
class _Message:
    ready_at: float
    seq: int
    line: int = field(compare=False)
    payload: dict[str, Any] = field(compare=False)
    attempt: int = field(compare=False, default=1)


@dataclass
class Summary:
    messages: int = 0
    outputs: int = 0
    failed: int = 0
    conflicts: int = 0  # CAS conflicts that were requeued


class Dispatcher:
    def __init__(
        self,
        policy: RetryPolicy,
        *,
        out: TextIO = sys.stdout,
        err: TextIO = sys.stderr,
        seed: int | None = None,
    ) -> None:
        self.policy = policy
        self.out = out
        self.err = err
        self.summary = Summary()
        self._heap: list[_Message] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._input_done = False
        self._aborted = False
        self._rng = random.Random(seed)
        self._print_lock = threading.Lock()

    # -- input ------------------------------------------------------------

    def feed(self, lines: Iterable[str]) -> None:
        """Queue every JSON line; report malformed ones. Marks the input as finished."""
        try:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    payload = json.loads(line)
                except json.JSONDecodeError as exc:
                    self._fail(number, f"not valid JSON: {exc}")
                    continue
                if not isinstance(payload, dict):
                    self._fail(
                        number, f"a payload must be a JSON object, got {type(payload).__name__}"
                    )
                    continue
                with self._cond:
                    self.summary.messages += 1
                    heapq.heappush(
                        self._heap, _Message(time.monotonic(), next(self._seq), number, payload)
                    )
                    self._cond.notify()
        finally:
            with self._cond:
                self._input_done = True
                self._cond.notify_all()

    # -- workers ----------------------------------------------------------

    def _next(self) -> _Message | None:
        with self._cond:
            while True:
                if self._aborted:
                    return None
                if self._heap:
                    wait = self._heap[0].ready_at - time.monotonic()
                    if wait <= 0:
                        self._in_flight += 1
                        return heapq.heappop(self._heap)
                    self._cond.wait(wait)
                elif self._input_done and self._in_flight == 0:
                    return None
                else:
                    self._cond.wait()

    def abort(self) -> None:
        """Stop handing out messages (a pod died); queued ones are dropped."""
        with self._cond:
            self._aborted = True
            self.summary.failed += len(self._heap)
            self._heap.clear()
            self._cond.notify_all()

    def _done(self, requeue: _Message | None = None) -> None:
        with self._cond:
            self._in_flight -= 1
            if requeue is not None:
                heapq.heappush(self._heap, requeue)
            self._cond.notify_all()

    def serve(self, pod: HandlesMessages) -> None:
        """Pull messages until the input is exhausted; run in one thread per pod."""
        while (message := self._next()) is not None:
            requeue = None
            try:
                reply = pod.handle(message.seq, message.payload)
                requeue = self._settle(message, reply)
            except Exception as exc:
                self._fail(message.line, f"{type(exc).__name__}: {exc}")
                self._done()
                raise
            self._done(requeue)

    def _settle(self, message: _Message, reply: dict[str, Any]) -> _Message | None:
        if "outputs" in reply:
            with self._print_lock:
                for output in reply["outputs"]:
                    self.out.write(json.dumps(output, ensure_ascii=False) + "\n")
                self.out.flush()
                self.summary.outputs += len(reply["outputs"])
            return None
        if reply.get("conflict") and message.attempt < self.policy.max_attempts:
            with self._print_lock:
                self.summary.conflicts += 1
            delay = self.policy.delay(message.attempt, self._rng)
            return _Message(
                time.monotonic() + delay,
                next(self._seq),
                message.line,
                message.payload,
                message.attempt + 1,
            )
        detail = reply.get("error", "unknown error")
        if reply.get("conflict"):
            detail = f"gave up after {message.attempt} attempts on CAS conflicts: {detail}"
        self._fail(message.line, detail, reply.get("traceback"))
        return None

    def _fail(self, line: int, detail: str, traceback: str | None = None) -> None:
        with self._print_lock:
            self.summary.failed += 1
            self.err.write(f"asya-state run: line {line}: {detail}\n")
            if traceback:
                # Already cut to the handler's frames by the worker: shown whole.
                self.err.write(textwrap.indent(traceback.rstrip() + "\n", "    "))
            self.err.flush()


def run_pods(dispatcher: Dispatcher, pods: list[HandlesMessages], lines: Iterable[str]) -> None:
    """Feed ``lines`` to ``pods`` concurrently; returns when every message settled."""
    errors: list[BaseException] = []

    def serve(pod: HandlesMessages) -> None:
        try:
            dispatcher.serve(pod)
        except BaseException as exc:
            errors.append(exc)
            dispatcher.abort()

    threads = [threading.Thread(target=serve, args=(pod,), daemon=True) for pod in pods]
    for thread in threads:
        thread.start()
    dispatcher.feed(lines)
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)
    if errors:
        raise errors[0]

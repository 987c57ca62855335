"""The message queue shared by the local pods: requeue with backoff, and every line's outcome.

Owns: one queue every pod pulls from (as replicas pull from one actor
queue), requeueing a message whose handler hit a compare-and-swap conflict
after an exponential backoff with full jitter, reporting failures with the
input line number (and the handler's traceback), and writing outputs as
JSON lines.

A transient error (the handler raised ConnectionError or TimeoutError: a
connector or backend briefly gone, a 503 while a connector drains) and a
crash of the handler process requeue the message the same way; each kind of
failed attempt has its own limit. A failure that ended a write whose outcome
the runtime could not learn within the mount's timeout (it may have been
applied) is not requeued: the line fails as "outcome unknown". Every input line ends applied or failed
with its reason, and the summary at the end accounts for all of them.

A message settles exactly once: its outputs are written only by the attempt
that completed, so the messages reported applied are the handler calls that
completed, the number a test of the state compares with. Whether a failed
attempt changed state before it failed is not known here (a write whose
reply was lost); retrying it is safe when the handler's writes are
conditional or idempotent.

Must not: know how pods run handlers (a pod answers each message with its
outputs, an error, or that its process died; a pod that raises is lost).
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

# Line numbers the summary names before it says how many more failed.
SUMMARY_LINES = 20


class HandlesMessages(Protocol):
    def handle(self, message_id: int, payload: dict[str, Any]) -> dict[str, Any]:
        """``{"outputs"}``, ``{"error", "conflict", "transient", "outcome_unknown", "traceback"}``
        or ``{"crashed"}``.

        ``message_id`` is the message's input line: the same for every attempt.
        """
        ...


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 0.05
    cap: float = 2.0
    max_attempts: int = 10  # attempts ending in a CAS conflict
    max_transient_attempts: int = 20  # attempts ending in ConnectionError or TimeoutError
    max_crashes: int = 3  # attempts that killed the handler process

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter backoff before attempt ``attempt + 1``."""
        return rng.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class _Kind:
    """A kind of failed attempt that is retried."""

    name: str
    limit: str  # the RetryPolicy field that bounds it
    counter: str  # the Summary field that counts its requeues
    option: str  # the command-line option that sets the limit
    requeued: str  # the summary's words for its requeues


CONFLICT = _Kind("conflict", "max_attempts", "conflicts", "--max-attempts", "after CAS conflicts")
TRANSIENT = _Kind(
    "transient",
    "max_transient_attempts",
    "transient",
    "--max-transient-attempts",
    "after transient errors",
)
CRASH = _Kind("crash", "max_crashes", "crashes", "--max-crashes", "after handler process crashes")
KINDS = (CONFLICT, TRANSIENT, CRASH)


@dataclass(order=True)
class _Message:
    ready_at: float
    seq: int
    line: int = field(compare=False)
    payload: dict[str, Any] = field(compare=False)
    attempt: int = field(compare=False, default=1)
    failures: dict[str, int] = field(compare=False, default_factory=dict)  # kind -> attempts


@dataclass
class Summary:
    lines: int = 0  # input lines read (blank ones are not messages and are skipped)
    messages: int = 0  # lines that were JSON objects
    applied: int = 0  # messages whose handler call completed
    outputs: int = 0
    failed: int = 0
    failed_lines: list[int] = field(default_factory=list)
    conflicts: int = 0  # requeues after a CAS conflict
    transient: int = 0  # requeues after ConnectionError or TimeoutError
    crashes: int = 0  # requeues after the handler process died


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
        self._pods = 0  # pods serving; when the last is lost the run is aborted
        self._input_done = False
        self._last_line = 0
        self._aborted: str | None = None  # why no message can run any more
        self._stopped = False  # interrupted: nothing more is handed out or reported
        self._rng = random.Random(seed)
        self._print_lock = threading.Lock()

    @property
    def aborted(self) -> str | None:
        return self._aborted

    def serving(self, pods: int) -> None:
        """``pods`` pods are about to serve: the run is aborted only when all of them are lost."""
        with self._cond:
            self._pods += pods

    # -- input ------------------------------------------------------------

    def feed(self, lines: Iterable[str]) -> None:
        """Queue every JSON line; report malformed ones. Marks the input as finished."""
        try:
            for number, line in enumerate(lines, start=1):
                if self._aborted is not None or self._stopped:
                    break  # nothing can run it: stop reading rather than block on the input
                self._last_line = number
                if not line.strip():
                    continue
                self.summary.lines += 1
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

    # -- the queue ----------------------------------------------------------

    def _finished(self) -> bool:
        return self._input_done and not self._heap and self._in_flight == 0

    def _next(self) -> _Message | None:
        with self._cond:
            while True:
                if self._aborted is not None or self._stopped:
                    return None
                if self._heap:
                    wait = self._heap[0].ready_at - time.monotonic()
                    if wait <= 0:
                        self._in_flight += 1
                        return heapq.heappop(self._heap)
                    self._cond.wait(wait)
                elif self._finished():
                    return None
                else:
                    self._cond.wait()

    def _done(self, requeue: _Message | None = None) -> None:
        with self._cond:
            self._in_flight -= 1
            if requeue is not None:
                heapq.heappush(self._heap, requeue)
            self._cond.notify_all()

    def wait(self) -> None:
        """Block until every message settled or the run was aborted (Ctrl-C still interrupts)."""
        with self._cond:
            while self._aborted is None and not self._finished():
                self._cond.wait(0.2)

    def stop(self) -> None:
        """Interrupted: hand out nothing more and report nothing more (pods are being stopped)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _abort(self, reason: str) -> None:
        """No pod is left: every queued message fails with ``reason``; the input is not read on."""
        with self._cond:
            # Reported before the run is marked aborted, which ends wait() and prints the summary.
            for message in sorted(self._heap, key=lambda m: m.line):
                self._fail(message.line, f"not run: {reason}")
            self._heap.clear()
            self._aborted = reason
            self._cond.notify_all()

    # -- workers ----------------------------------------------------------

    def serve(self, pod: HandlesMessages) -> None:
        """Pull messages until the input is exhausted; run in one thread per pod.

        A pod that raises is lost: its message goes back to the queue
        untouched for the other pods, and when no pod is left the run is
        aborted.
        """
        while (message := self._next()) is not None:
            try:
                reply = pod.handle(message.line, message.payload)
                requeue = self._settle(message, reply)
            except Exception as exc:
                self._lose(message, exc)
                return
            self._done(requeue)

    def _lose(self, message: _Message, exc: Exception) -> None:
        with self._cond:
            self._in_flight -= 1
            if self._stopped:
                return  # the pod was stopped by the interrupt; its message is unfinished
            self._pods -= 1
            left = self._pods
            message.ready_at = time.monotonic()
            heapq.heappush(self._heap, message)
            self._cond.notify_all()
        self._note(f"{exc}; {left} pod{'s' if left != 1 else ''} left")
        if left == 0:
            self._abort(f"no pod left ({exc})")

    def _settle(self, message: _Message, reply: dict[str, Any]) -> _Message | None:
        """Write a message's outputs, or decide whether its failed attempt is retried."""
        if "outputs" in reply:
            with self._print_lock:
                for output in reply["outputs"]:
                    self.out.write(json.dumps(output, ensure_ascii=False) + "\n")
                self.out.flush()
                self.summary.outputs += len(reply["outputs"])
                self.summary.applied += 1
            return None
        if self._stopped:
            return None  # an attempt cut short by the interrupt tells nothing
        detail = reply.get("error", "unknown error")
        kind = None
        if reply.get("outcome_unknown"):
            # Unlike a queue, which would redeliver it: a write of this attempt
            # may have been applied, so running it again could apply it twice.
            self._fail(
                message.line,
                f"outcome unknown, not retried (a write may have been applied): {detail}",
                reply.get("traceback"),
            )
            return None
        if reply.get("crashed"):
            kind, detail = CRASH, reply["crashed"]
        elif reply.get("conflict"):
            kind = CONFLICT
        elif reply.get("transient"):
            kind = TRANSIENT
        if kind is None:
            self._fail(message.line, detail, reply.get("traceback"))
            return None
        count = message.failures.get(kind.name, 0) + 1
        limit: int = getattr(self.policy, kind.limit)
        if count >= limit:
            self._fail(message.line, _gave_up(kind, count, detail), reply.get("traceback"))
            return None
        with self._print_lock:
            setattr(self.summary, kind.counter, getattr(self.summary, kind.counter) + 1)
        if kind is CRASH:
            self._note(
                f"line {message.line}: the handler process {detail} "
                f"(crash {count} of {limit}); restarting it and retrying the message"
            )
        delay = self.policy.delay(message.attempt, self._rng)
        return _Message(
            time.monotonic() + delay,
            next(self._seq),
            message.line,
            message.payload,
            message.attempt + 1,
            {**message.failures, kind.name: count},
        )

    # -- reporting ------------------------------------------------------------

    def _note(self, text: str) -> None:
        with self._print_lock:
            if not self._stopped:
                self.err.write(f"asya-state run: {text}\n")
                self.err.flush()

    def _fail(self, line: int, detail: str, traceback: str | None = None) -> None:
        with self._print_lock:
            self.summary.failed += 1
            self.summary.failed_lines.append(line)
            self.err.write(f"asya-state run: line {line}: {detail}\n")
            if traceback:
                # Already cut to the handler's frames by the worker: shown whole.
                self.err.write(textwrap.indent(traceback.rstrip() + "\n", "    "))
            self.err.flush()

    def report(self, *, interrupted: bool = False) -> None:
        """The summary on stderr: how many lines were applied, which failed, what was requeued."""
        s = self.summary
        with self._print_lock:
            failed = sorted(s.failed_lines)
            named = ", ".join(map(str, failed[:SUMMARY_LINES]))
            if len(failed) > SUMMARY_LINES:
                named += f" and {len(failed) - SUMMARY_LINES} more"
            text = f"{s.lines} line{'s' if s.lines != 1 else ''}: {s.applied} applied, {s.failed} failed"
            if failed:
                text += f" (line{'s' if len(failed) > 1 else ''} {named})"
            unfinished = s.lines - s.applied - s.failed
            if unfinished:
                text += f", {unfinished} not finished"
            if interrupted:
                text = "interrupted after " + text
            elif self._aborted is not None and not self._input_done:
                text += f"; the input was not read past line {self._last_line}"
            requeues = [
                f"{getattr(s, kind.counter)} {kind.requeued}"
                for kind in KINDS
                if getattr(s, kind.counter)
            ]
            if requeues:
                text += "; requeued " + ", ".join(requeues)
            self.err.write(f"asya-state run: {text}\n")
            self.err.flush()


def _gave_up(kind: _Kind, count: int, detail: str) -> str:
    if kind is CONFLICT:
        return f"gave up after {count} attempts on CAS conflicts: {detail}"
    if kind is TRANSIENT:
        return f"gave up after {count} transient errors ({kind.option}): {detail}"
    times = f"{count} time{'s' if count != 1 else ''}"
    return (
        f"gave up: the handler process died {times} running it ({kind.option}); "
        f"the last time it {detail}"
    )


def run_pods(dispatcher: Dispatcher, pods: list[HandlesMessages], lines: Iterable[str]) -> None:
    """Feed ``lines`` to ``pods`` concurrently; returns when every message settled or no pod is left.

    The input is read in its own thread, so a run whose pods are all lost
    ends without waiting for more input; an interrupt stops the dispatcher
    (nothing more is handed out or reported) and propagates.
    """
    dispatcher.serving(len(pods))
    threads = [threading.Thread(target=dispatcher.serve, args=(pod,), daemon=True) for pod in pods]
    for thread in threads:
        thread.start()
    feeder = threading.Thread(target=dispatcher.feed, args=(lines,), daemon=True)
    feeder.start()
    try:
        dispatcher.wait()
    except BaseException:
        dispatcher.stop()
        raise
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)

"""What one handler call, in one thread or asyncio task, last saw of each key.

Owns: the memory behind compare-and-set as the handler sees it, and its
scopes. A write to a key read at revision R is conditional on R; a write to
a key read as missing is create-only; a key not seen in the current scope is
written unconditionally. ``forget`` drops a key after a conflict or a write
whose outcome is unknown (mount_client.py decides which), so the next attempt
starts from what it reads, not from a revision that can never match again.

Scope, two rules:

- One handler call. ``revision_scope()`` (a context manager) and
  ``scoped(function)`` (a decorator for every handler shape) start a fresh
  memory and restore the previous one afterwards. The runtime wraps the
  handler named by ``ASYA_HANDLER`` this way (handler.py), so a long-lived
  pod calling it message after message never carries a revision from one
  message into the next: a requeued message starts fresh, and a message that
  overwrites a key without reading it is not conditional on what an earlier
  message read.
- One thread or asyncio task. The memory sits in a ContextVar, but contexts
  are copied into every asyncio task, ``asyncio.to_thread`` call and (from
  Python 3.14, optionally) new thread, and a copy refers to the same memory.
  Sharing it would lend one task's revision to another: two tasks read
  revision R, the first writes R -> S and remembers S in the shared memory,
  and the second's write, which should fail on R, succeeds on S; an update is
  lost silently. So the memory is tagged with its owner (thread ident and the
  current asyncio task); whoever finds a memory it does not own starts its
  own. A task or thread started inside a handler call therefore begins with
  an empty memory: read a key in the task or thread that writes it
  (``await asyncio.to_thread(update)`` with ``update`` doing both). A copy of
  the creator's memory was considered and rejected: the copy never learns
  the creator's later writes nor the creator the copy's, so a task that read
  a key and then writes it twice through ``to_thread`` would conflict on the
  second write on every attempt, forever.

Generators and async generators do not carry a context of their own: their
steps run in the caller's. ``scoped`` sets the call's memory around each
step (and hands it to whichever thread or task runs that step, since the
steps of one generator never run at the same time), so a handler that reads
before ``yield`` and writes after it keeps its condition.

Cost: every remember/recall asks who runs: the thread ident, and, only once
asyncio has been imported, the running loop and its current task. Measured
with timeit on the 2-core benchmark machine (Python 3.11), a recall takes
0.21 µs outside a loop (0.15 µs before owners were checked) and 0.50 µs
inside a task (3.11's ``asyncio.current_task`` is Python code), against
~100 µs for the request it conditions. Owners compare by task id, not by a
reference: holding the task would keep a finished task (and its exception)
alive in a cycle through its own context. An id is reused only after its
task is gone, and a new task never starts in a dead task's context unless
code passes that context explicitly.

Must not: decide which conditions a connector supports (mount_client.py does)
or import asyncio (a process that never imported it has no tasks).
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, TypeVar

# Marker for "read, and it did not exist".
MISSING = ""

F = TypeVar("F", bound=Callable[..., Any])


class _Memory:
    """The revisions of one scope, and the thread and task allowed to use them."""

    __slots__ = ("seen", "task", "thread")

    def __init__(self) -> None:
        self.thread = self.task = -1  # nobody's until adopted
        self.seen: dict[tuple[str, str], str] = {}

    def adopt(self) -> None:
        """Hand the memory to whoever runs now (the next step of a generator)."""
        self.thread, self.task = _get_ident(), _current_task()

    def enter(self) -> Token[_Memory | None]:
        self.adopt()
        return _memory.set(self)


_memory: ContextVar[_Memory | None] = ContextVar("asya_state_revisions", default=None)
_get_ident = threading.get_ident

# asyncio's running-loop and current-task lookups, bound once asyncio is imported.
_running_loop: Callable[[], Any] | None = None
_task_of: Callable[[Any], Any] = id  # asyncio.current_task once bound


def _current_task() -> int:
    """An id of the asyncio task running in this thread: 0 outside a loop."""
    running = _running_loop if _running_loop is not None else _bind_asyncio()
    if running is None:
        return 0
    loop = running()
    # Outside a task (a loop callback) this is id(None): the thread's own memory.
    return 0 if loop is None else id(_task_of(loop))


def _bind_asyncio() -> Callable[[], Any] | None:
    global _running_loop, _task_of
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None  # never imported: no task can exist
    running: Callable[[], Any] | None = getattr(asyncio, "_get_running_loop", None)
    current: Callable[[Any], Any] | None = getattr(asyncio, "current_task", None)
    if running is None or current is None:
        return None  # still being imported by another thread
    _task_of = current
    _running_loop = running
    return running


def _seen() -> dict[tuple[str, str], str]:
    memory = _memory.get()
    # _current_task() inlined: this runs on every read, write and stat.
    running = _running_loop if _running_loop is not None else _bind_asyncio()
    loop = None if running is None else running()
    task = 0 if loop is None else id(_task_of(loop))
    thread = _get_ident()
    if memory is None or memory.task != task or memory.thread != thread:
        memory = _Memory()
        memory.thread, memory.task = thread, task
        _memory.set(memory)
    return memory.seen


def remember(mount: str, key: str, etag: str | None) -> None:
    """Record the quoted ETag read or written for ``key``; None means the key is missing."""
    _seen()[(mount, key)] = MISSING if etag is None else etag


def recall(mount: str, key: str) -> str | None:
    """The remembered ETag, MISSING, or None when this scope never saw the key."""
    return _seen().get((mount, key))


def forget(mount: str, key: str) -> None:
    """Drop what this scope saw of ``key``: its next write is unconditional until it is read."""
    _seen().pop((mount, key), None)


def _leave(token: Token[_Memory | None]) -> None:
    try:
        _memory.reset(token)
    except ValueError:
        # The token was made in another context (a coroutine driven from
        # several); the owner check keeps a foreign memory from being used.
        old = token.old_value
        _memory.set(None if old is Token.MISSING else old)


class revision_scope:
    """A fresh revision memory for the ``with`` block; the previous one afterwards.

    For runtimes that call handlers their own way. Enter it in the thread or
    task that runs the handler (inside the coroutine for async code).
    """

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = _Memory().enter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _leave(self._token)


def scoped(function: F) -> F:
    """Wrap a handler so that every call of it gets a fresh revision memory.

    Keeps the handler's shape, so ``inspect.iscoroutinefunction``,
    ``isgeneratorfunction`` and ``isasyncgenfunction`` answer as for the
    handler, and its metadata (``functools.wraps``). A plain function that
    returns a coroutine or a generator gets its result scoped too, with the
    same memory. Wrapping twice is a no-op.
    """
    if getattr(function, "__asya_scoped__", False):
        return function
    wrapper: Callable[..., Any]
    if inspect.isasyncgenfunction(function):
        wrapper = _async_generator_wrapper(function, None)
    elif inspect.iscoroutinefunction(function):
        wrapper = _coroutine_wrapper(function)
    elif inspect.isgeneratorfunction(function):
        wrapper = _generator_wrapper(function)
    else:
        wrapper = _plain_wrapper(function)
    functools.update_wrapper(wrapper, function)
    vars(wrapper)["__asya_scoped__"] = True
    return wrapper  # type: ignore[return-value]


def _plain_wrapper(function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        memory = _Memory()
        token = memory.enter()
        try:
            result = function(*args, **kwargs)
        finally:
            _leave(token)
        # What the caller runs later still belongs to this call.
        if inspect.iscoroutine(result):
            return _scoped_coroutine(memory, result)
        if inspect.isgenerator(result):
            return _scoped_generator(memory, result)
        if inspect.isasyncgen(result):
            return _async_generator_wrapper(lambda: result, memory)()
        return result

    return wrapper


def _coroutine_wrapper(function: Callable[..., Any]) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        # Set inside the coroutine, so the memory belongs to the task running it.
        token = _Memory().enter()
        try:
            return await function(*args, **kwargs)
        finally:
            _leave(token)

    return wrapper


async def _scoped_coroutine(memory: _Memory, coroutine: Coroutine[Any, Any, Any]) -> Any:
    token = memory.enter()
    try:
        return await coroutine
    finally:
        _leave(token)


def _generator_wrapper(function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return (yield from _scoped_generator(_Memory(), function(*args, **kwargs)))

    return wrapper


def _scoped_generator(memory: _Memory, generator: Generator[Any, Any, Any]) -> Any:
    """Drive ``generator`` step by step with ``memory`` set around each step.

    ``yield from`` would pass send/throw/close straight through without a
    chance to set the memory, so this loop does the delegation itself.
    """
    sent: Any = None
    thrown: BaseException | None = None
    while True:
        token = memory.enter()
        try:
            item = generator.send(sent) if thrown is None else generator.throw(thrown)
        except StopIteration as stop:
            return stop.value
        finally:
            _leave(token)
        thrown = None
        try:
            sent = yield item
        except GeneratorExit:
            token = memory.enter()
            try:
                generator.close()
            finally:
                _leave(token)
            raise
        except BaseException as exc:
            thrown, sent = exc, None


def _async_generator_wrapper(
    function: Callable[..., Any], memory: _Memory | None
) -> Callable[..., AsyncGenerator[Any, Any]]:
    """An async generator function driving ``function``'s generator with the memory set per step.

    ``memory`` is the call's memory when a plain function returned the
    generator; None makes each call start a fresh one.
    """

    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        scope = _Memory() if memory is None else memory
        generator = function(*args, **kwargs)
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            token = scope.enter()
            try:
                if thrown is None:
                    item = await generator.asend(sent)
                else:
                    item = await generator.athrow(thrown)
            except StopAsyncIteration:
                return
            finally:
                _leave(token)
            thrown = None
            try:
                sent = yield item
            except GeneratorExit:
                token = scope.enter()
                try:
                    await generator.aclose()
                finally:
                    _leave(token)
                raise
            except BaseException as exc:
                thrown, sent = exc, None

    return wrapper

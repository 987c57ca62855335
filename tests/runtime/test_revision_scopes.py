"""Revision scopes in one process: per handler call, per thread and asyncio task, and what forgets.

The memory is observed through ``revisions.recall`` (what the next write of
a key would be conditional on) and, where the contract is about outcomes,
through real writes on fs-buffered-cas (``/cas``). The handler's import hook
is exercised on modules written into a temporary directory.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import json
import sys
import threading
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import asya_state_runtime
from asya_state_runtime import revisions, transport
from tests.runtime.conftest import SMALL_LIMIT, Connectors, run_handler

MOUNT = "m"


def seen(key: str = "k") -> str | None:
    return revisions.recall(MOUNT, key)


@pytest.fixture(autouse=True)
def own_scope() -> Iterator[None]:
    with asya_state_runtime.revision_scope():
        yield


# -- scopes ------------------------------------------------------------------------


def test_a_scope_starts_empty_and_gives_the_previous_memory_back() -> None:
    revisions.remember(MOUNT, "k", '"outer"')
    with asya_state_runtime.revision_scope():
        assert seen() is None, "a scope never sees what was read before it"
        revisions.remember(MOUNT, "k", '"inner"')
        assert seen() == '"inner"'
    assert seen() == '"outer"'


def test_a_failing_scope_gives_the_previous_memory_back() -> None:
    revisions.remember(MOUNT, "k", '"outer"')

    def fails() -> None:
        with asya_state_runtime.revision_scope():
            revisions.remember(MOUNT, "k", '"inner"')
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fails()
    assert seen() == '"outer"'


def test_forget_drops_one_key() -> None:
    revisions.remember(MOUNT, "k", '"a"')
    revisions.remember(MOUNT, "other", None)
    revisions.forget(MOUNT, "k")
    assert seen() is None
    assert seen("other") == revisions.MISSING


# -- per thread and per task ---------------------------------------------------------


def test_tasks_of_one_loop_do_not_share_revisions() -> None:
    async def task(name: str, ready: asyncio.Barrier) -> tuple[str | None, str | None]:
        before = seen()
        revisions.remember(MOUNT, "k", f'"{name}"')
        await ready.wait()  # every task has remembered before any looks again
        return before, seen()

    async def main() -> list[tuple[str | None, str | None]]:
        revisions.remember(MOUNT, "k", '"parent"')
        ready = asyncio.Barrier(4)
        results = await asyncio.gather(*(task(str(i), ready) for i in range(4)))
        assert seen() == '"parent"', "children never write into the parent's memory"
        return results

    results = asyncio.run(main())
    assert results == [(None, f'"{i}"') for i in range(4)]


def test_to_thread_calls_and_threads_start_their_own_memory() -> None:
    def remember_then_look(name: str) -> tuple[str | None, str | None]:
        before = seen()
        revisions.remember(MOUNT, "k", f'"{name}"')
        return before, seen()

    async def main() -> list[tuple[str | None, str | None]]:
        revisions.remember(MOUNT, "k", '"task"')
        results = await asyncio.gather(
            *(asyncio.to_thread(remember_then_look, str(i)) for i in range(3))
        )
        assert seen() == '"task"'
        return list(results)

    assert asyncio.run(main()) == [(None, f'"{i}"') for i in range(3)]

    revisions.remember(MOUNT, "k", '"main"')
    found: list[tuple[str | None, str | None]] = []
    thread = threading.Thread(target=lambda: found.append(remember_then_look("thread")))
    thread.start()
    thread.join()
    assert found == [(None, '"thread"')]
    assert seen() == '"main"'


# -- scoped handlers keep their shape --------------------------------------------------------


def plain(payload: dict[str, Any]) -> dict[str, Any]:
    """A sync handler."""
    before = seen()
    revisions.remember(MOUNT, "k", '"plain"')
    return {"before": before}


async def coroutine(payload: dict[str, Any]) -> dict[str, Any]:
    """An async handler."""
    before = seen()
    revisions.remember(MOUNT, "k", '"coroutine"')
    await asyncio.sleep(0)
    return {"before": before, "after": seen()}


def generator(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A generator handler."""
    before = seen()
    revisions.remember(MOUNT, "k", '"generator"')
    yield {"before": before}
    yield {"after_yield": seen()}


async def async_generator(payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """An async generator handler, the seeds' canonical shape."""
    before = seen()
    revisions.remember(MOUNT, "k", '"async_generator"')
    await asyncio.sleep(0)
    yield {"before": before}
    yield {"after_yield": seen()}


SHAPES = [plain, coroutine, generator, async_generator]
PREDICATES = [
    inspect.iscoroutinefunction,
    inspect.isgeneratorfunction,
    inspect.isasyncgenfunction,
]


@pytest.mark.parametrize("handler", SHAPES, ids=lambda h: h.__name__)
def test_scoped_keeps_the_shape_runtimes_dispatch_on(handler: Callable[..., Any]) -> None:
    wrapped = asya_state_runtime.scoped(handler)
    assert [p(wrapped) for p in PREDICATES] == [p(handler) for p in PREDICATES]
    assert (wrapped.__name__, wrapped.__doc__, wrapped.__module__) == (
        handler.__name__,
        handler.__doc__,
        handler.__module__,
    )
    assert inspect.signature(wrapped) == inspect.signature(handler)
    assert asya_state_runtime.scoped(wrapped) is wrapped, "wrapping twice is a no-op"


def call(handler: Callable[..., Any], payload: dict[str, Any]) -> list[Any]:
    """Call a handler the way an actor runtime does, in one long-lived task."""

    async def run() -> list[Any]:
        if inspect.isasyncgenfunction(handler):
            return [item async for item in handler(payload)]
        if inspect.iscoroutinefunction(handler):
            return [await handler(payload)]
        if inspect.isgeneratorfunction(handler):
            return list(handler(payload))
        return [handler(payload)]

    return asyncio.run(run())


EXPECTED = {
    plain: [{"before": None}],
    coroutine: [{"before": None, "after": '"coroutine"'}],
    generator: [{"before": None}, {"after_yield": '"generator"'}],
    async_generator: [{"before": None}, {"after_yield": '"async_generator"'}],
}


@pytest.mark.parametrize("handler", SHAPES, ids=lambda h: h.__name__)
def test_every_call_starts_fresh_and_leaves_the_caller_alone(
    handler: Callable[..., Any],
) -> None:
    """Nothing read before a call or in an earlier call is seen; across awaits and yields it is."""
    wrapped = asya_state_runtime.scoped(handler)
    revisions.remember(MOUNT, "k", '"caller"')
    assert call(wrapped, {}) == EXPECTED[handler]
    assert call(wrapped, {}) == EXPECTED[handler]
    assert seen() == '"caller"'


def test_between_steps_of_a_generator_the_caller_has_its_own_memory() -> None:
    revisions.remember(MOUNT, "k", '"caller"')
    steps = asya_state_runtime.scoped(generator)({})
    assert next(steps) == {"before": None}
    assert seen() == '"caller"', "the generator's memory is set only while it runs"
    assert next(steps) == {"after_yield": '"generator"'}


def test_send_throw_and_close_reach_a_scoped_generator() -> None:
    log: list[Any] = []

    def echo() -> Iterator[Any]:
        revisions.remember(MOUNT, "k", '"echo"')
        try:
            while True:
                try:
                    got = yield seen()
                    log.append(("sent", got))
                except ValueError as exc:
                    log.append(("thrown", str(exc), seen()))
        finally:
            log.append(("closed", seen()))

    steps = asya_state_runtime.scoped(echo)()
    assert next(steps) == '"echo"'
    assert steps.send(1) == '"echo"'
    assert steps.throw(ValueError("boom")) == '"echo"'
    steps.close()
    assert log == [("sent", 1), ("thrown", "boom", '"echo"'), ("closed", '"echo"')]


def test_a_scoped_generator_returns_its_value_and_raises_its_errors() -> None:
    def returns() -> Iterator[int]:
        yield 1
        return 7

    def fails() -> Iterator[int]:
        yield 1
        raise KeyError("late")

    steps = asya_state_runtime.scoped(returns)()
    next(steps)
    with pytest.raises(StopIteration) as stop:
        next(steps)
    assert stop.value.value == 7
    steps = asya_state_runtime.scoped(fails)()
    next(steps)
    with pytest.raises(KeyError, match="late"):
        next(steps)


def test_asend_athrow_and_aclose_reach_a_scoped_async_generator() -> None:
    log: list[Any] = []

    async def echo() -> AsyncIterator[Any]:
        revisions.remember(MOUNT, "k", '"echo"')
        try:
            while True:
                try:
                    got = yield seen()
                    await asyncio.sleep(0)
                    log.append(("sent", got))
                except ValueError as exc:
                    log.append(("thrown", str(exc), seen()))
        finally:
            log.append(("closed", seen()))

    async def main() -> None:
        steps = asya_state_runtime.scoped(echo)()
        assert await steps.asend(None) == '"echo"'
        assert await steps.asend(1) == '"echo"'
        assert seen() is None, "outside a step the caller's memory is back"
        assert await steps.athrow(ValueError("boom")) == '"echo"'
        await steps.aclose()

    asyncio.run(main())
    assert log == [("sent", 1), ("thrown", "boom", '"echo"'), ("closed", '"echo"')]


def test_a_plain_function_returning_a_coroutine_gets_it_scoped() -> None:
    async def body() -> str | None:
        await asyncio.sleep(0)
        return seen()

    def handler() -> Any:
        revisions.remember(MOUNT, "k", '"sync part"')
        return body()

    async def main() -> str | None:
        result: str | None = await asya_state_runtime.scoped(handler)()
        return result

    revisions.remember(MOUNT, "k", '"caller"')
    assert asyncio.run(main()) == '"sync part"', "one call, one memory"


def test_methods_are_scoped_per_call_on_every_instance() -> None:
    class Actor:
        def __init__(self) -> None:
            self.calls = 0

        @asya_state_runtime.scoped
        async def process(self, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
            self.calls += 1
            before = seen()
            revisions.remember(MOUNT, "k", '"method"')
            yield {"before": before, "calls": self.calls}

    actor = Actor()
    assert inspect.isasyncgenfunction(actor.process)
    assert call(actor.process, {}) == [{"before": None, "calls": 1}]
    assert call(actor.process, {}) == [{"before": None, "calls": 2}]


# -- the ASYA_HANDLER import hook -----------------------------------------------------------

HANDLER_MODULE = """
import asyncio
from asya_state_runtime import revisions

def before():
    found = revisions.recall("m", "k")
    revisions.remember("m", "k", '"handler"')
    return found

def process(payload):
    return {"before": before()}

async def process_async(payload):
    await asyncio.sleep(0)
    return {"before": before()}

class Actor:
    def process(self, payload):
        return {"before": before()}

    @staticmethod
    def static(payload):
        return {"before": before()}

class Child(Actor):
    pass

class Callable:
    def __call__(self, payload):
        return {"before": before()}

instance = Callable()
"""


@pytest.fixture
def handler_dir(tmp_path: Path) -> Iterator[Path]:
    package = tmp_path / "scoped_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "handlers.py").write_text(HANDLER_MODULE)
    (tmp_path / "scoped_flat.py").write_text(HANDLER_MODULE)
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        asya_state_runtime.unscope_handler()
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("scoped_")]:
            del sys.modules[name]


def resolve(module_name: str, *attributes: str) -> Any:
    target: Any = __import__(module_name, fromlist=["_"])
    for name in attributes:
        target = getattr(target, name)
        if inspect.isclass(target):
            target = target()
    return target


SPECS = [
    ("scoped_flat", ("process",)),
    ("scoped_flat", ("process_async",)),
    ("scoped_flat", ("Actor", "process")),
    ("scoped_flat", ("Actor", "static")),
    ("scoped_flat", ("Child", "process")),
    ("scoped_flat", ("instance",)),
    ("scoped_flat", ("Callable",)),
    ("scoped_pkg.handlers", ("process",)),
    ("scoped_pkg.handlers", ("Actor", "process")),
]


@pytest.mark.parametrize("imported_first", [False, True], ids=["hook", "already-imported"])
@pytest.mark.parametrize(("module_name", "attributes"), SPECS, ids=lambda s: str(s))
def test_the_named_handler_starts_fresh_on_every_call(
    handler_dir: Path, module_name: str, attributes: tuple[str, ...], imported_first: bool
) -> None:
    spec = ".".join((module_name, *attributes))
    if imported_first:
        resolve(module_name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asya_state_runtime.scope_handler(spec)
        handler = resolve(module_name, *attributes)
    revisions.remember(MOUNT, "k", '"runtime"')
    assert call(handler, {}) == call(handler, {}) == [{"before": None}]
    assert seen() == '"runtime"'


def test_a_reimported_handler_module_is_scoped_again(handler_dir: Path) -> None:
    asya_state_runtime.scope_handler("scoped_flat.process")
    first = resolve("scoped_flat", "process")
    del sys.modules["scoped_flat"]
    second = resolve("scoped_flat", "process")
    assert second is not first
    assert call(second, {}) == call(second, {}) == [{"before": None}]


def test_a_handler_spec_that_names_nothing_changes_nothing(handler_dir: Path) -> None:
    for spec in ("scoped_flat.missing", "not a spec", "scoped_flat"):
        asya_state_runtime.scope_handler(spec)
    module = resolve("scoped_flat")
    assert not hasattr(module.process, "__wrapped__")
    asya_state_runtime.unscope_handler()
    assert not any(type(f).__name__ == "HandlerFinder" for f in sys.meta_path)


def test_other_classes_sharing_a_base_are_not_wrapped(handler_dir: Path) -> None:
    asya_state_runtime.scope_handler("scoped_flat.Child.process")
    module = resolve("scoped_flat")
    assert hasattr(module.Child.process, "__wrapped__")
    assert not hasattr(module.Actor.process, "__wrapped__")


# -- what forgets a revision, against fs-buffered-cas --------------------------------------


def load(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def save(path: str, value: object) -> None:
    with open(path, "w") as f:
        json.dump(value, f)


def other_pod_writes(connectors: Connectors, path: str, value: object) -> None:
    run_handler(connectors, f"import json; json.dump({value!r}, open({path!r}, 'w'))")


def test_a_conflict_forgets_the_revision(hooks: Connectors, ns: str) -> None:
    path = f"/cas/{ns}/c.json"
    save(path, 1)
    assert load(path) == 1
    other_pod_writes(hooks, path, 2)
    with pytest.raises(FileExistsError):
        save(path, 3)
    # Still in the same scope: the key is no longer remembered, so a blind
    # write (the handler chose not to read again) is unconditional.
    save(path, 4)
    assert load(path) == 4


def test_an_interrupted_write_does_not_leave_a_stale_revision(
    hooks: Connectors, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write lands but its answer is lost: the next write must not conflict with itself."""
    path = f"/cas/{ns}/lost-answer.json"
    save(path, 1)
    assert load(path) == 1
    finish = transport.Upload.finish

    def lands_then_times_out(upload: transport.Upload) -> transport.Reply:
        finish(upload).read_all()
        raise TimeoutError(110, "did not answer in time", path)

    monkeypatch.setattr(transport.Upload, "finish", lands_then_times_out)
    with pytest.raises(TimeoutError):
        save(path, 2)
    monkeypatch.undo()
    assert run_handler(hooks, f"print(open({path!r}).read())").stdout.strip() == "2"
    save(path, 3)
    assert load(path) == 3


def test_a_refused_write_keeps_the_revision_guarding_the_next(hooks: Connectors, ns: str) -> None:
    """A 4xx other than 409 (here 413) proves nothing was written: the condition still holds."""
    path = f"/small/{ns}/refused.json"
    save(path, 1)
    assert load(path) == 1
    with pytest.raises(OSError, match="HTTP 413") as refused:
        save(path, "x" * (SMALL_LIMIT + 1))
    assert refused.value.errno == errno.EFBIG
    other_pod_writes(hooks, path, 2)
    with pytest.raises(FileExistsError):
        save(path, 3)
    assert load(path) == 2

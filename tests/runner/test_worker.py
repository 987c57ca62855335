"""The handler process's core: resolving spec.handler and every handler shape."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from asya_state_cli.runner.worker import HandlerError, Runner, is_cas_conflict, resolve_handler

SHAPES = textwrap.dedent(
    """
    def returns_dict(p):
        return {"v": p["x"] + 1}

    def returns_none(p):
        return None

    async def async_returns(p):
        return {"v": p["x"] * 2}

    def generates(p):
        for i in range(p["x"]):
            yield {"i": i}

    async def async_generates(p):
        for i in range(p["x"]):
            yield {"i": i}

    def returns_list(p):
        return [1, 2]

    class Counter:
        def __init__(self):
            self.seen = 0

        def process(self, p):
            self.seen += 1
            return {"seen": self.seen}

    class Streamer:
        async def process(self, p):
            yield {"echo": p}
    """
)


@pytest.fixture
def shapes_module(tmp_path: Path) -> Iterator[str]:
    package = tmp_path / "pkg_shapes"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "handlers.py").write_text(SHAPES)
    sys.path.insert(0, str(tmp_path))
    yield "pkg_shapes.handlers"
    sys.path.remove(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("pkg_shapes")]:
        del sys.modules[name]


CASES = [
    ("returns_dict", {"x": 1}, [{"v": 2}], "a sync function's dict is one output"),
    ("returns_none", {"x": 1}, [], "None means no output"),
    ("async_returns", {"x": 3}, [{"v": 6}], "an async function is awaited"),
    ("generates", {"x": 3}, [{"i": 0}, {"i": 1}, {"i": 2}], "each yielded dict is one output"),
    ("async_generates", {"x": 2}, [{"i": 0}, {"i": 1}], "async generators are drained"),
    ("Streamer.process", {"x": 1}, [{"echo": {"x": 1}}], "a class's async generator method"),
]


@pytest.mark.parametrize(
    ("name", "payload", "expected", "reason"), CASES, ids=[c[0] for c in CASES]
)
def test_handler_shapes(
    shapes_module: str, name: str, payload: dict[str, int], expected: list[object], reason: str
) -> None:
    runner = Runner(resolve_handler(f"{shapes_module}.{name}"))
    assert runner.call(payload) == expected, reason


def test_a_class_is_instantiated_once_and_keeps_state(shapes_module: str) -> None:
    runner = Runner(resolve_handler(f"{shapes_module}.Counter.process"))
    assert [runner.call({}) for _ in range(3)] == [[{"seen": 1}], [{"seen": 2}], [{"seen": 3}]]


def test_non_dict_outputs_are_refused(shapes_module: str) -> None:
    with pytest.raises(HandlerError, match="expected a dict"):
        Runner(resolve_handler(f"{shapes_module}.returns_list")).call({})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nodots", "module.function"),
        ("no_such_module_xyz.handler", "cannot import"),
        ("pkg_shapes.handlers.missing", "has no attribute 'missing'"),
        ("pkg_shapes.handlers.Counter.nope", "has no attribute 'nope'"),
        ("bad-name.x", "module.function"),
    ],
)
def test_bad_handler_specs_name_the_problem(shapes_module: str, spec: str, message: str) -> None:
    with pytest.raises(HandlerError, match=message):
        resolve_handler(spec)


def test_cas_conflicts_are_recognised_by_mount() -> None:
    conflict = FileExistsError(17, "changed since read", "/state/shared/counter.json")
    assert is_cas_conflict(conflict, ["/state"])
    assert not is_cas_conflict(conflict, ["/other"])
    assert not is_cas_conflict(FileExistsError(17, "exists", "/tmp/x"), ["/state"])
    assert not is_cas_conflict(ValueError("no"), ["/state"])
    assert not is_cas_conflict(conflict, [])

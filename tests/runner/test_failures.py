"""``asya-state run``: what a failing handler's report says on stderr.

A handler that raises is reported from its own frames down, however deep
inside the runtime the exception started; a handler that cannot be imported
is named with the file and line that failed, and the run exits non-zero.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from .helpers import asya_run

# Eight helpers deep, so the handler's own frame is far above the runtime's:
# a report cut to its last lines would lose it.
DEEP = textwrap.dedent(
    """
    import asyncio
    import json


    def read_state(name):
        with open(f"/state/{name}.json") as f:
            return json.load(f)


    def level1(p): return read_state(p["name"])
    def level2(p): return level1(p)
    def level3(p): return level2(p)
    def level4(p): return level3(p)
    def level5(p): return level4(p)
    def level6(p): return level5(p)
    def level7(p): return level6(p)


    def handle(p):
        return level7(p)


    async def handle_async(p):
        await asyncio.sleep(0)
        try:
            return level7(p)
        except FileNotFoundError as exc:
            raise LookupError(f"no saved state for {p['name']}") from exc
    """
)


def line_of(source: str, text: str, *, after: str = "") -> int:
    """The number of the first line holding ``text`` (after the first holding ``after``)."""
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines) if after in line)
    return next(i for i, line in enumerate(lines, start=1) if i > start and text in line)


def test_a_runtime_error_deep_in_the_handler_shows_every_handler_frame(tmp_path: Path) -> None:
    (tmp_path / "deep.py").write_text(DEEP)
    result = asya_run(
        "deep.handle",
        [{"name": "absent"}],
        handler_path=tmp_path,
        state_dir=tmp_path / "state",
    )
    assert result.status == 1
    path = tmp_path / "deep.py"
    report = result.stderr
    assert "asya-state run: line 1: FileNotFoundError: [Errno 2]" in report
    assert f'File "{path}", line {line_of(DEEP, "return level7(p)")}, in handle\n' in report
    for level in range(1, 8):
        assert f"in level{level}\n" in report
    assert f'File "{path}", line {line_of(DEEP, "with open(")}, in read_state\n' in report
    assert "frames inside the asya-state runtime hidden]" in report
    # The runtime's and the runner's own files are not shown.
    assert "asya_state_runtime" not in report
    assert "asya_state_cli" not in report
    # The traceback ends with the exception; only the run's summary follows it.
    *_, last_of_traceback, summary = report.rstrip().splitlines()
    assert last_of_traceback.strip().startswith(
        "FileNotFoundError: [Errno 2] no object at 'absent.json'"
    )
    assert summary == "asya-state run: 1 line: 0 applied, 1 failed (line 1)"


def test_an_async_handler_shows_its_frames_and_the_chained_cause(tmp_path: Path) -> None:
    (tmp_path / "deep.py").write_text(DEEP)
    result = asya_run(
        "deep.handle_async",
        [{"name": "gone"}],
        handler_path=tmp_path,
        state_dir=tmp_path / "state",
    )
    assert result.status == 1
    path = tmp_path / "deep.py"
    report = result.stderr
    assert "asya-state run: line 1: LookupError: no saved state for gone\n" in report
    assert (
        f'File "{path}", line {line_of(DEEP, "return level7(p)", after="async def")}, in handle_async\n'
        in report
    )
    assert f'File "{path}", line {line_of(DEEP, "raise LookupError")}, in handle_async\n' in report
    assert f'File "{path}", line {line_of(DEEP, "with open(")}, in read_state\n' in report
    assert "The above exception was the direct cause of the following exception" in report
    # Neither the event loop the runner drives the handler with, nor the runner.
    assert "asyncio" not in report.replace("import asyncio", "")
    assert "asya_state_cli" not in report


@pytest.mark.parametrize(
    ("source", "expected", "failing_line"),
    [
        ("x = 1\ndef handle(p)\n    return p\n", "SyntaxError: expected ':'", 2),
        ("import json\nimport no_such_dependency\n", "No module named 'no_such_dependency'", 2),
        ("SETTINGS = {}\nMODEL = SETTINGS['model']\n", "KeyError: 'model'", 2),
        ("from json import no_such_name\n", "cannot import name 'no_such_name'", 1),
    ],
    ids=["syntax-error", "missing-dependency", "error-at-import", "import-error"],
)
def test_a_handler_that_cannot_be_imported_names_the_file_and_line(
    tmp_path: Path, source: str, expected: str, failing_line: int
) -> None:
    (tmp_path / "broken.py").write_text(source)
    result = asya_run("broken.handle", [{"n": 1}], handler_path=tmp_path, mounts=())
    assert result.status == 1
    assert result.outputs == []
    first = result.stderr.splitlines()[0]
    assert first.startswith("asya-state run: cannot import handler 'broken.handle': ")
    assert expected in first
    assert f'File "{tmp_path / "broken.py"}", line {failing_line}' in result.stderr
    assert "asya_state_cli" not in result.stderr
    assert "importlib" not in result.stderr


def test_a_missing_handler_module_or_function_is_named(tmp_path: Path) -> None:
    (tmp_path / "actor.py").write_text("def handle(p):\n    return p\n")
    missing_module = asya_run("nosuch.handle", [{}], handler_path=tmp_path, mounts=())
    assert missing_module.status == 1
    assert missing_module.stderr == (
        f"asya-state run: cannot import handler 'nosuch.handle': no module 'nosuch'"
        f" in {tmp_path} (--handler-path)\n"
    )
    missing_function = asya_run("actor.hande", [{}], handler_path=tmp_path, mounts=())
    assert missing_function.status == 1
    assert missing_function.stderr == (
        f"asya-state run: cannot import handler 'actor.hande': 'actor'"
        f" ({tmp_path / 'actor.py'}) has no attribute 'hande'\n"
    )


def test_a_missing_handler_path_is_named(tmp_path: Path) -> None:
    result = asya_run("actor.handle", [{}], handler_path=tmp_path / "nowhere", mounts=())
    assert result.status == 2
    assert (
        result.stderr == f"asya-state run: --handler-path {tmp_path / 'nowhere'} does not exist\n"
    )

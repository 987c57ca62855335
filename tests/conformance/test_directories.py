"""Conformance: files and directories behave as on a local disk, on every connector.

A directory is a key with objects below it. Writing, appending, copying or
renaming onto one is IsADirectory, and writing below a file is NotADirectory
— never a 409 conflict (which callers retry) and never an object that
shadows the directory. The second half runs the handler's own file API
through the runtime against each connector process: the exceptions a local
disk raises, with messages that say what happened.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import asya_state_runtime
from asya_state_connectors.errors import IsADirectory, NotADirectory, NotFound
from asya_state_connectors.interface import Capability, Kind, ObjectMeta, WriteCondition

from .conftest import Target
from .helpers import chunks_of, get, put


async def names_under(target: Target, prefix: str) -> tuple[list[str], list[str]]:
    page = await target.connector.list(prefix, delimiter="/")
    return [m.key for m in page.entries], page.prefixes


async def test_writing_a_directory_is_refused_and_shadows_nothing(target: Target) -> None:
    child = target.key("dir/child.txt")
    await put(target.connector, child, b"child")
    conditions = [WriteCondition()]
    if target.connector.supports(Capability.CREATE_ONLY):
        conditions.append(WriteCondition(if_none_match=True))
    for condition in conditions:
        with pytest.raises(IsADirectory) as caught:
            await put(target.connector, target.key("dir"), b"shadow", condition=condition)
        assert caught.value.key == target.key("dir")
    assert await names_under(target, target.ns) == ([], [target.key("dir/")])
    with pytest.raises(NotFound):
        await target.connector.stat(target.key("dir"))
    assert await get(target.connector, child) == b"child"


async def test_writing_below_a_file_is_not_a_directory(target: Target) -> None:
    await put(target.connector, target.key("f.txt"), b"file")
    conditions = [WriteCondition()]
    if target.connector.supports(Capability.CREATE_ONLY):
        conditions.append(WriteCondition(if_none_match=True))
    for below in ("f.txt/x", "f.txt/deeper/x"):
        for condition in conditions:
            with pytest.raises(NotADirectory) as caught:
                await put(target.connector, target.key(below), b"child", condition=condition)
            assert caught.value.key == target.key(below)
    assert await names_under(target, target.ns) == ([target.key("f.txt")], [])
    assert await get(target.connector, target.key("f.txt")) == b"file"


async def test_an_overwrite_and_a_sibling_are_not_refused(target: Target) -> None:
    first = await put(target.connector, target.key("a/f.txt"), b"1")
    await put(target.connector, target.key("a/f.txt"), b"2")
    await put(target.connector, target.key("a/f.txt.bak"), b"3")  # a name that extends "f.txt"
    await put(target.connector, target.key("a/g/h.txt"), b"4")
    current = await target.connector.stat(target.key("a/f.txt"))
    assert current.etag != first.etag
    if target.connector.supports(Capability.CAS):
        condition = WriteCondition(if_match=current.etag)
        await put(target.connector, target.key("a/f.txt"), b"5", condition=condition)
        assert await get(target.connector, target.key("a/f.txt")) == b"5"
    assert await names_under(target, target.key("a/")) == (
        [target.key("a/f.txt"), target.key("a/f.txt.bak")],
        [target.key("a/g/")],
    )


async def test_names_with_pattern_characters_match_only_themselves(target: Target) -> None:
    await put(target.connector, target.key("dAB/child"), b"child")
    for name in ("d?B", "d*", "d[A]B", "d\\AB"):
        await put(target.connector, target.key(name), b"a file, not the directory dAB")
    with pytest.raises(NotADirectory):
        await put(target.connector, target.key("d*/x"), b"below a file")
    with pytest.raises(IsADirectory):
        await put(target.connector, target.key("dAB"), b"shadow")


async def test_copy_and_rename_onto_a_directory_or_below_a_file_are_refused(
    target: Target,
) -> None:
    source = target.key("src.txt")
    await put(target.connector, source, b"moving")
    await put(target.connector, target.key("dir/child"), b"child")
    await put(target.connector, target.key("f.txt"), b"file")
    for move in (target.connector.copy, target.connector.rename):
        with pytest.raises(IsADirectory):
            await move(source, target.key("dir"))
        with pytest.raises(NotADirectory):
            await move(source, target.key("f.txt/x"))
        # A missing source comes first: the runtime then moves a directory object by object.
        with pytest.raises(NotFound):
            await move(target.key("missing"), target.key("dir"))
    assert await get(target.connector, source) == b"moving"
    assert await names_under(target, target.ns) == (
        [target.key("f.txt"), source],
        [target.key("dir/")],
    )


async def test_appending_to_a_directory_or_below_a_file_is_refused(target: Target) -> None:
    if not target.connector.supports(Capability.APPEND):
        pytest.skip(f"{target.name} declares no append")
    await put(target.connector, target.key("dir/child"), b"child")
    await put(target.connector, target.key("f.txt"), b"file")
    with pytest.raises(IsADirectory):
        await target.connector.append(target.key("dir"), chunks_of(b"tail"))
    with pytest.raises(NotADirectory):
        await target.connector.append(target.key("f.txt/x"), chunks_of(b"tail"))
    assert await names_under(target, target.ns) == ([target.key("f.txt")], [target.key("dir/")])


async def test_probe_says_what_is_there_a_file_a_directory_or_nothing(target: Target) -> None:
    """What os.path.exists/isfile/isdir ask; a missing key below a file is simply missing."""
    written = await put(target.connector, target.key("p/file.txt"), b"12345")
    found = await target.connector.probe(target.key("p/file.txt"))
    assert isinstance(found, ObjectMeta)
    assert (found.key, found.size, found.etag) == (written.key, 5, written.etag)
    assert await target.connector.probe(target.key("p")) is Kind.DIRECTORY
    for missing in ("p/none", "p/file.txt/below", "p/fil", "nothing/at/all"):
        assert await target.connector.probe(target.key(missing)) is Kind.MISSING, missing


async def test_probe_sees_a_directory_behind_names_that_sort_before_it(target: Target) -> None:
    # "d.bak", "d-old" and "d!" sort between "d" and "d/..."; more of them than
    # one small listing page returns.
    siblings = ["d.bak", "d-old", "d!", *(f"d.{i:02d}" for i in range(12))]
    for name in [*siblings, "d/x", *(f"e.{i:02d}" for i in range(12))]:
        await put(target.connector, target.key(name), b"x")
    assert await target.connector.probe(target.key("d")) is Kind.DIRECTORY
    assert isinstance(await target.connector.probe(target.key("d.bak")), ObjectMeta)
    assert await target.connector.probe(target.key("e")) is Kind.MISSING


# -- through the runtime, as a handler sees it ------------------------------------------


@contextmanager
def mounted(served: Target) -> Iterator[Path]:
    """The runtime installed on this connector's socket; yields the test's directory on it."""
    assert served.socket is not None
    socket = Path(served.socket)
    asya_state_runtime.install(f"{socket.stem}:/state", socket_dir=str(socket.parent))
    try:
        with asya_state_runtime.revision_scope():
            yield Path("/state") / served.ns
    finally:
        asya_state_runtime.uninstall()


def _says(exc: OSError, code: str) -> None:
    """The message names the cause, not 'no detail'."""
    assert code in str(exc), str(exc)
    assert "no detail" not in str(exc)


async def test_reading_a_directory_is_is_a_directory_error(served: Target) -> None:
    with mounted(served) as base:
        (base / "dir").mkdir()
        (base / "dir" / "child.txt").write_text("child")
        for path in (base / "dir", "/state", "/state/"):
            with pytest.raises(IsADirectoryError) as caught:
                open(path).close()
            assert caught.value.errno == errno.EISDIR
        with pytest.raises(IsADirectoryError) as caught:
            (base / "dir").read_bytes()
        _says(caught.value, "is_a_directory")
        with pytest.raises(IsADirectoryError):
            open(f"{base}/dir/").close()


async def test_writing_a_directory_is_refused_and_it_stays_a_directory(served: Target) -> None:
    with mounted(served) as base:
        (base / "dir" / "sub").mkdir(parents=True)
        (base / "dir" / "sub" / "child.txt").write_text("child")
        for mode in ("w", "a", "wb"):
            with pytest.raises(IsADirectoryError) as caught, open(base / "dir", mode) as f:
                f.write("shadow" if "b" not in mode else b"shadow")  # type: ignore[arg-type]
            assert caught.value.filename == str(base / "dir")
        with pytest.raises(IsADirectoryError):
            (base / "dir" / "sub").write_text("shadow")
        assert os.listdir(base) == ["dir"]
        assert os.listdir(base / "dir") == ["sub"]
        assert os.path.isdir(base / "dir")
        assert os.path.isdir(base / "dir" / "sub")
        assert (base / "dir" / "sub" / "child.txt").read_text() == "child"


async def test_a_trailing_slash_on_a_file_is_not_a_directory_error(served: Target) -> None:
    with mounted(served) as base:
        (base / "f.txt").write_text("file")
        for mode in ("r", "rb", "w", "a", "r+"):
            with pytest.raises(NotADirectoryError) as caught:
                open(f"{base}/f.txt/", mode).close()
            assert caught.value.errno == errno.ENOTDIR
        with pytest.raises(NotADirectoryError):
            os.stat(f"{base}/f.txt/")
        assert not os.path.exists(f"{base}/f.txt/")
        assert os.path.isfile(f"{base}/f.txt")
        with pytest.raises(NotADirectoryError):
            os.remove(f"{base}/f.txt/")
        assert (base / "f.txt").read_text() == "file"
        with pytest.raises(FileNotFoundError):
            open(f"{base}/missing/").close()


async def test_a_file_used_as_a_parent_is_not_a_directory_error(served: Target) -> None:
    with mounted(served) as base:
        (base / "f.txt").write_text("file")
        below = base / "f.txt" / "x"
        with pytest.raises(NotADirectoryError) as caught:
            below.write_text("child")
        assert caught.value.filename == str(below)
        _says(caught.value, "not_a_directory")
        with pytest.raises(NotADirectoryError):
            (base / "f.txt" / "deeper" / "x").write_bytes(b"child")
        with pytest.raises(NotADirectoryError):
            below.read_text()
        with pytest.raises(NotADirectoryError) as stat_failure:
            os.stat(below)
        _says(stat_failure.value, "not_a_directory")  # carried by the HEAD answer's headers
        assert not os.path.exists(below)
        assert not os.path.isdir(below)
        assert not os.path.isfile(below)
        assert os.listdir(base) == ["f.txt"]
        assert (base / "f.txt").read_text() == "file"

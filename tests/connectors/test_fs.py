"""Local-directory connector specifics beyond the conformance suite."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from asya_state_connectors.backends.fs.backend import FsBufferedCas
from asya_state_connectors.backends.fs.primitives import DirLock
from asya_state_connectors.errors import ConfigError
from asya_state_connectors.settings import Settings
from tests.conformance.helpers import get, put


async def test_stale_temporary_files_are_swept_at_start_and_fresh_ones_kept(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    stale = tmp_path / "a" / ".asya-tmp-dead"
    fresh = tmp_path / "a" / ".asya-tmp-live"
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"in progress")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    connector = FsBufferedCas.from_settings(Settings({"STATE_DIR": str(tmp_path)}))
    await connector.open()
    assert not stale.exists()
    assert fresh.exists()
    await put(connector, "a/real.txt", b"ok")
    page = await connector.list("a/")
    assert [m.key for m in page.entries] == ["a/real.txt"]
    await connector.close()


async def test_state_prefix_is_a_subdirectory_whatever_the_slashes(tmp_path: Path) -> None:
    for raw in ("p/q", "/p/q/", "p//q/"):
        connector = FsBufferedCas.from_settings(
            Settings({"STATE_DIR": str(tmp_path), "STATE_PREFIX": raw})
        )
        await put(connector, "k.txt", raw.encode())
        assert (tmp_path / "p" / "q" / "k.txt").read_bytes() == raw.encode()
        assert await get(connector, "k.txt") == raw.encode()


async def test_deleting_the_last_object_removes_its_empty_directories(tmp_path: Path) -> None:
    connector = FsBufferedCas.from_settings(Settings({"STATE_DIR": str(tmp_path)}))
    await put(connector, "x/y/z.txt", b"1")
    await connector.delete("x/y/z.txt")
    assert not (tmp_path / "x").exists(), "an empty prefix would still list as a directory"
    assert (await connector.list("")).prefixes == []


@pytest.mark.parametrize("inline_io", ["true", "false"])
async def test_a_writer_held_by_another_writers_lock_does_not_stall_other_requests(
    tmp_path: Path, inline_io: str
) -> None:
    connector = FsBufferedCas.from_settings(
        Settings({"STATE_DIR": str(tmp_path), "STATE_FS_INLINE_IO": inline_io})
    )
    assert connector.inline_io is (inline_io == "true")
    await put(connector, "d/k", b"old")
    await put(connector, "d/other", b"unrelated")
    # Another process's writer, between its condition check and its rename.
    held = DirLock(tmp_path / "d")
    released = threading.Event()

    def release() -> None:
        released.set()
        held.release()

    timer = threading.Timer(1.0, release)
    timer.start()
    try:
        write = asyncio.create_task(put(connector, "d/k", b"new"))
        delete = asyncio.create_task(connector.delete("d/other"))
        # Reads take no lock: they are answered while both writers wait.
        assert await asyncio.wait_for(get(connector, "d/k"), 5) == b"old"
        assert (await connector.stat("d/other")).size == len(b"unrelated")
        assert not released.is_set(), "the read waited for the lock: the event loop was blocked"
        assert (write.done(), delete.done()) == (False, False), "a writer went past a held lock"
        await asyncio.wait_for(asyncio.gather(write, delete), 10)
    finally:
        timer.join()
    assert await get(connector, "d/k") == b"new"
    assert [m.key for m in (await connector.list("d/")).entries] == ["d/k"]
    assert not [p for p in (tmp_path / "d").iterdir() if p.name.startswith(".asya-tmp-")]


async def test_inline_io_refuses_a_value_that_is_not_a_boolean(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="STATE_FS_INLINE_IO"):
        FsBufferedCas.from_settings(
            Settings({"STATE_DIR": str(tmp_path), "STATE_FS_INLINE_IO": "sometimes"})
        )


@pytest.mark.parametrize("inline_io", ["true", "false"])
async def test_listing_where_no_directory_exists_is_empty_and_stays_on_the_loop(
    tmp_path: Path, inline_io: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server lists "<key>/" for every missing key to tell a directory from
    # nothing; with inline I/O that answer must not cost a worker thread.
    connector = FsBufferedCas.from_settings(
        Settings({"STATE_DIR": str(tmp_path), "STATE_FS_INLINE_IO": inline_io})
    )
    await put(connector, "d/k", b"1")
    await put(connector, "file", b"2")
    threads: list[object] = []
    real_to_thread = asyncio.to_thread

    async def counting_to_thread(call: object, *args: object) -> object:
        threads.append(call)
        return await real_to_thread(call, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio, "to_thread", counting_to_thread)
    for prefix in ("missing/", "d/missing/", "nothing/below/", "file/"):
        page = await connector.list(prefix, limit=1)
        assert (page.entries, page.prefixes, page.next_token) == ([], [], None), prefix
    assert len(threads) == (0 if inline_io == "true" else 4)
    assert [m.key for m in (await connector.list("d/")).entries] == ["d/k"]
    assert (await connector.list("", limit=10)).prefixes == ["d/"]

"""Local-directory connector specifics beyond the conformance suite."""

from __future__ import annotations

import os
import time
from pathlib import Path

from asya_state_connectors.backends.fs import FsBufferedCas
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

"""Write-behind: a buffered file written front to back is sent while it is written, and still
behaves exactly like a local file whatever the handler does with it.

A reference model in the manner of mountpoint-s3's: random sequences of
write, seek, tell, read, truncate and flush on a state file and on a local
file must give the same answers and leave the same bytes, with the
write-behind threshold lowered so every sequence crosses it (and the spool
spilling to disk in some). A sequence that only writes is committed by the
upload that started while it was written (no whole-file request at close);
one that rewrites what was sent gives the upload up and commits the spool.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import random
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from asya_state_runtime import files, mount_client, transport
from tests.runtime.conftest import SMALL_LIMIT, Connectors, run_handler

THRESHOLD = 4096


@pytest.fixture
def whole_puts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys committed whole, in one request at close (not by a write-behind upload)."""
    whole: list[str] = []
    put = mount_client.MountClient.put

    def spy(self: mount_client.MountClient, key: str, *args: Any, **kwargs: Any) -> None:
        whole.append(key)
        put(self, key, *args, **kwargs)

    monkeypatch.setattr(mount_client.MountClient, "put", spy)
    return whole


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch, whole_puts: list[str]) -> list[str]:
    """Write-behind after 4 KiB, the spool on disk after 12 KiB; the keys put whole."""
    monkeypatch.setattr(files, "WRITE_BEHIND_AFTER", THRESHOLD)
    monkeypatch.setattr(files, "SPILL_THRESHOLD", 3 * THRESHOLD)
    return whole_puts


def run(path: str, mode: str, buffering: int, ops: list[tuple[Any, ...]]) -> list[object]:
    """Apply ``ops`` to ``path`` opened in ``mode``; log every answer, then the bytes stored."""
    log: list[object] = []
    try:
        file = open(path, mode, buffering=buffering)  # noqa: SIM115 - closed below
    except OSError as exc:
        return [("open", type(exc).__name__)]
    for name, *args in ops:
        try:
            log.append((name, getattr(file, name)(*args)))
        except (OSError, ValueError) as exc:
            log.append((name, type(exc).__name__))
    file.close()
    with open(path, "rb") as check:
        log.append(("content", check.read()))
    return log


def random_ops(rng: random.Random, readable: bool, sequential: bool) -> list[tuple[Any, ...]]:
    ops: list[tuple[Any, ...]] = []
    size = position = 0  # what the model expects, to aim seeks and truncates near the data
    for _ in range(rng.randint(10, 40)):
        choice = rng.random()
        if sequential or choice < 0.55:
            count = rng.choice([0, 1, 100, 1000, 3000, 5000, 9000])
            ops.append(("write", rng.randbytes(count)))
            position += count
            size = max(size, position)
        elif choice < 0.7:
            whence = rng.choice([io.SEEK_SET, io.SEEK_CUR, io.SEEK_END])
            if whence == io.SEEK_SET:
                offset = rng.randint(0, size + 20)
                position = offset
            elif whence == io.SEEK_CUR:
                offset = rng.randint(-position, 20)
                position += offset
            else:
                offset = rng.randint(-size, 20)
                position = size + offset
            ops.append(("seek", offset, whence))
        elif choice < 0.78:
            ops.append(("tell",))
        elif choice < 0.86 and readable:
            ops.append(("read", rng.choice([-1, 1, 500, 5000])))
            position = size if position > size else position  # read moves it; reseek below
            ops.append(("seek", position))
        elif choice < 0.94:
            cut = rng.choice([None, rng.randint(0, size + 20)])
            ops.append(("truncate", cut))
            size = position if cut is None else cut
        else:
            ops.append(("flush",))
    return ops


@pytest.mark.parametrize("mount", ["/state", "/cas"])
@pytest.mark.parametrize("seed", range(24))
def test_random_operations_match_a_local_file(
    hooks: Connectors, ns: str, tmp_path: Path, small_threshold: list[str], mount: str, seed: int
) -> None:
    rng = random.Random(seed)
    mode = ["wb", "wb+", "xb", "xb+"][seed % 4]
    buffering = [-1, 0, 777][seed % 3]
    sequential = seed % 5 == 0
    ops = random_ops(rng, readable="+" in mode, sequential=sequential)
    local = run(str(tmp_path / "f.bin"), mode, buffering, ops)
    state = run(f"{mount}/{ns}/f.bin", mode, buffering, ops)
    assert state == local
    if sequential and len(local[-1][1]) >= THRESHOLD:  # type: ignore[index]
        assert small_threshold == []  # sent while written: no whole-file request at close


def write_sequentially(path: str, mode: str, total: int) -> bytes:
    data = random.Random(total).randbytes(total)
    with open(path, mode) as file:
        for offset in range(0, total, 1000):
            file.write(data[offset : offset + 1000])
    return data


@pytest.mark.parametrize("mount", ["/state", "/cas", "/lww"])
@pytest.mark.parametrize("mode", ["wb", "xb", "w+b"])
def test_a_file_written_front_to_back_is_sent_while_written(
    hooks: Connectors, ns: str, small_threshold: list[str], mount: str, mode: str
) -> None:
    path = f"{mount}/{ns}/seq.bin"
    data = write_sequentially(path, mode, 100 * THRESHOLD + 123)  # several buffer flushes
    assert small_threshold == []
    with open(path, "rb") as check:
        assert check.read() == data


@pytest.mark.parametrize("mount", ["/state", "/cas"])
def test_a_rewrite_of_sent_bytes_gives_the_upload_up_and_commits_the_spool(
    hooks: Connectors, ns: str, small_threshold: list[str], mount: str
) -> None:
    path = f"{mount}/{ns}/zip-like.bin"
    body = os.urandom(6 * THRESHOLD)
    with open(path, "wb") as file:
        file.write(b"\0" * 16)  # a header patched at the end, as zipfile and tarfile do
        file.write(body)
        file.seek(0)
        file.write(b"H" * 16)
        file.seek(0, io.SEEK_END)
        file.write(b"tail")
    with open(path, "rb") as check:
        assert check.read() == b"H" * 16 + body + b"tail"
    assert len(small_threshold) == 1  # committed whole, once


@pytest.mark.parametrize("mount", ["/state", "/cas"])
def test_a_with_block_that_raises_mid_stream_keeps_the_old_version(
    hooks: Connectors, ns: str, small_threshold: list[str], mount: str
) -> None:
    path = f"{mount}/{ns}/kept.bin"
    with open(path, "wb") as file:
        file.write(b"old version")

    def fail_mid_stream() -> None:
        with open(path, "wb") as file:
            file.write(os.urandom(5 * THRESHOLD))  # streaming by now
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError):
        fail_mid_stream()
    with open(path, "rb") as check:
        assert check.read() == b"old version"


def test_a_conflicting_write_during_a_streamed_write_loses_cleanly(
    hooks: Connectors, ns: str, small_threshold: list[str]
) -> None:
    """The revision read before opening guards the streamed write (If-Match on completion)."""
    path = f"/cas/{ns}/counter.bin"
    with open(path, "wb") as file:
        file.write(b"v1")
    with open(path, "rb") as file:
        assert file.read() == b"v1"  # the revision the write is conditional on
    writer = open(path, "wb")  # noqa: SIM115 - closed by the raises block
    writer.write(os.urandom(3 * THRESHOLD))  # streaming
    _write_elsewhere(hooks, path, b"v2 from another replica")
    writer.write(os.urandom(3 * THRESHOLD))
    with pytest.raises(FileExistsError):
        writer.close()
    with open(path, "rb") as check:
        assert check.read() == b"v2 from another replica"


def test_an_exclusive_creation_raced_during_a_streamed_write_loses_cleanly(
    hooks: Connectors, ns: str, small_threshold: list[str]
) -> None:
    path = f"/cas/{ns}/created.bin"
    writer = open(path, "xb")  # noqa: SIM115 - closed by the raises block
    writer.write(os.urandom(3 * THRESHOLD))
    _write_elsewhere(hooks, path, b"created by another replica")
    with pytest.raises(FileExistsError):
        writer.close()
    with open(path, "rb") as check:
        assert check.read() == b"created by another replica"


def _write_elsewhere(hooks: Connectors, path: str, data: bytes) -> None:
    """Another replica's write of ``path``: a separate handler process on the same connector."""
    run_handler(hooks, f"with open({path!r}, 'wb') as f: f.write({data!r})")


def test_a_streamed_buffered_write_holds_memory_bounded(
    hooks: Connectors, ns: str, whole_puts: list[str]
) -> None:
    """48 MiB written at the default threshold: streamed, within the spool's memory bound."""
    path = f"/cas/{ns}/weights.bin"
    piece = os.urandom(1024 * 1024)
    digest = hashlib.sha256()

    def write() -> None:
        with open(path, "wb") as file:
            for number in range(48):
                block = piece[number:] + piece[:number]
                digest.update(block)
                file.write(block)

    tracemalloc.start()
    try:
        write()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < files.SPILL_THRESHOLD + 4 * 1024 * 1024
    assert whole_puts == []
    read = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1024 * 1024):
            read.update(chunk)
    assert read.hexdigest() == digest.hexdigest()


def test_a_streamed_write_over_the_connectors_limit_fails_on_close_with_efbig(
    hooks: Connectors, ns: str, small_threshold: list[str]
) -> None:
    path = f"/small/{ns}/big.bin"
    with open(path, "wb") as file:
        file.write(b"kept")
    file = open(path, "wb")  # noqa: SIM115 - closed in the raises block
    for _ in range(SMALL_LIMIT // THRESHOLD + 4):
        file.write(os.urandom(THRESHOLD))  # streaming, then refused mid-way (413)
    with pytest.raises(OSError, match="exceed") as too_large:
        file.close()
    assert too_large.value.errno == errno.EFBIG
    assert too_large.value.filename == path
    with open(path, "rb") as check:
        assert check.read() == b"kept"


def test_a_file_growing_past_the_write_behind_limit_is_committed_whole(
    hooks: Connectors, ns: str, small_threshold: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the limit the connector needs the size to cut parts: the stream is given up."""
    monkeypatch.setattr(files, "WRITE_BEHIND_LIMIT", 8 * THRESHOLD)
    path = f"/cas/{ns}/huge.bin"
    data = write_sequentially(path, "wb", 10 * THRESHOLD)
    assert small_threshold == [f"{ns}/huge.bin"]
    with open(path, "rb") as check:
        assert check.read() == data


@pytest.mark.parametrize("broken", ["send", "finish"])
def test_a_stream_lost_mid_way_sends_the_spool_again_under_the_same_request_id(
    hooks: Connectors,
    ns: str,
    small_threshold: list[str],
    monkeypatch: pytest.MonkeyPatch,
    broken: str,
) -> None:
    """A lost connection proves nothing was stored: the whole file goes in one request."""
    ids: list[str] = []
    start_put = mount_client.MountClient.start_put

    def record(self: mount_client.MountClient, key: str, path: str, headers: Any, size: Any) -> Any:
        ids.append(headers[mount_client.REQUEST_ID])
        return start_put(self, key, path, headers, size)

    original = getattr(transport.Upload, broken)
    calls = 0

    def lose(self: transport.Upload, *args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == (1 if broken == "finish" else 3):
            self.abort()
            raise ConnectionError("connection to the connector lost")
        return original(self, *args)

    monkeypatch.setattr(mount_client.MountClient, "start_put", record)
    monkeypatch.setattr(transport.Upload, broken, lose)
    path = f"/cas/{ns}/resent.bin"
    data = write_sequentially(path, "wb", 100 * THRESHOLD)
    monkeypatch.undo()
    assert small_threshold == [f"{ns}/resent.bin"]
    assert len(ids) == 2  # the stream, then the whole file
    assert ids[0] == ids[1]
    with open(path, "rb") as check:
        assert check.read() == data

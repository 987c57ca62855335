"""Local-directory rename against concurrent writers: both parents' locks, in a fixed order.

Two connector processes share one directory, as two pods mounting one PVC
do. A rename must not land between another writer's condition check and
its rename (a lost update), and renames in opposite directions must not
deadlock on each other's locks.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from asya_state_cli.connector_process import ConnectorProcess
from asya_state_connectors.backends.fs.backend import FsBufferedCas
from asya_state_connectors.backends.fs.primitives import LockBusy
from asya_state_connectors.client import HttpConnector
from asya_state_connectors.errors import Conflict, NotFound
from asya_state_connectors.interface import WriteCondition
from asya_state_connectors.settings import Settings
from tests.conformance.helpers import get, put

MOVES = 150  # round trips per race: each is two renames


@pytest.fixture
async def two_connectors(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[HttpConnector, HttpConnector]]:
    """Two ``fs-buffered-cas`` connector processes on one state directory, with a client each.

    Indirect parameters add to their environment.
    """
    env = {"STATE_DIR": str(tmp_path / "state"), **getattr(request, "param", {})}
    # Unix socket paths are limited to 108 bytes: keep the directory short.
    with (
        tempfile.TemporaryDirectory(prefix="asya-", dir="/tmp") as sockets,
        ConnectorProcess("fs-buffered-cas", f"{sockets}/a.sock", env),
        ConnectorProcess("fs-buffered-cas", f"{sockets}/b.sock", env),
    ):
        clients = HttpConnector(f"{sockets}/a.sock"), HttpConnector(f"{sockets}/b.sock")
        for client in clients:
            await client.open()
        try:
            yield clients
        finally:
            for client in clients:
                await client.close()


async def read_versioned(connector: HttpConnector, key: str) -> tuple[int, str]:
    stream = await connector.read(key)
    try:
        body = b"".join([chunk async for chunk in stream.chunks])
    finally:
        await stream.aclose()
    return int(body), stream.meta.etag


@pytest.mark.parametrize(
    ("home", "away"),
    [("race/counter", "race/counter.away"), ("here/counter", "there/counter")],
    ids=["same-directory", "two-directories"],
)
async def test_cas_increments_racing_renames_of_the_object_lose_nothing(
    two_connectors: tuple[HttpConnector, HttpConnector], home: str, away: str
) -> None:
    """One process increments a counter with CAS writes while another moves it away and back.

    A rename moves a counter without changing it, and a CAS write only
    succeeds on the value it read at ``home``; so the counter ends equal to
    the number of acknowledged writes exactly. A rename slipping between a
    write's check and its rename would move the old value away, let the
    write land, then move the old value back over it: one acknowledged
    increment missing.
    """
    writer, renamer = two_connectors
    await put(writer, home, b"0")
    moved = asyncio.Event()

    async def increment() -> tuple[int, int]:
        acknowledged = conflicts = 0
        while not moved.is_set():
            try:
                value, etag = await read_versioned(writer, home)
            except NotFound:
                await asyncio.sleep(0)  # away for the moment
                continue
            try:
                await put(
                    writer, home, str(value + 1).encode(), condition=WriteCondition(if_match=etag)
                )
                acknowledged += 1
            except Conflict:
                conflicts += 1
        return acknowledged, conflicts

    async def move() -> None:
        try:
            for _ in range(MOVES):
                await renamer.rename(home, away)
                await renamer.rename(away, home)
        finally:
            moved.set()

    (acknowledged, conflicts), _ = await asyncio.wait_for(asyncio.gather(increment(), move()), 120)
    assert int(await get(writer, home)) == acknowledged
    with pytest.raises(NotFound):
        await writer.stat(away)
    assert acknowledged > 0
    print(f"{acknowledged} increments, {conflicts} conflicts, {2 * MOVES} renames")


# Every rename in a worker thread that waits for its locks: on the event loop
# a busy lock is not waited for, which would hide a wrong lock order.
@pytest.mark.parametrize("two_connectors", [{"STATE_FS_INLINE_IO": "false"}], indirect=True)
async def test_renames_in_opposite_directions_do_not_deadlock(
    two_connectors: tuple[HttpConnector, HttpConnector],
) -> None:
    """Each process renames its own object between the same two directories, the other way round.

    Both renames need the locks of ``left`` and ``right``; taken in the
    order each rename names them, one would hold ``left`` waiting for
    ``right`` while the other holds ``right`` waiting for ``left``.
    """
    first, second = two_connectors
    await put(first, "left/one", b"1")
    await put(second, "right/two", b"2")

    async def shuttle(connector: HttpConnector, name: str, start: str, other: str) -> None:
        for _ in range(MOVES):
            await connector.rename(f"{start}/{name}", f"{other}/{name}")
            await connector.rename(f"{other}/{name}", f"{start}/{name}")

    await asyncio.wait_for(
        asyncio.gather(
            shuttle(first, "one", "left", "right"), shuttle(second, "two", "right", "left")
        ),
        60,
    )
    assert await get(first, "left/one") == b"1"
    assert await get(first, "right/two") == b"2"
    assert sorted(m.key for m in (await first.list("", delimiter=None)).entries) == [
        "left/one",
        "right/two",
    ]


def _fs(root: Path) -> FsBufferedCas:
    return FsBufferedCas.from_settings(Settings({"STATE_DIR": str(root)}))


def _rename_inside_the_check(
    monkeypatch: pytest.MonkeyPatch,
    writer: FsBufferedCas,
    renamer: FsBufferedCas,
    source: str,
    target: str,
) -> list[str]:
    """Make ``writer``'s next condition check try ``renamer``'s rename before returning.

    The two connectors are separate instances on one directory, as two
    processes would be; their directory locks are separate open files, so
    they exclude each other as across processes. The rename asks for its
    locks without waiting (as it first does on the event loop), so the
    window between the writer's check and its rename is held open
    deterministically. Returns what the rename in the window did.
    """
    outcome: list[str] = []
    check: Callable[..., None] = writer._check_condition

    def check_then_rename(*args: object) -> None:
        check(*args)
        if not outcome:
            try:
                renamer._rename_sync(source, target, False)
                outcome.append("renamed")
            except LockBusy:
                outcome.append("waited for the writer's lock")

    monkeypatch.setattr(writer, "_check_condition", check_then_rename)
    return outcome


async def test_a_rename_onto_a_key_cannot_land_between_a_cas_check_and_its_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, renamer = _fs(tmp_path), _fs(tmp_path)
    await put(writer, "a/doc", b"old")
    await put(writer, "b/doc", b"moved in")
    read = await writer.stat("a/doc")
    window = _rename_inside_the_check(monkeypatch, writer, renamer, "b/doc", "a/doc")
    await put(writer, "a/doc", b"written", condition=WriteCondition(if_match=read.etag))
    # Without the target directory's lock the rename lands in the window and
    # the write, conditional on "old", then replaces "moved in" unseen.
    assert window == ["waited for the writer's lock"]
    await renamer.rename("b/doc", "a/doc")
    assert await get(writer, "a/doc") == b"moved in"
    assert not (tmp_path / "b").exists()


async def test_a_rename_of_a_key_cannot_land_between_a_cas_check_and_its_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, renamer = _fs(tmp_path), _fs(tmp_path)
    await put(writer, "a/doc", b"old")
    read = await writer.stat("a/doc")
    window = _rename_inside_the_check(monkeypatch, writer, renamer, "a/doc", "b/doc")
    await put(writer, "a/doc", b"written", condition=WriteCondition(if_match=read.etag))
    # Without the source directory's lock the rename moves "old" away in the
    # window and the write lands beside it: a write conditional on a version
    # that had already moved.
    assert window == ["waited for the writer's lock"]
    await renamer.rename("a/doc", "b/doc")
    assert await get(writer, "b/doc") == b"written"
    with pytest.raises(NotFound):
        await writer.stat("a/doc")


async def test_a_rename_leaves_no_hidden_file_and_a_failed_one_no_directory(tmp_path: Path) -> None:
    connector = _fs(tmp_path)
    await put(connector, "a/doc", b"1")
    await connector.rename("a/doc", "b/c/doc")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "b",
        "b/c",
        "b/c/doc",
    ]
    with pytest.raises(NotFound):
        await connector.rename("a/doc", "d/doc")
    assert not (tmp_path / "d").exists()

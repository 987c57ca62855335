"""open() on state paths behaves like open() on a local file, through a real connector."""

from __future__ import annotations

import errno
import io
import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from asya_state_runtime import files
from tests.runtime.conftest import SMALL_LIMIT, Connectors

MODES = ["r", "rb", "w", "wb", "x", "xb", "a", "ab", "r+", "rb+", "w+", "wb+", "a+", "ab+"]
INITIAL = b"hello\nworld\n"


def scenario(path: str, mode: str, initial: bytes | None) -> list[object]:
    """Open ``path`` (prepared with ``initial``) in ``mode``, poke it, and log what happened."""
    log: list[object] = []
    if initial is not None:
        with open(path, "wb") as f:
            f.write(initial)

    def step(name: str, *args: Any) -> None:
        try:
            log.append((name, getattr(f, name)(*args)))
        except Exception as exc:
            log.append((name, type(exc).__name__))

    try:
        f = open(path, mode)  # noqa: SIM115 - closed below; the log records each step
    except Exception as exc:
        return [("open", type(exc).__name__)]
    text = "b" not in mode
    data = "XY\n" if text else b"XY\n"
    log.append(("mode", f.mode))
    step("readable")
    step("writable")
    step("read", 3)
    step("write", data)
    step("seekable")
    step("tell")
    step("seek", 0)
    step("read")
    step("seek", 0, 2)
    step("tell")
    step("write", data)
    step("tell")
    step("fileno")
    f.close()
    log.append(("closed", f.closed))
    with open(path, "rb") as check:
        log.append(("content", check.read()))
    return log


@pytest.mark.parametrize("mount", ["/state", "/cas"])
@pytest.mark.parametrize("initial", [INITIAL, None], ids=["existing", "missing"])
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_matches_a_local_file(
    hooks: Connectors, ns: str, tmp_path: Path, mount: str, mode: str, initial: bytes | None
) -> None:
    local = scenario(str(tmp_path / "f.txt"), mode, initial)
    state = scenario(f"{mount}/{ns}/f.txt", mode, initial)
    # fileno: a local file has one, a state file raises io.UnsupportedOperation.
    assert [e for e in state if e[0] != "fileno"] == [e for e in local if e[0] != "fileno"]
    assert ("fileno", "UnsupportedOperation") in state or state[0][0] == "open"


TEXTS = ["plain ascii\n", "naïve café ☕\r\nline two\rthree\n", "", "\x00binary\xffish\n"]


@pytest.mark.parametrize("newline", [None, "", "\n", "\r\n", "\r"])
@pytest.mark.parametrize(
    ("encoding", "errors"),
    [("utf-8", None), ("latin-1", "replace"), ("utf-16", None), ("ascii", "backslashreplace")],
)
def test_text_mode_honours_encoding_errors_and_newline(
    hooks: Connectors,
    ns: str,
    tmp_path: Path,
    encoding: str,
    errors: str | None,
    newline: str | None,
) -> None:
    for index, text in enumerate(TEXTS):
        results = []
        for path in (str(tmp_path / f"{index}.txt"), f"/state/{ns}/{index}.txt"):
            with open(path, "w", encoding=encoding, errors=errors, newline=newline) as f:
                f.write(text)
            with open(path, "rb") as f:
                raw = f.read()
            with open(path, encoding=encoding, errors=errors, newline=newline) as f:
                lines = list(f)
            results.append((raw, lines))
        assert results[0] == results[1]


def test_reading_api(hooks: Connectors, ns: str) -> None:
    path = f"/state/{ns}/lines.txt"
    content = b"".join(b"line %d\n" % i for i in range(1000))
    with open(path, "wb") as f:
        assert f.write(content) == len(content)
    with open(path, "rb") as f:
        assert f.read(5) == b"line "
        buffer = bytearray(3)
        assert f.readinto(buffer) == 3
        assert buffer == b"0\nl"
        assert f.readline() == b"ine 1\n"
        assert f.tell() == 14
        f.seek(-7, io.SEEK_END)
        assert f.read() == b"ne 999\n"
        f.seek(0)
        assert f.readlines()[:2] == [b"line 0\n", b"line 1\n"]
    with open(path) as f:
        assert sum(1 for _ in f) == 1000
        assert f.name == path
        assert f.mode == "r"
        assert not f.closed
        assert f.readable()
        assert not f.writable()
        assert f.seekable()
        with pytest.raises(io.UnsupportedOperation):
            f.fileno()
        assert not f.isatty()
    assert f.closed


def test_file_objects_are_io_objects(hooks: Connectors, ns: str) -> None:
    path = f"/state/{ns}/kinds.bin"
    with open(path, "wb") as f:
        assert isinstance(f, io.BufferedWriter)
        f.writelines([b"a", b"b"])
        f.flush()
    with open(path, "rb") as f:
        assert isinstance(f, io.BufferedReader)
        assert f.raw.mode == "rb"
        assert f.name == path
    with open(path, "r+b") as f:
        assert isinstance(f, io.BufferedRandom)
    with open(path) as f:
        assert isinstance(f, io.TextIOWrapper)
    with open(path, "rb", buffering=0) as f:
        assert isinstance(f, io.RawIOBase)
        assert f.read() == b"ab"
    with open(Path(path).parent / "kinds.bin", "rb") as f:
        assert f.name == path
    with open(os.fsencode(path), "rb") as f:
        assert f.name == os.fsencode(path)
        assert f.read() == b"ab"


@pytest.mark.parametrize("mount", ["/state", "/cas", "/stream"])
@pytest.mark.parametrize("mode", ["w", "wb", "a", "r+", "w+", "a+"])
def test_a_with_block_that_raises_commits_nothing(
    hooks: Connectors, ns: str, mount: str, mode: str
) -> None:
    path = f"{mount}/{ns}/keep.txt"
    with open(path, "w") as f:
        f.write("previous\n")
    data = "partial\n" if "b" not in mode else b"partial\n"

    def handler() -> None:
        with open(path, mode) as f:
            f.write(data)  # type: ignore[arg-type]
            f.flush()
            f.write(data * 100_000)  # type: ignore[arg-type]
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        handler()
    with open(path) as f:
        assert f.read() == "previous\n"


def test_a_with_block_that_raises_creates_nothing(hooks: Connectors, ns: str) -> None:
    for mount in ("/state", "/stream"):
        path = f"{mount}/{ns}/never.txt"

        def handler(path: str = path) -> None:
            with open(path, "w") as f:
                f.write("x" * 200_000)
                raise RuntimeError("handler failed")

        with pytest.raises(RuntimeError, match="handler failed"):
            handler()
        assert not os.path.exists(path)


def test_append_appends_and_creates(hooks: Connectors, ns: str) -> None:
    for mount in ("/state", "/cas", "/stream"):
        path = f"{mount}/{ns}/log.txt"
        with open(path, "a") as f:
            f.write("one\n")
        with open(path, "a") as f:
            f.write("two\n")
        open(f"{mount}/{ns}/empty.txt", "a").close()
        with open(path) as f:
            assert f.read() == "one\ntwo\n"
        assert os.path.getsize(f"{mount}/{ns}/empty.txt") == 0


def append_positions(path: str, encoding: str) -> list[object]:
    """What tell() and seek() answer around two appends, as logging's rotating handler uses them."""
    with open(path, "wb") as f:
        f.write("0123456789".encode(encoding))
    seen: list[object] = []
    with open(path, "a", encoding=encoding) as f:
        seen += [f.seekable(), f.tell(), f.seek(0, os.SEEK_END)]
        f.write("abc")
        seen += [f.tell(), f.seek(0), f.tell()]
        f.write("de")  # lands at the end whatever the position
        seen += [f.tell(), f.seek(0, os.SEEK_END)]
    with open(path, "rb") as f:
        seen.append(f.read())
    return seen


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_plain_append_tells_and_seeks_like_a_local_file(
    hooks: Connectors, ns: str, tmp_path: Path, encoding: str
) -> None:
    local = append_positions(str(tmp_path / "log.txt"), encoding)
    size = len("0123456789".encode(encoding))
    # No byte-order mark before "abc" ("".encode() is the BOM alone): the file was not empty.
    assert local[1:4] == [size, size, size + len("abc".encode(encoding)) - len("".encode(encoding))]
    # /stream appends with passthrough writes, /cas through the buffered spool.
    for mount in ("/state", "/cas", "/stream"):
        assert append_positions(f"{mount}/{ns}/{encoding}.log", encoding) == local


def test_plain_append_cannot_truncate(hooks: Connectors, ns: str) -> None:
    path = f"/state/{ns}/log.txt"
    with open(path, "wb") as f:
        f.write(b"kept")
    with open(path, "ab") as f:
        f.write(b"+new")
        with pytest.raises(io.UnsupportedOperation, match=f"append mode.*{path}.*'r\\+'"):
            f.truncate(0)
    with open(path, "rb") as f:
        assert f.read() == b"kept+new"


def test_append_without_native_support_reads_and_rewrites(hooks: Connectors, ns: str) -> None:
    from asya_state_runtime import hooks as runtime_hooks

    for mount in ("/cas", "/lww"):
        target = runtime_hooks._resolve(f"{mount}/{ns}/x")
        assert target is not None
        info = target.client.info(target.path)
        # Force the fallback a connector without the append capability gets.
        target.client._info = type(info)(
            info.connector,
            info.capabilities - {"append"},
            info.writable_xattrs,
            info.max_object_size,
        )
        path = f"{mount}/{ns}/log.txt"
        with open(path, "a") as f:
            f.write("one\n")
        with open(path, "ab") as f:
            f.write(b"two\n")
        with open(path, "a"):
            pass
        with open(path) as f:
            assert f.read() == "one\ntwo\n"


def test_exclusive_creation(hooks: Connectors, ns: str) -> None:
    # /lww is the same directory as /stream, written here with passthrough.
    for mount in ("/state", "/cas", "/stream"):
        path = f"{mount}/{ns}/x.txt"
        with open(path, "x") as f:
            f.write("first")
        with pytest.raises(FileExistsError) as caught, open(path, "x"):
            pass
        assert caught.value.filename == path
        with open(path) as f:
            assert f.read() == "first"


def test_exclusive_creation_is_atomic_at_the_backend(hooks: Connectors, ns: str) -> None:
    for mount in ("/cas", "/stream"):
        path = f"{mount}/{ns}/race.txt"
        mine = open(path, "x")  # noqa: SIM115 - closed after the rival's write
        mine.write("mine")
        with open(path, "x") as theirs:
            theirs.write("theirs")
        with pytest.raises(FileExistsError):
            mine.close()
        with open(path) as f:
            assert f.read() == "theirs"


def test_errors_name_the_path(hooks: Connectors, ns: str) -> None:
    missing = f"/state/{ns}/missing.json"
    with pytest.raises(FileNotFoundError) as not_found, open(missing):
        pass
    assert not_found.value.filename == missing
    assert missing in str(not_found.value)
    with pytest.raises(IsADirectoryError), open("/state"):
        pass
    with pytest.raises(OSError, match="reserved") as invalid, open(f"/state/{ns}/.asya-tmp-x", "w"):
        pass
    assert invalid.value.errno == errno.EINVAL
    big = f"/small/{ns}/big.bin"
    with pytest.raises(OSError, match="exceed") as too_large, open(big, "wb") as f:
        f.write(b"x" * (SMALL_LIMIT + 1))
    assert too_large.value.errno == errno.EFBIG
    assert too_large.value.filename == big
    assert not os.path.exists(big)


def test_open_arguments_are_validated_like_the_real_open(hooks: Connectors, ns: str) -> None:
    path = f"/state/{ns}/v.txt"
    for bad_mode in ("rw", "rr", "z", "rbt", "", "+"):
        with pytest.raises(ValueError, match="mode"), open(path, bad_mode):
            pass
    bad_arguments: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"mode": "wb", "encoding": "utf-8"}, ValueError, "encoding"),
        ({"mode": "w", "buffering": 0}, ValueError, "unbuffered text"),
        ({"mode": "w", "newline": "x"}, ValueError, "newline"),
        ({"mode": "w", "encoding": "no-such-codec"}, LookupError, "no-such-codec"),
        ({"mode": "w", "closefd": False}, ValueError, "closefd"),
    ]
    for kwargs, exc_type, message in bad_arguments:
        with pytest.raises(exc_type, match=message), open(path, **kwargs):
            pass
    assert not os.path.exists(path)


PayloadWriter = Callable[[Any], None]


def peak_memory(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_passthrough_writes_stream_with_bounded_memory(hooks: Connectors, ns: str) -> None:
    path = f"/stream/{ns}/big.bin"
    piece = os.urandom(1024 * 1024)
    total = 48

    def write() -> None:
        with open(path, "wb") as f:
            assert not f.seekable()
            with pytest.raises(io.UnsupportedOperation):
                f.tell()
            for _ in range(total):
                f.write(piece)

    assert peak_memory(write) < 8 * 1024 * 1024
    assert os.path.getsize(path) == total * len(piece)
    with open(path, "rb") as f:
        f.seek((total - 1) * len(piece))
        assert f.read() == piece


def test_buffered_writes_spill_to_disk_and_allow_seek(hooks: Connectors, ns: str) -> None:
    path = f"/state/{ns}/spill.bin"
    piece = os.urandom(1024 * 1024)

    def write() -> None:
        with open(path, "wb") as f:
            for _ in range(12):
                f.write(piece)
            assert f.tell() == 12 * len(piece)
            f.seek(0)
            f.write(b"HEAD")
            raw = f.raw
            assert isinstance(raw, files.SpoolRaw)
            assert raw._spool._rolled  # type: ignore[attr-defined]

    assert peak_memory(write) < files.SPILL_THRESHOLD + 4 * 1024 * 1024
    with open(path, "rb") as f:
        assert f.read(4) == b"HEAD"
        assert f.read(len(piece) - 4) == piece[4:]


def test_reads_stream_and_seek_uses_ranged_reads(hooks: Connectors, ns: str) -> None:
    path = f"/state/{ns}/large.bin"
    size = 32 * 1024 * 1024
    with open(path, "wb") as f:
        for i in range(32):
            f.write(bytes([i]) * (1024 * 1024))
    opened: list[Any] = []

    def read_a_little() -> None:
        f = open(path, "rb")  # noqa: SIM115 - kept open for the seeks below
        opened.append(f)
        assert f.read(10) == b"\x00" * 10

    assert peak_memory(read_a_little) < 2 * 1024 * 1024
    f = opened[0]
    raw = f.raw
    f.seek(size - 5)
    assert f.read() == b"\x1f" * 5
    # The tail came from a new request for a byte range, not from reading through.
    assert raw._reply is None or raw._reply.status == 206
    f.seek(20 * 1024 * 1024 + 3)
    assert f.read(2) == b"\x14\x14"
    f.close()
    with open(path, "rb", buffering=0) as unbuffered:
        assert unbuffered.read(10) == b"\x00" * 10
        stream = unbuffered._reply  # type: ignore[attr-defined]
        unbuffered.seek(60_000)  # a short hop forward reads through the open stream
        assert unbuffered.read(4) == b"\x00" * 4
        assert unbuffered.tell() == 60_004
        assert unbuffered._reply is stream  # type: ignore[attr-defined]


def test_undecodable_names_are_refused(hooks: Connectors, ns: str) -> None:
    with (
        pytest.raises(OSError, match="UTF-8") as caught,
        open(f"/state/{ns}/".encode() + b"\xff", "wb"),
    ):
        pass
    assert caught.value.errno == errno.EINVAL


def test_an_object_replaced_during_a_ranged_read_is_reported(hooks: Connectors, ns: str) -> None:
    path = f"/state/{ns}/moving.bin"
    with open(path, "wb") as f:
        f.write(b"a" * 1_000_000)
    reader = open(path, "rb")  # noqa: SIM115 - must stay open across the rewrite
    assert reader.read(1) == b"a"
    with open(path, "wb") as f:
        f.write(b"b" * 1_000_000)
    reader.seek(900_000)
    with pytest.raises(OSError, match="changed while it was open") as caught:
        reader.read(1)
    assert caught.value.errno == errno.ESTALE
    reader.close()


ODD_NAMES = [
    "with space.txt",
    "ünïcødé-日本語.json",
    "what?.txt",
    "hash#tag",
    "100%.csv",
    "a+b=c&d.txt",
    "semi;colon,comma",
    "quote'\"back\\slash",
    "tab\tand~tilde",
]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_names_round_trip(hooks: Connectors, ns: str, name: str) -> None:
    for mount in ("/state", "/cas", "/stream"):
        directory = f"{mount}/{ns}/dir {name}"
        path = f"{directory}/{name}"
        with open(path, "w", encoding="utf-8") as f:
            f.write(name)
        with open(path, encoding="utf-8") as f:
            assert f.read() == name
        assert os.listdir(directory) == [name]
        assert f"dir {name}" in os.listdir(f"{mount}/{ns}")
        assert os.path.isfile(path)
        assert os.path.isdir(directory)
        assert os.stat(path).st_size == len(name.encode())
        renamed = f"{directory}/renamed {name}"
        os.rename(path, renamed)
        assert os.listdir(directory) == [f"renamed {name}"]
        assert os.getxattr(renamed, "user.asya.etag")
        os.remove(renamed)
        assert not os.path.exists(renamed)

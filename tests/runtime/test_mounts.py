"""Which paths the runtime claims: longest-prefix match on normalized absolute paths."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from asya_state_runtime.config import parse_mounts
from asya_state_runtime.mounts import MountTable

TABLE = MountTable(parse_mounts("outer:/state;inner:/state/cache;other:/data/x"))


def claim(path: object, dir_fd: int | None = None) -> tuple[str, str] | None:
    target = TABLE.resolve(path, dir_fd)
    return None if target is None else (target.mount.name, target.key)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/state", ("outer", "")),
        ("/state/", ("outer", "")),
        ("/state/a.json", ("outer", "a.json")),
        ("/state/cache", ("inner", "")),
        ("/state/cache/k/v.bin", ("inner", "k/v.bin")),
        ("/state/cachex/v", ("outer", "cachex/v")),
        ("/state/a/../cache/v", ("inner", "v")),
        ("/state/./a//b", ("outer", "a/b")),
        ("//state/a", ("outer", "a")),
        ("/etc/../state/a", ("outer", "a")),
        ("/data/x/y", ("other", "y")),
        (b"/state/caf\xc3\xa9", ("outer", "café")),
        (Path("/state/p q"), ("outer", "p q")),
        (PurePosixPath("/state/cache/z"), ("inner", "z")),
    ],
)
def test_claimed_paths(path: object, expected: tuple[str, str]) -> None:
    assert claim(path) == expected


@pytest.mark.parametrize(
    "path",
    ["/statefile", "/state/../etc/passwd", "/", "/data", "/data/xy", "", "/tmp/state/a"],
)
def test_paths_outside_mounts_are_not_claimed(path: str) -> None:
    assert claim(path) is None


def test_descriptors_and_non_paths_are_not_claimed() -> None:
    assert claim(0) is None
    assert claim(7) is None
    assert claim(None) is None
    assert claim(3.5) is None


def test_relative_paths_resolve_against_the_current_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir("/")
    assert claim("state/a") == ("outer", "a")
    assert claim("tmp/a") is None
    # Relative to a directory descriptor: only the OS knows where that is.
    fd = os.open("/", os.O_RDONLY)
    try:
        assert claim("state/a", dir_fd=fd) is None
        assert claim("/state/a", dir_fd=fd) == ("outer", "a")
    finally:
        os.close(fd)

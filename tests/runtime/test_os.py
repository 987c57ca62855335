"""os, os.path, shutil and pathlib on state paths, through a real connector."""

from __future__ import annotations

import errno
import glob
import os
import shutil
import stat
from pathlib import Path

import pytest

from tests.runtime.conftest import Connectors, run_handler


def write(path: str, data: str = "x") -> None:
    with open(path, "w") as f:
        f.write(data)


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


@pytest.fixture
def tree(hooks: Connectors, ns: str) -> str:
    """/state/<ns> holding a.txt, b.json, sub/c.txt, sub/deeper/d.txt."""
    base = f"/state/{ns}"
    write(f"{base}/a.txt", "aaa")
    write(f"{base}/b.json", "{}")
    write(f"{base}/sub/c.txt", "c")
    write(f"{base}/sub/deeper/d.txt", "dddd")
    return base


def test_stat_files_directories_and_the_mount_root(tree: str) -> None:
    st = os.stat(f"{tree}/a.txt")
    assert stat.S_ISREG(st.st_mode)
    assert st.st_size == 3
    assert st.st_mtime > 0  # the memory connector records modification times
    assert st.st_ino != os.stat(f"{tree}/b.json").st_ino
    assert stat.S_ISDIR(os.stat(f"{tree}/sub").st_mode)
    assert stat.S_ISDIR(os.stat("/state").st_mode)
    assert os.lstat(f"{tree}/a.txt").st_size == 3
    with pytest.raises(FileNotFoundError) as caught:
        os.stat(f"{tree}/nope")
    assert caught.value.filename == f"{tree}/nope"


def test_os_path_predicates(tree: str) -> None:
    assert os.path.exists(f"{tree}/a.txt")
    assert os.path.isfile(f"{tree}/a.txt")
    assert not os.path.isdir(f"{tree}/a.txt")
    assert os.path.isdir(f"{tree}/sub")
    assert os.path.isdir("/state")
    assert not os.path.exists(f"{tree}/nope")
    assert not os.path.isfile(f"{tree}/sub")
    assert os.path.getsize(f"{tree}/sub/deeper/d.txt") == 4
    assert os.path.getmtime(f"{tree}/a.txt") > 0
    assert not os.path.islink(f"{tree}/a.txt")
    assert os.path.lexists(f"{tree}/b.json")


def test_listdir_and_scandir(tree: str) -> None:
    assert sorted(os.listdir(tree)) == ["a.txt", "b.json", "sub"]
    assert sorted(os.listdir(os.fsencode(tree))) == [b"a.txt", b"b.json", b"sub"]
    assert os.listdir(f"{tree}/sub") == ["c.txt", "deeper"]
    with os.scandir(tree) as entries:
        found = {e.name: e for e in entries}
    assert found["sub"].is_dir()
    assert not found["sub"].is_file()
    assert found["a.txt"].is_file()
    assert not found["a.txt"].is_symlink()
    assert found["a.txt"].path == f"{tree}/a.txt"
    assert found["a.txt"].stat().st_size == 3
    assert os.fspath(found["b.json"]) == f"{tree}/b.json"
    assert found["a.txt"].inode() == os.stat(f"{tree}/a.txt").st_ino
    with pytest.raises(NotADirectoryError):
        os.listdir(f"{tree}/a.txt")
    with pytest.raises(FileNotFoundError):
        os.listdir(f"{tree}/nope")
    with pytest.raises(FileNotFoundError):
        os.scandir(f"{tree}/nope")


def test_listing_pages_through_large_directories(hooks: Connectors, ns: str) -> None:
    base = f"/state/{ns}/many"
    names = {f"k{i:05d}" for i in range(1100)}
    for name in names:
        write(f"{base}/{name}")
    assert set(os.listdir(base)) == names
    assert len(glob.glob(f"{base}/k*")) == 1100


def test_walk_and_glob(tree: str) -> None:
    walked = [(top, sorted(dirs), sorted(files)) for top, dirs, files in os.walk(tree)]
    assert walked == [
        (tree, ["sub"], ["a.txt", "b.json"]),
        (f"{tree}/sub", ["deeper"], ["c.txt"]),
        (f"{tree}/sub/deeper", [], ["d.txt"]),
    ]
    bottom_up = [top for top, _, _ in os.walk(tree, topdown=False)]
    assert bottom_up == [f"{tree}/sub/deeper", f"{tree}/sub", tree]
    assert sorted(glob.glob(f"{tree}/*.txt")) == [f"{tree}/a.txt"]
    assert sorted(glob.glob(f"{tree}/**/*.txt", recursive=True)) == [
        f"{tree}/a.txt",
        f"{tree}/sub/c.txt",
        f"{tree}/sub/deeper/d.txt",
    ]
    assert glob.glob(f"{tree}/sub/*/") == [f"{tree}/sub/deeper/"]


def test_remove_and_unlink(tree: str) -> None:
    os.remove(f"{tree}/a.txt")
    os.unlink(f"{tree}/b.json")
    assert sorted(os.listdir(tree)) == ["sub"]
    with pytest.raises(FileNotFoundError):
        os.remove(f"{tree}/a.txt")
    with pytest.raises(IsADirectoryError):
        os.remove(f"{tree}/sub")


def test_a_name_too_long_for_the_local_disk_is_enametoolong(hooks: Connectors, ns: str) -> None:
    path = f"/cas/{ns}/{'n' * 300}.json"  # a file name on ext4 and tmpfs is at most 255 bytes
    with pytest.raises(OSError) as written:  # noqa: PT011 - the errno is the point
        write(path)
    with pytest.raises(OSError) as stated:  # noqa: PT011
        os.stat(path)
    with pytest.raises(OSError) as opened:  # noqa: PT011
        read(path)
    for caught in (written, stated, opened):
        assert caught.value.errno == errno.ENAMETOOLONG
        assert caught.value.filename == path
        assert "name_too_long" in str(caught.value)
    assert not os.path.exists(path)
    assert not os.path.isdir(f"/cas/{ns}"), "the failed write left nothing behind"


def test_rename_and_replace(tree: str, tmp_path: Path) -> None:
    os.rename(f"{tree}/a.txt", f"{tree}/moved/a2.txt")
    assert read(f"{tree}/moved/a2.txt") == "aaa"
    assert not os.path.exists(f"{tree}/a.txt")
    os.replace(f"{tree}/b.json", f"{tree}/moved/a2.txt")
    assert read(f"{tree}/moved/a2.txt") == "{}"
    os.rename(f"{tree}/sub", f"{tree}/renamed")
    assert sorted(os.listdir(f"{tree}/renamed")) == ["c.txt", "deeper"]
    assert read(f"{tree}/renamed/deeper/d.txt") == "dddd"
    assert not os.path.exists(f"{tree}/sub")
    with pytest.raises(FileNotFoundError):
        os.rename(f"{tree}/nope", f"{tree}/x")
    for other in (f"/cas/{tree}/x", str(tmp_path / "x")):
        with pytest.raises(OSError, match="cross-device") as caught:
            os.rename(f"{tree}/moved/a2.txt", other)
        assert caught.value.errno == errno.EXDEV


def test_mkdir_is_accepted_and_rmdir_only_when_empty(hooks: Connectors, tree: str) -> None:
    os.mkdir(f"{tree}/fresh")
    os.makedirs(f"{tree}/fresh/a/b", exist_ok=True)
    os.makedirs(f"{tree}/sub", exist_ok=True)
    with pytest.raises(FileExistsError):
        os.mkdir(f"{tree}/sub")
    with pytest.raises(FileExistsError):
        os.makedirs(f"{tree}/a.txt", exist_ok=True)
    # Nothing is stored: other processes see a directory only while it holds objects;
    # this process sees the directories it made, empty, as on a local disk.
    assert os.path.isdir(f"{tree}/fresh/a/b")
    assert os.listdir(f"{tree}/fresh") == []
    assert not os.path.isdir(f"{tree}/nowhere")
    code = f"import os; print(os.path.exists({tree + '/fresh'!r}))"
    assert run_handler(hooks, code).stdout.strip() == "False"
    with pytest.raises(OSError, match="not empty") as caught:
        os.rmdir(f"{tree}/sub")
    assert caught.value.errno == errno.ENOTEMPTY
    with pytest.raises(NotADirectoryError):
        os.rmdir(f"{tree}/a.txt")
    os.rmdir(f"{tree}/fresh/a/b")
    assert not os.path.exists(f"{tree}/fresh/a/b")
    shutil.rmtree(f"{tree}/fresh")
    assert not os.path.exists(f"{tree}/fresh/a")
    os.remove(f"{tree}/sub/deeper/d.txt")
    os.rmdir(f"{tree}/sub/deeper")


def test_chmod_and_utime_are_accepted(tree: str) -> None:
    os.chmod(f"{tree}/a.txt", 0o600)
    os.utime(f"{tree}/a.txt", (1, 1))
    assert read(f"{tree}/a.txt") == "aaa"


def test_extended_attributes(hooks: Connectors, ns: str) -> None:
    path = f"/state/{ns}/report.pdf"
    write(path, "v1")
    first = os.getxattr(path, "user.asya.etag")
    assert first
    write(path, "v2")
    assert os.getxattr(path, "user.asya.etag") != first
    os.setxattr(path, "user.asya.content_type", b"application/pdf")
    assert os.getxattr(path, "user.asya.content_type") == b"application/pdf"
    assert {"user.asya.etag", "user.asya.content_type"} <= set(os.listxattr(path))
    os.setxattr(path, "user.asya.ttl", b"3600")
    assert 0 < int(os.getxattr(path, "user.asya.ttl")) <= 3600
    os.removexattr(path, "user.asya.ttl")
    assert os.getxattr(path, "user.asya.ttl") == b"-1"  # the memory connector's "no expiry"
    with pytest.raises(OSError, match="has no attribute") as no_such:
        os.getxattr(path, "user.asya.no_such_thing")
    assert no_such.value.errno == errno.ENODATA
    with pytest.raises(OSError, match="No data available") as other_name:
        os.getxattr(path, "user.other")
    assert other_name.value.errno == errno.ENODATA
    with pytest.raises(OSError, match="read-only") as read_only:
        os.setxattr(path, "user.asya.etag", b"forged")
    assert read_only.value.errno == errno.ENOTSUP
    with pytest.raises(FileExistsError):
        os.setxattr(path, "user.asya.content_type", b"x", os.XATTR_CREATE)
    with pytest.raises(FileNotFoundError):
        os.getxattr(f"/state/{ns}/nope", "user.asya.etag")


@pytest.mark.parametrize("mount", ["state", "cas"])
def test_a_content_type_that_would_inject_headers_is_refused_and_the_file_stays_readable(
    hooks: Connectors, ns: str, mount: str
) -> None:
    path = f"/{mount}/{ns}/f"
    with open(path, "wb") as f:
        f.write(b"x" * 1000)
    with pytest.raises(OSError, match=r"user\.asya\.content_type") as caught:
        os.setxattr(path, "user.asya.content_type", b"text/plain\r\nContent-Length: 2")
    assert caught.value.errno == errno.EINVAL
    assert caught.value.filename == path
    with open(path, "rb") as f:
        assert f.read() == b"x" * 1000


def test_ttl_is_not_settable_where_the_backend_has_none(hooks: Connectors, ns: str) -> None:
    path = f"/cas/{ns}/f"
    write(path)
    with pytest.raises(OSError, match="TTL") as caught:
        os.setxattr(path, "user.asya.ttl", b"10")
    assert caught.value.errno == errno.ENOTSUP


def test_shutil_copies_between_state_and_local(tree: str, tmp_path: Path) -> None:
    shutil.copyfile(f"{tree}/a.txt", f"{tree}/copy.txt")
    shutil.copy(f"{tree}/a.txt", f"{tree}/sub")
    shutil.copy2(f"{tree}/a.txt", tmp_path / "local.txt")
    shutil.copy2(tmp_path / "local.txt", f"{tree}/back.txt")
    assert read(f"{tree}/copy.txt") == read(f"{tree}/sub/a.txt") == read(f"{tree}/back.txt")
    assert (tmp_path / "local.txt").read_text() == "aaa"

    shutil.copytree(tree, tmp_path / "out")
    assert (tmp_path / "out/sub/deeper/d.txt").read_text() == "dddd"
    shutil.copytree(tmp_path / "out", f"{tree}/again")
    assert read(f"{tree}/again/sub/deeper/d.txt") == "dddd"

    shutil.move(f"{tree}/copy.txt", tmp_path / "moved.txt")
    assert not os.path.exists(f"{tree}/copy.txt")
    shutil.move(tmp_path / "moved.txt", f"{tree}/moved-back.txt")
    assert read(f"{tree}/moved-back.txt") == "aaa"
    assert not (tmp_path / "moved.txt").exists()

    shutil.rmtree(f"{tree}/again")
    assert not os.path.exists(f"{tree}/again")
    with pytest.raises(FileNotFoundError):
        shutil.rmtree(f"{tree}/again")
    shutil.rmtree(f"{tree}/again", ignore_errors=True)
    seen: list[str] = []
    shutil.rmtree(f"{tree}/a.txt", onerror=lambda fn, path, info: seen.append(path))
    assert seen == [f"{tree}/a.txt"]


def test_pathlib(tree: str) -> None:
    base = Path(tree)
    (base / "p.txt").write_text("pathlib ✓", encoding="utf-8")
    assert (base / "p.txt").read_text(encoding="utf-8") == "pathlib ✓"
    (base / "p.bin").write_bytes(b"\x00\x01")
    assert (base / "p.bin").read_bytes() == b"\x00\x01"
    assert (base / "p.txt").exists()
    assert (base / "p.txt").is_file()
    assert (base / "sub").is_dir()
    assert not (base / "nope").exists()
    assert (base / "p.bin").stat().st_size == 2
    assert sorted(p.name for p in base.iterdir()) == [
        "a.txt",
        "b.json",
        "p.bin",
        "p.txt",
        "sub",
    ]
    assert sorted(p.name for p in base.glob("*.txt")) == ["a.txt", "p.txt"]
    assert sorted(str(p.relative_to(base)) for p in base.rglob("*.txt")) == [
        "a.txt",
        "p.txt",
        "sub/c.txt",
        "sub/deeper/d.txt",
    ]
    (base / "p.txt").rename(base / "q.txt")
    (base / "q.txt").replace(base / "r.txt")
    assert read(f"{tree}/r.txt") == "pathlib ✓"
    (base / "r.txt").unlink()
    (base / "r.txt").unlink(missing_ok=True)
    (base / "new/dir").mkdir(parents=True, exist_ok=True)
    (base / "marker").touch()
    (base / "marker").touch()
    assert (base / "marker").stat().st_size == 0
    with pytest.raises(FileExistsError):
        (base / "marker").touch(exist_ok=False)
    with (base / "a.txt").open() as f:
        assert f.read() == "aaa"


def test_paths_outside_mounts_and_descriptors_are_untouched(
    hooks: Connectors, tmp_path: Path
) -> None:
    local = tmp_path / "local.txt"
    with open(local, "w") as f:
        f.write("local")
        f.flush()
        assert os.stat(f.fileno()).st_size == 5
    assert os.listdir(tmp_path) == ["local.txt"]
    fd = os.open(local, os.O_RDONLY)
    with open(fd, closefd=True) as f:
        assert f.read() == "local"
    os.rename(local, tmp_path / "renamed.txt")
    shutil.rmtree(tmp_path)
    assert not tmp_path.exists()

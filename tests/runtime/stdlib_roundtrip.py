"""Run as a script by test_stdlib.py: standard-library modules that open files by name, on a mount.

``python stdlib_roundtrip.py ROOT`` writes and reads back through each module
under ROOT (a directory on a state mount, which need not exist locally) and
prints one JSON object mapping each module to "ok" or the traceback of its
failure. Each check also reads what the module wrote with plain ``open``
(which always goes through the hooks), so bytes that went to the local disk
instead of the backend fail it. The hooks come from sitecustomize; the test
runs this script with the modules imported before sitecustomize and after it.
"""

from __future__ import annotations

import bz2
import codecs
import dbm.dumb
import fileinput
import gzip
import io
import json
import linecache
import logging
import lzma
import os
import shelve
import sys
import tarfile
import traceback
import zipfile
from collections.abc import Callable

import asya_state_runtime

TEXT = "".join(f"line {i}: naïve café ☕\n" for i in range(2000))
PAYLOAD = os.urandom(3000) + TEXT.encode() * 3


def stored(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def check_bz2(root: str) -> None:
    path = f"{root}/text.bz2"
    with bz2.open(path, "wt", encoding="utf-8") as f:
        f.write(TEXT)
    assert bz2.decompress(stored(path)).decode() == TEXT
    with bz2.open(path, "rt", encoding="utf-8") as f:
        assert f.read() == TEXT
    with bz2.BZ2File(f"{root}/bytes.bz2", "wb") as f:
        f.write(PAYLOAD)
    with bz2.BZ2File(f"{root}/bytes.bz2") as f:
        assert f.read() == PAYLOAD


def check_lzma(root: str) -> None:
    path = f"{root}/text.xz"
    with lzma.open(path, "wt", encoding="utf-8") as f:
        f.write(TEXT)
    assert lzma.decompress(stored(path)).decode() == TEXT
    with lzma.open(path, "rt", encoding="utf-8") as f:
        assert f.read() == TEXT


def check_gzip(root: str) -> None:
    path = f"{root}/text.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(TEXT)
    with gzip.open(path, "at", encoding="utf-8") as f:
        f.write("appended\n")
    assert gzip.decompress(stored(path)).decode() == TEXT + "appended\n"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        assert f.read() == TEXT + "appended\n"


def members(archive: tarfile.TarFile) -> dict[str, bytes]:
    found = {}
    for member in archive.getmembers():
        if member.isfile():
            extracted = archive.extractfile(member)
            assert extracted is not None
            found[member.name] = extracted.read()
    return found


def check_tarfile(root: str) -> None:
    os.makedirs(f"{root}/src/sub", exist_ok=True)
    with open(f"{root}/src/sub/a.txt", "w") as f:
        f.write(TEXT)
    expected = {"src/sub/a.txt": TEXT.encode(), "payload.bin": PAYLOAD}
    for suffix, compression in (("", ""), (".gz", "gz"), (".bz2", "bz2"), (".xz", "xz")):
        path = f"{root}/backup.tar{suffix}"
        with tarfile.open(path, f"w:{compression}" if compression else "w") as archive:
            archive.add(f"{root}/src", arcname="src")  # stats and opens state paths by name
            info = tarfile.TarInfo("payload.bin")
            info.size = len(PAYLOAD)
            archive.addfile(info, io.BytesIO(PAYLOAD))
        # tarfile.open(path) with no mode detects the compression, as "r:*" does.
        with tarfile.open(path) as archive:
            assert members(archive) == expected, (path, "default mode")
        for mode in ["r", "r:*"] + ([f"r:{compression}"] if compression else []):
            with tarfile.open(path, mode) as archive:
                assert members(archive) == expected, (path, mode)
        with tarfile.open(fileobj=io.BytesIO(stored(path))) as archive:
            assert members(archive) == expected, (path, "stored bytes")
    path = f"{root}/backup.tar"
    with tarfile.open(path, "a") as archive:
        info = tarfile.TarInfo("appended.txt")
        info.size = 5
        archive.addfile(info, io.BytesIO(b"added"))
    with tarfile.open(path) as archive:
        assert members(archive) == {**expected, "appended.txt": b"added"}
        archive.extractall(f"{root}/restored")
    assert stored(f"{root}/restored/src/sub/a.txt") == TEXT.encode()
    assert stored(f"{root}/restored/payload.bin") == PAYLOAD


def check_zipfile(root: str) -> None:
    path = f"{root}/bundle.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_LZMA) as archive:
        archive.writestr("a.txt", TEXT)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_BZIP2) as archive:
        archive.writestr("b.bin", PAYLOAD)
    with zipfile.ZipFile(io.BytesIO(stored(path))) as archive:
        assert archive.testzip() is None
        assert archive.read("a.txt") == TEXT.encode()
        assert archive.read("b.bin") == PAYLOAD


def check_linecache(root: str) -> None:
    path = f"{root}/module.py"
    with open(path, "w", encoding="utf-8") as f:
        f.write("# -*- coding: utf-8 -*-\nx = 'naïve'\ny = 2\n")
    assert linecache.getline(path, 2) == "x = 'naïve'\n"
    assert linecache.getlines(path)[2] == "y = 2\n"


def check_fileinput(root: str) -> None:
    with open(f"{root}/one.txt", "w") as f:
        f.write("a\nb\n")
    with gzip.open(f"{root}/two.gz", "wt") as f:
        f.write("c\n")
    with bz2.open(f"{root}/three.bz2", "wt") as f:
        f.write("d\n")
    names = [f"{root}/one.txt", f"{root}/two.gz", f"{root}/three.bz2"]
    seen = []
    with fileinput.input(names, mode="rb", openhook=fileinput.hook_compressed) as lines:
        for line in lines:
            seen.append((os.path.basename(lines.filename()), lines.filelineno(), line))
    assert seen == [
        ("one.txt", 1, b"a\n"),
        ("one.txt", 2, b"b\n"),
        ("two.gz", 1, b"c\n"),
        ("three.bz2", 1, b"d\n"),
    ], seen
    with fileinput.input(f"{root}/one.txt", inplace=True) as lines:
        for line in lines:
            print(line.upper(), end="")
    assert stored(f"{root}/one.txt") == b"A\nB\n"


def check_codecs(root: str) -> None:
    path = f"{root}/utf16.txt"
    with codecs.open(path, "w", encoding="utf-16") as f:
        f.write(TEXT)
    assert stored(path).decode("utf-16") == TEXT
    with codecs.open(path, encoding="utf-16") as f:
        assert f.read() == TEXT


def check_shelve(root: str) -> None:
    path = f"{root}/db"
    with shelve.Shelf(dbm.dumb.open(path, "c")) as db:
        db["text"] = TEXT
        db["numbers"] = list(range(1000))
    with shelve.Shelf(dbm.dumb.open(path, "w")) as db:
        db["text"] = "replaced"
    # shelve.open finds the dumb database by name, through the hooks.
    with shelve.open(path, "r") as db:
        assert dict(db) == {"text": "replaced", "numbers": list(range(1000))}
    assert sorted(os.listdir(root)) == ["db.bak", "db.dat", "db.dir"]


def check_logging(root: str) -> None:
    path = f"{root}/app.log"
    logger = logging.getLogger(f"roundtrip.{root}")
    logger.propagate = False
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    for i in range(100):
        logger.warning("record %d café", i)
    handler.close()
    logger.removeHandler(handler)
    expected = "".join(f"WARNING record {i} café\n" for i in range(100))
    assert stored(path).decode() == expected


CHECKS: dict[str, Callable[[str], None]] = {
    "bz2": check_bz2,
    "lzma": check_lzma,
    "gzip": check_gzip,
    "tarfile": check_tarfile,
    "zipfile": check_zipfile,
    "linecache": check_linecache,
    "fileinput": check_fileinput,
    "codecs": check_codecs,
    "shelve": check_shelve,
    "logging": check_logging,
}


def main() -> None:
    root = sys.argv[1]
    assert asya_state_runtime.is_installed(), "the hooks are not installed"
    results = {}
    for name, check in CHECKS.items():
        os.makedirs(f"{root}/{name}")
        try:
            check(f"{root}/{name}")
            results[name] = "ok"
        except Exception:
            results[name] = traceback.format_exc()
    print(json.dumps(results))


if __name__ == "__main__":
    main()

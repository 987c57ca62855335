"""Library compatibility: common libraries reading and writing state paths by name.

Each library goes through a real connector over a real socket. Libraries that
do their I/O in C (sqlite3, parquet readers) are shown with the documented
io.BytesIO pattern instead.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import os
import pickle
import sqlite3
import zipfile

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.runtime.conftest import Connectors, run_handler

DATA = {"name": "café", "values": [1, 2.5, None, True], "nested": {"k": "v"}}


def test_json(hooks: Connectors, ns: str) -> None:
    path = f"/state/{ns}/data.json"
    with open(path, "w", encoding="utf-8") as f:
        json.dump(DATA, f, ensure_ascii=False)
    with open(path, encoding="utf-8") as f:
        assert json.load(f) == DATA


def test_csv(hooks: Connectors, ns: str) -> None:
    path = f"/cas/{ns}/rows.csv"
    rows = [["id", "text"], ["1", "comma, inside"], ["2", 'quote " and\nnewline']]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with open(path, newline="") as f:
        assert list(csv.reader(f)) == rows


def test_pickle(hooks: Connectors, ns: str) -> None:
    path = f"/state/{ns}/model.pkl"
    value = {"weights": list(range(10_000)), "meta": ("a", 1.5, frozenset({3}))}
    with open(path, "wb") as f:
        pickle.dump(value, f)
    with open(path, "rb") as f:
        assert pickle.load(f) == value


def test_yaml(hooks: Connectors, ns: str) -> None:
    path = f"/state/{ns}/spec.yaml"
    with open(path, "w") as f:
        yaml.safe_dump(DATA, f, allow_unicode=True)
    with open(path) as f:
        assert yaml.safe_load(f) == DATA


def test_gzip(hooks: Connectors, ns: str) -> None:
    path = f"/stream/{ns}/log.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(f"line {i}\n" for i in range(5000))
    with gzip.open(path, "rt", encoding="utf-8") as f:
        assert sum(1 for _ in f) == 5000


def test_zipfile_write_append_and_read(hooks: Connectors, ns: str) -> None:
    path = f"/state/{ns}/bundle.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.txt", "alpha")
        archive.writestr("dir/b.bin", bytes(range(256)) * 100)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("c.txt", "gamma")
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == ["a.txt", "c.txt", "dir/b.bin"]
        assert archive.read("a.txt") == b"alpha"
        with archive.open("dir/b.bin") as member:
            assert member.read() == bytes(range(256)) * 100


def test_tarfile_in_a_handler(hooks: Connectors, ns: str) -> None:
    # tarfile binds open() at import, so it is exercised the production way:
    # hooks installed at interpreter start, before any import.
    run_handler(
        hooks,
        f"""
        import io, os, tarfile
        src = "/state/{ns}/src"
        os.makedirs(src, exist_ok=True)
        for name in ("a.txt", "sub/b.txt"):
            with open(f"{{src}}/{{name}}", "w") as f:
                f.write(name * 3)
        with tarfile.open("/state/{ns}/backup.tar.gz", "w:gz") as archive:
            archive.add(src, arcname="src")
        with tarfile.open("/state/{ns}/backup.tar.gz") as archive:
            names = sorted(m.name for m in archive.getmembers() if m.isfile())
            assert names == ["src/a.txt", "src/sub/b.txt"], names
            assert archive.extractfile("src/sub/b.txt").read() == b"sub/b.txt" * 3
            archive.extractall("/state/{ns}/restored")
        with open("/state/{ns}/restored/src/a.txt") as f:
            assert f.read() == "a.txt" * 3
        """,
    )


def test_numpy_save_and_load_by_path(hooks: Connectors, ns: str) -> None:
    array = np.arange(100_000, dtype=np.float64).reshape(1000, 100)
    path = f"/state/{ns}/array.npy"
    np.save(path, array)
    assert np.array_equal(np.load(path), array)
    np.savez_compressed(f"/state/{ns}/arrays.npz", a=array, b=array[:3])
    with np.load(f"/state/{ns}/arrays.npz") as loaded:
        assert np.array_equal(loaded["b"], array[:3])


def test_pandas_csv_by_path(hooks: Connectors, ns: str) -> None:
    frame = pd.DataFrame({"id": [1, 2, 3], "text": ["a", "b, c", "ü"]})
    # pandas checks that the parent directory exists, as it would on a local disk.
    os.makedirs(f"/cas/{ns}/reports", exist_ok=True)
    # Compression inferred from the name: bz2 and lzma open by name with their own open.
    names = ("frame.csv", "frame.csv.bz2", "frame.csv.xz", "frame.csv.gz", "frame.csv.zip")
    for path in [f"/cas/{ns}-frame.csv"] + [f"/cas/{ns}/reports/{name}" for name in names]:
        frame.to_csv(path, index=False)
        pd.testing.assert_frame_equal(pd.read_csv(path), frame)
    with open(f"/cas/{ns}/reports/frame.csv.bz2", "rb") as f:
        assert bz2.decompress(f.read()).decode() == frame.to_csv(index=False)


def test_sqlite_through_the_bytesio_pattern(hooks: Connectors, ns: str) -> None:
    # sqlite3 opens files in C; the database travels through open() as bytes.
    path = f"/state/{ns}/app.db"
    db = sqlite3.connect(":memory:")
    db.execute("create table t (k text primary key, v integer)")
    db.executemany("insert into t values (?, ?)", [("a", 1), ("b", 2)])
    db.commit()
    with open(path, "wb") as f:
        f.write(db.serialize())
    db.close()

    with open(path, "rb") as f:
        restored = sqlite3.connect(":memory:")
        restored.deserialize(f.read())
    assert restored.execute("select sum(v) from t").fetchone() == (3,)
    restored.close()


def test_numpy_through_the_bytesio_pattern(hooks: Connectors, ns: str) -> None:
    path = f"/state/{ns}/via-bytes.npy"
    buffer = io.BytesIO()
    np.save(buffer, np.eye(3))
    with open(path, "wb") as f:
        f.write(buffer.getvalue())
    with open(path, "rb") as f:
        assert np.array_equal(np.load(io.BytesIO(f.read())), np.eye(3))


def test_numpy_tofile_and_fromfile_need_the_bytes_pattern(hooks: Connectors, ns: str) -> None:
    # tofile/fromfile want a file descriptor and have no fallback (README says so).
    path = f"/state/{ns}/raw.f64"
    array = np.arange(10_000, dtype=np.float64)
    with pytest.raises(io.UnsupportedOperation, match="fileno"):
        array.tofile(path)  # numpy opens the path with the hooked open, then wants fileno()
    with open(path, "wb") as f, pytest.raises(io.UnsupportedOperation, match="fileno"):
        array.tofile(f)
    with open(path, "wb") as f:
        f.write(array.tobytes())
    with open(path, "rb") as f, pytest.raises(io.UnsupportedOperation, match="fileno"):
        np.fromfile(f, dtype=np.float64)
    with pytest.raises(io.UnsupportedOperation, match="fileno"):
        np.fromfile(path, dtype=np.float64)
    with open(path, "rb") as f:
        assert np.array_equal(np.frombuffer(f.read(), dtype=np.float64), array)

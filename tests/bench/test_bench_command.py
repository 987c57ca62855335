"""``asya-state bench`` end to end at a tiny scale: real connectors, pods and handler processes.

The numbers themselves are never asserted (speed lives in the benchmark);
what a user relies on is: the run finishes, every workload is reported for
both paths, the JSON matches the table, and the contention run is correct
(every increment lands exactly once).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

WORKLOADS = ["write 1 KiB", "read 1 KiB", "stat 1 KiB", "exists 1 KiB"]


def bench(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asya_state_cli", "bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Any]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    completed = bench(
        "--backend", "memory", "--backend", "fs", "--quick", "--scale", "0.01", "--json", str(out)
    )
    assert completed.returncode == 0, completed.stderr
    return completed, json.loads(out.read_text())


def test_every_small_workload_is_measured_on_both_paths(run: tuple[Any, Any]) -> None:
    _, results = run
    rows = {(r["backend"], r["workload"]): r for r in results["latency"]}
    for backend in ("memory", "fs"):
        for workload in [*WORKLOADS, "listdir 5 keys"]:
            row = rows[(backend, workload)]
            assert row["proxy"]["n"] == row["direct"]["n"] > 0
            assert 0 < row["proxy"]["p50_us"] <= row["proxy"]["p99_us"]
            assert row["ratio_p50"] == pytest.approx(
                row["proxy"]["p50_us"] / row["direct"]["p50_us"]
            )
    assert rows[("fs", "read 1 KiB")]["proxy"]["n"] == 20  # 2,000 operations at scale 0.01


def test_large_transfers_report_rate_and_memory_of_both_processes(run: tuple[Any, Any]) -> None:
    _, results = run
    workloads = {r["workload"]: r for r in results["throughput"] if r["backend"] == "fs"}
    assert set(workloads) == {
        "buffered write",
        "passthrough write",
        "buffered read",
        "passthrough read",
    }
    for row in workloads.values():
        assert row["size"] == round(256 * 1024 * 1024 * 0.01)
        assert row["proxy_mbps"] > 0
        assert row["direct_mbps"] > 0
        assert row["handler_rss_growth"] >= 0
        assert row["connector_rss_growth"] >= 0
    skipped = {(r["backend"], r["workload"]) for r in results["skipped"]}
    assert ("memory", "large 2.56 MiB") in skipped


def test_concurrency_and_keepalive_baselines_are_reported(run: tuple[Any, Any]) -> None:
    _, results = run
    threads = {(r["backend"], r["threads"]) for r in results["concurrency"]}
    assert threads == {(b, t) for b in ("memory", "fs") for t in (1, 8, 32)}
    keep = {(r["backend"], r["workload"]) for r in results["keepalive"]}
    assert keep == {(b, w) for b in ("memory", "fs") for w in ("write 1 KiB", "read 1 KiB")}


def test_contention_counts_every_increment_exactly_once(run: tuple[Any, Any]) -> None:
    _, results = run
    (row,) = results["contention"]
    assert row["backend"] == "fs"
    assert row["connector"] == "fs-buffered-cas"
    assert row["replicas"] == 8
    assert row["failed"] == 0
    assert row["final_count"] == row["messages"]


def test_targets_and_machine_are_in_the_table_and_the_json(run: tuple[Any, Any]) -> None:
    completed, results = run
    names = {(t["backend"], t["name"]) for t in results["targets"]}
    assert ("fs", "8 threads of small reads vs 1 thread (ops/s)") in names
    assert ("memory", "pooled small read p50 vs one connection per request") in names
    assert results["machine"]["cpus"] >= 1
    for title in ("Latency per operation", "Large objects", "Concurrent small reads",
                  "Pooled keep-alive", "Contention", "Targets", "Machine:"):  # fmt: skip
        assert title in completed.stdout
    assert results["command"] in completed.stdout


def test_populated_mode_measures_each_operation_at_each_size_beside_other_mounts(
    tmp_path: Any,
) -> None:
    out = tmp_path / "populated.json"
    completed = bench(
        "--backend", "redis", "--backend", "memory", "--populated", "10,500",
        "--scale", "0.05", "--json", str(out),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    results = json.loads(out.read_text())
    rows = {(r["backend"], r["foreign"], r["workload"]): r for r in results["populated"]}
    workloads = ["exists (present)", "exists (missing)", "stat", "listdir 5 entries"]
    assert set(rows) == {("redis", size, w) for size in (10, 500) for w in workloads}
    for row in rows.values():
        assert row["proxy"]["n"] == row["direct"]["n"] > 0
    assert rows[("redis", 500, "stat")]["proxy"]["n"] == 20  # 400 samples at scale 0.05
    skipped = {(r["backend"], r["workload"]) for r in results["skipped"]}
    assert ("memory", "populated backend") in skipped
    names = {t["name"] for t in results["targets"] if t["backend"] == "redis"}
    assert "stat p50, 500 vs 10 foreign keys" in names
    assert "exists (missing) p50 vs a one-request stat, 500 foreign keys" in names
    assert results["latency"] == []
    assert results["contention"] == []
    assert "Populated backends" in completed.stdout


@pytest.mark.slow
def test_populated_s3_compares_a_missing_file_with_upstreams_pattern_behind_a_link(
    tmp_path: Any,
) -> None:
    out = tmp_path / "missing.json"
    completed = bench(
        "--backend", "s3", "--populated", "5", "--scale", "0.05", "--latency-ms", "1",
        "--json", str(out),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    results = json.loads(out.read_text())
    assert "--latency-ms 1" in results["command"]
    rows = {r["workload"]: r for r in results["populated"]}
    for workload in ("missing: exists", "missing: os.stat", "missing: open"):
        row = rows[workload]
        assert row["direct_label"] == "boto3"
        assert row["proxy"]["n"] == row["direct"]["n"] == row["upstream"]["n"] == 20
    assert rows["stat"]["upstream"] is None
    names = {t["name"] for t in results["targets"]}
    assert "missing: open p50 vs upstream's pattern, 5 foreign keys" in names
    assert "upstream p50" in completed.stdout


def test_bad_arguments_are_refused_with_the_option_named() -> None:
    completed = bench("--scale", "2")
    assert completed.returncode == 2
    assert "--scale must be in (0, 1]" in completed.stderr
    completed = bench("--backend", "mongo")
    assert completed.returncode == 2
    assert "--backend" in completed.stderr
    completed = bench("--populated", "many")
    assert completed.returncode == 2
    assert "--populated takes sizes" in completed.stderr


@pytest.mark.slow
def test_the_transfer_mode_compares_every_side_on_the_shaped_link(tmp_path: Any) -> None:
    """Both stores, both mounts, the transfer manager (or why not), one stream, first bytes."""
    out = tmp_path / "transfer.json"
    completed = bench(
        "--transfer", "--size-mib", "16", "--cap", "40", "--json", str(out), timeout=600
    )
    assert completed.returncode == 0, completed.stderr
    results = json.loads(out.read_text())
    rows = {(r["backend"], r["mount"], r["workload"]): r for r in results["rows"]}
    assert set(rows) == {
        (backend, mount, kind)
        for backend in ("s3", "gcs")
        for mount in ("buffered", "passthrough")
        for kind in ("write", "read")
    }
    for (backend, _, kind), row in rows.items():
        assert row["size"] == 16 * 1024 * 1024
        assert row["connector_seconds"] > 0
        assert row["one_stream_seconds"] > 0
        assert row["manager_seconds"] > 0
        # fake-gcs-server does not serve the XML multipart uploads GCS's manager writes
        # with: the library's parallel composite upload stands in, and the note says so.
        if backend == "gcs" and kind == "write":
            assert "stand-in: parallel composite upload" in row["manager_note"]
        else:
            assert row["manager_note"] == ""
    assert set(results["first_byte_seconds"]) == {"s3", "gcs"}
    assert results["plan"]["rate"] == 40_000_000
    assert "Large objects behind a shaped link: 40 MB/s per connection" in completed.stdout

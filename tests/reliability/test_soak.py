"""Soak: 32 threads across 4 replicas of mixed operations, checked against a checksum ledger.

Every pod has its own connector process on the shared backend. The short
version runs in the suite; ``--soak`` runs a long one. Afterwards every key's
stored bytes must match the last write its owner recorded, the shared CAS
counter must equal the number of increments that succeeded, and the
connectors' memory must not trend upwards.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from asya_state_cli.runner.mounts import Mount
from asya_state_cli.runner.pod import Pod
from tests.fixtures.connectors import env_fixture_name

HERE = Path(__file__).parent
REPLICAS = 4
THREADS = 8


def _run_soak(connector: str, env: dict[str, str], iterations: int) -> None:
    with tempfile.TemporaryDirectory(prefix="asya-soak-", dir="/tmp") as workdir:
        mount = Mount("state", "/state", connector, "buffered", env)
        pods = [
            Pod(
                i,
                [mount],
                "soak_handlers.run",
                workdir=Path(workdir),
                handler_path=HERE,
                connector_env={},
            )
            for i in range(REPLICAS)
        ]
        try:
            for pod in pods:
                pod.start()
            samples: list[list[int]] = []
            done = threading.Event()

            def sample() -> None:
                processes = [psutil.Process(pod.connectors[0].pid) for pod in pods]
                while not done.is_set():
                    samples.append([p.memory_info().rss for p in processes])
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            replies: list[dict[str, Any]] = [{} for _ in pods]

            def drive(index: int) -> None:
                replies[index] = pods[index].handle(
                    index,
                    {"pod": index, "threads": THREADS, "iterations": iterations, "seed": index},
                )

            drivers = [threading.Thread(target=drive, args=(i,)) for i in range(REPLICAS)]
            for driver in drivers:
                driver.start()
            for driver in drivers:
                driver.join()
            done.set()
            sampler.join()

            threads = [t for reply in replies for t in reply["outputs"][0]["threads"].values()]
            errors = [e for t in threads for e in t["errors"]]
            assert not errors, errors[:10]
            assert sum(t["ops"] for t in threads) == REPLICAS * THREADS * iterations

            # Verify the ledger through a fresh pod: what each owner last wrote is what is stored.
            checker = Pod(
                REPLICAS,
                [mount],
                "soak_verify.verify",
                workdir=Path(workdir),
                handler_path=HERE,
                connector_env={},
            )
            checker.start()
            ledger = {k: v for t in threads for k, v in t["ledger"].items()}
            verdict = checker.handle(0, {"ledger": ledger, "counter": "/state/soak/counter.json"})
            checker.stop()
            report = verdict["outputs"][0]
            assert report["mismatched"] == [], report["mismatched"][:10]
            increments = sum(t["increments"] for t in threads)
            assert report["counter"] == increments, (
                "every successful CAS increment counted exactly once"
            )

            _assert_no_rss_trend(samples)
        finally:
            for pod in pods:
                pod.stop()


def _assert_no_rss_trend(samples: list[list[int]]) -> None:
    assert len(samples) >= 8, "the run was too short to sample memory"
    per_connector = list(zip(*samples, strict=True))
    for series in per_connector:
        quarter = len(series) // 4
        early = statistics.median(series[quarter : 2 * quarter])
        late = statistics.median(series[-quarter:])
        assert late - early < 24 * 1024 * 1024, (
            f"connector RSS grew from {early >> 20} to {late >> 20} MiB"
        )


@pytest.mark.parametrize("connector", ["fs-buffered-cas", "redis-buffered-cas"])
def test_short_soak(connector: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    env = dict(request.getfixturevalue(env_fixture_name(connector)))
    env["STATE_PREFIX"] = f"soak-{tmp_path.name}"
    if connector.startswith("fs-"):
        env["STATE_DIR"] = str(tmp_path / "data")
    _run_soak(connector, env, iterations=60)


@pytest.mark.soak
@pytest.mark.parametrize("connector", ["fs-buffered-cas", "redis-buffered-cas"])
def test_long_soak(connector: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    env = dict(request.getfixturevalue(env_fixture_name(connector)))
    env["STATE_PREFIX"] = f"soak-{tmp_path.name}"
    if connector.startswith("fs-"):
        env["STATE_DIR"] = str(tmp_path / "data")
    _run_soak(connector, env, iterations=2000)

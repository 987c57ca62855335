"""Percentiles as the benchmark reports them: nearest rank, always an observed latency."""

from __future__ import annotations

import pytest

from asya_state_cli.bench.stats import Latency, percentile


def test_nearest_rank_percentiles() -> None:
    ordered = [float(v) for v in range(1, 101)]
    assert percentile(ordered, 0.50) == 50.0
    assert percentile(ordered, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([1.0, 2.0, 3.0], 0.5) == 2.0


def test_latency_summary_converts_nanoseconds_and_sorts() -> None:
    latency = Latency.of([3000, 1000, 2000, 100_000])
    assert latency.n == 4
    assert latency.p50_us == 2.0
    assert latency.p99_us == 100.0
    assert latency.mean_us == pytest.approx(26.5)


def test_no_samples_is_an_error() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 0.5)

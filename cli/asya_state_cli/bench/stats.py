"""Summaries of raw measurements: latency percentiles, rates and ratios.

Owns: the percentile definition used everywhere in the benchmark (nearest
rank, so a p99 is a latency that was actually observed) and the guarded
ratio.

Must not: know workloads or formatting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of ascending ``ordered`` (``fraction`` in (0, 1])."""
    if not ordered:
        raise ValueError("no samples")
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


@dataclass(frozen=True)
class Latency:
    """Per-operation latency of one workload on one path, in microseconds."""

    n: int
    p50_us: float
    p99_us: float
    mean_us: float

    @classmethod
    def of(cls, samples_ns: Sequence[int]) -> Latency:
        ordered = sorted(s / 1000 for s in samples_ns)
        return cls(
            n=len(ordered),
            p50_us=percentile(ordered, 0.50),
            p99_us=percentile(ordered, 0.99),
            mean_us=sum(ordered) / len(ordered),
        )

"""Structured logs and Prometheus metrics of a connector, standard library only.

Owns: the JSON log format (one object per line: time, level, logger,
message, and request fields — request id, operation, key hash, status,
duration), and the metrics a connector exports in the Prometheus text
format: requests by operation and status, latency histograms, bytes in and
out, backend errors and CAS conflicts.

Must not: log object bodies or credentials. Keys are logged only as a short
hash, since names can carry user data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from bisect import bisect_left
from collections import defaultdict

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_REQUEST_FIELDS = (
    "request_id",
    "operation",
    "key_hash",
    "status",
    "duration_ms",
    "code",
    "connector",
)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _REQUEST_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, *, json_format: bool) -> None:
    handler = logging.StreamHandler()
    if json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class Metrics:
    """Counters and histograms, rendered in the Prometheus text exposition format."""

    def __init__(self, connector: str) -> None:
        self.connector = connector
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, int], int] = defaultdict(int)
        self._latency_counts: dict[str, list[int]] = defaultdict(
            lambda: [0] * (len(LATENCY_BUCKETS) + 1)
        )
        self._latency_sum: dict[str, float] = defaultdict(float)
        self._bytes: dict[str, int] = {"in": 0, "out": 0}
        self._errors: dict[str, int] = defaultdict(int)
        self._conflicts = 0
        self._started = time.time()

    def observe(self, operation: str, status: int, seconds: float, code: str | None) -> None:
        with self._lock:
            self._requests[(operation, status)] += 1
            self._latency_counts[operation][bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self._latency_sum[operation] += seconds
            if status == 409:
                self._conflicts += 1
            if status >= 500 and code is not None:
                self._errors[code] += 1

    def add_bytes(self, direction: str, count: int) -> None:
        with self._lock:
            self._bytes[direction] += count

    def render(self) -> str:
        label = f'connector="{self.connector}"'
        lines = [
            "# HELP asya_state_requests_total Protocol requests by operation and status.",
            "# TYPE asya_state_requests_total counter",
        ]
        with self._lock:
            for (operation, status), count in sorted(self._requests.items()):
                lines.append(
                    f'asya_state_requests_total{{{label},operation="{operation}",status="{status}"}} {count}'
                )
            lines += [
                "# HELP asya_state_request_duration_seconds Request latency by operation.",
                "# TYPE asya_state_request_duration_seconds histogram",
            ]
            for operation, counts in sorted(self._latency_counts.items()):
                cumulative = 0
                for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
                    cumulative += count
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    lines.append(
                        f'asya_state_request_duration_seconds_bucket{{{label},operation="{operation}",le="{le}"}} {cumulative}'
                    )
                lines.append(
                    f'asya_state_request_duration_seconds_sum{{{label},operation="{operation}"}} {self._latency_sum[operation]:.6f}'
                )
                lines.append(
                    f'asya_state_request_duration_seconds_count{{{label},operation="{operation}"}} {cumulative}'
                )
            lines += [
                "# HELP asya_state_bytes_total Object bytes received and sent.",
                "# TYPE asya_state_bytes_total counter",
            ]
            for direction, count in sorted(self._bytes.items()):
                lines.append(f'asya_state_bytes_total{{{label},direction="{direction}"}} {count}')
            lines += [
                "# HELP asya_state_backend_errors_total Server-side errors by code.",
                "# TYPE asya_state_backend_errors_total counter",
            ]
            for code, count in sorted(self._errors.items()):
                lines.append(f'asya_state_backend_errors_total{{{label},code="{code}"}} {count}')
            lines += [
                "# HELP asya_state_cas_conflicts_total Conditional writes and deletes refused (409).",
                "# TYPE asya_state_cas_conflicts_total counter",
                f"asya_state_cas_conflicts_total{{{label}}} {self._conflicts}",
                "# HELP asya_state_start_time_seconds When the connector started.",
                "# TYPE asya_state_start_time_seconds gauge",
                f"asya_state_start_time_seconds{{{label}}} {self._started:.3f}",
            ]
        return "\n".join(lines) + "\n"

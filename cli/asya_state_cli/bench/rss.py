"""Peak resident memory of running processes, sampled while a workload runs.

Owns: a sampler thread polling each process's RSS with psutil every few
milliseconds between ``__enter__`` and ``__exit__``, and the growth of each
peak over the RSS the process had when sampling started (what one large
transfer costs, whatever the process held before).

Must not: signal or otherwise touch the processes it watches.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Self

import psutil

INTERVAL = 0.005


class PeakRss:
    """``with PeakRss({"handler": pid, ...}) as rss: ...`` then ``rss.growth(name)``."""

    def __init__(self, pids: Mapping[str, int], interval: float = INTERVAL) -> None:
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._interval = interval
        self._start: dict[str, int] = {}
        self._peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)

    def _sample(self) -> None:
        for name, process in self._processes.items():
            try:
                rss = process.memory_info().rss
            except psutil.Error:
                continue  # an exited process keeps the peak it reached
            self._peak[name] = max(self._peak.get(name, 0), rss)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> Self:
        for name, process in self._processes.items():
            self._start[name] = self._peak[name] = process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def growth(self, name: str) -> int:
        """Bytes the peak RSS of ``name`` rose above its RSS at the start."""
        return max(0, self._peak[name] - self._start[name])

"""``asya-state bench``: what the file API over a connector costs next to the backend's own client.

Owns, split by concern: ``stores`` and ``handler`` (the workload side, run
inside a pod's handler process with the runtime hooks active), ``rigs``
(loopback servers, connector settings and direct-client settings per
backend), ``pod`` and ``rss`` (process orchestration and memory sampling),
``suite`` and ``contention`` (the interleaved workloads), ``stats``,
``results`` and ``report`` (numbers, targets, table and JSON).

Must not: be imported by the runtime or by a connector image; timing
assertions live here, never in the test suites.
"""

"""One ``asya-state bench`` run: every requested backend, one after another.

Owns: a private working directory (short, under /tmp, because Unix socket
paths are limited), the lifecycle per backend (rig up, a shaped link in
front of an object-store emulator when a latency is asked, benchmark pod,
workloads, contention pods, everything down again before the next
backend starts so backends never compete for the two cores), recording
why a backend or workload was not measured, and the target verdicts.

Must not: print results (the command does) or keep anything after the run.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..connector_process import ConnectorStartError
from ..runner.pod import PodError
from ..servers.base import ServerStartError
from ..servers.shaper import ShapedLink
from .contention import example_dir, run_contention
from .machine import describe
from .pod import BenchPod, TaskFailed
from .report import evaluate
from .results import Results, Skipped
from .rigs import RIGS, Rig, behind_link, unavailable
from .stores import BenchError
from .suite import BackendSuite, Plan, Say

# Failures that end one backend's run but not the others'.
BACKEND_FAILURES = (BenchError, PodError, ConnectorStartError, ServerStartError)


def run_bench(
    backends: Sequence[str], plan: Plan, *, command: str, quick: bool, say: Say
) -> tuple[Results, list[str]]:
    """Measure ``backends``; returns the results and the backends that failed."""
    results = Results(command=command, quick=quick, machine=describe())
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="asya-bench-", dir="/tmp") as tmp:
        for name in backends:
            reason = unavailable(name)
            if reason is not None:
                say(f"{name}: not available: {reason}")
                results.skipped.append(Skipped(name, "every workload", reason))
                continue
            try:
                with contextlib.ExitStack() as stack:
                    rig = stack.enter_context(RIGS[name](Path(tmp) / name))
                    if plan.latency and rig.endpoint_env is not None:
                        upstream = rig.connector_env[rig.endpoint_env]
                        link = stack.enter_context(
                            ShapedLink(upstream, rate=0, latency=plan.latency)
                        )
                        rig = behind_link(rig, link.url)
                    _run_backend(rig, plan, Path(tmp) / name, results, say)
            except BACKEND_FAILURES as exc:
                say(f"{name}: failed: {exc}")
                if isinstance(exc, TaskFailed):
                    say(f"{name}: the handler's traceback:\n{exc.traceback}")
                results.skipped.append(Skipped(name, "remaining workloads", f"failed: {exc}"))
                failed.append(name)
    results.targets = evaluate(results)
    return results, failed


def _run_backend(rig: Rig, plan: Plan, workdir: Path, results: Results, say: Say) -> None:
    say(f"{rig.name}: starting connectors and the handler process")
    pod = BenchPod(rig, workdir / "pod")
    try:
        pod.start()
        BackendSuite(rig, pod, plan, say).run(results)
    finally:
        pod.stop()
    if plan.populated:
        return  # the populated-backend mode measures nothing else
    example = example_dir()
    if rig.cas_connector is None:
        results.skipped.append(
            Skipped(rig.name, "contention", "each replica's connector would have its own store")
        )
    elif example is None:
        results.skipped.append(
            Skipped(
                rig.name, "contention", "examples/cas-counter not found (not a source checkout)"
            )
        )
    else:
        say(
            f"{rig.name}: contention, {plan.replicas} replicas x "
            f"{plan.contention_messages} increments on {rig.cas_connector}"
        )
        results.contention.append(
            run_contention(
                rig,
                rig.cas_connector,
                example,
                workdir / "contention",
                plan.replicas,
                plan.contention_messages,
            )
        )

"""``asya-state bench --transfer``: large objects through S3 and GCS behind a shaped link.

Owns: the transfer mode of the benchmark. For each of s3 and gcs it starts
the store (moto, fake-gcs-server) on loopback behind ``ShapedLink`` (every
connection capped, as a real store caps one stream, plus optional latency),
a benchmark pod whose connectors use that link with ``--concurrency`` parts
in flight, and measures on the same link, one after another: a streamed
write and a sequential read of one large object through the file API
(buffered and passthrough mounts, with the connector's peak RSS growth), the
library's own transfer manager at the same concurrency and part size
(boto3's, google-cloud-storage's ``transfer_manager``), one stream of the
same library, and the time to the first byte of a read through the file
API and through one plain GET. Targets: at least 0.9x the transfer manager
and 6x one stream, connector RSS growth at most 128 MiB.

Must not: reach any server it did not start, or assert anything (it reports).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..servers.shaper import ShapedLink
from .machine import describe
from .pod import BUFFERED, PASSTHROUGH, BenchPod, TaskFailed, mount_store
from .rigs import Rig
from .rss import PeakRss

MB = 1_000_000
MiB = 1024 * 1024
KEY = "large/transfer.bin"
Say = Callable[[str], None]

TARGET_VS_MANAGER = 0.9
TARGET_VS_ONE_STREAM = 6.0
TARGET_RSS = 128 * MiB


@dataclass(frozen=True)
class TransferPlan:
    size: int = 1024 * MiB
    rate: float = 12 * MB  # bytes per second, per connection and direction
    latency: float = 0.0  # seconds, one way
    concurrency: int = 8
    part_size: int = 8 * MiB


@dataclass
class TransferRow:
    backend: str
    workload: str  # "write" or "read"
    mount: str  # "buffered" or "passthrough"
    size: int
    connector_seconds: float
    connector_rss_growth: int
    manager_seconds: float | None
    one_stream_seconds: float
    manager_note: str = ""

    @property
    def connector_mbps(self) -> float:
        return self.size / self.connector_seconds / MB

    @property
    def vs_manager(self) -> float | None:
        if self.manager_seconds is None:
            return None
        return self.manager_seconds / self.connector_seconds

    @property
    def vs_one_stream(self) -> float:
        return self.one_stream_seconds / self.connector_seconds


@dataclass
class TransferResults:
    command: str
    plan: TransferPlan
    machine: dict[str, Any] = field(default_factory=describe)
    rows: list[TransferRow] = field(default_factory=list)
    first_byte: dict[str, dict[str, float]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "plan": asdict(self.plan),
            "machine": self.machine,
            "rows": [
                {
                    **asdict(row),
                    "connector_mbps": row.connector_mbps,
                    "vs_manager": row.vs_manager,
                    "vs_one_stream": row.vs_one_stream,
                }
                for row in self.rows
            ],
            "first_byte_seconds": self.first_byte,
            "failed": self.failed,
        }


@contextlib.contextmanager
def _store(name: str, plan: TransferPlan) -> Iterator[tuple[Rig, dict[str, Any], ShapedLink]]:
    """The store behind the shaped link: the rig for the pod and the direct clients' settings."""
    tuning = {"concurrency": plan.concurrency, "part_size": plan.part_size}
    if name == "s3":
        from ..servers.moto import MotoServer

        server: Any = MotoServer()
    else:
        from ..servers.fake_gcs import FakeGcsServer

        server = FakeGcsServer()
    with server:
        for bucket in ("asya-bench", "asya-bench-direct"):
            server.create_bucket(bucket)
        with ShapedLink(server.url, rate=plan.rate, latency=plan.latency) as link:
            env: dict[str, str] = server.connector_env("asya-bench")
            if name == "s3":
                env["AWS_ENDPOINT_URL"] = link.url
                env["S3_PART_SIZE"] = str(plan.part_size)
                env["S3_PARTS_IN_FLIGHT"] = str(plan.concurrency)
                direct = {
                    "kind": "s3",
                    "endpoint": link.url,
                    "region": env["AWS_REGION"],
                    "bucket": "asya-bench-direct",
                    "access_key": env["AWS_ACCESS_KEY_ID"],
                    "secret_key": env["AWS_SECRET_ACCESS_KEY"],
                    **tuning,
                }
                connectors = ("s3-buffered-cas", "s3-passthrough", "boto3")
            else:
                env["STORAGE_EMULATOR_HOST"] = link.url
                env["GCS_CHUNK_SIZE"] = str(plan.part_size)
                env["GCS_PARTS_IN_FLIGHT"] = str(plan.concurrency)
                direct = {
                    "kind": "gcs",
                    "endpoint": link.url,
                    "project": env["GCS_PROJECT"],
                    "bucket": "asya-bench-direct",
                    **tuning,
                }
                connectors = ("gcs-buffered-cas", "gcs-buffered-lww", "google-cloud-storage")
            rig = Rig(
                name=name,
                connector=connectors[0],
                passthrough_connector=connectors[1],
                cas_connector=None,
                connector_env=env,
                direct={key: str(value) for key, value in direct.items()},
                direct_label=connectors[2],
            )
            yield rig, direct, link


def _backend(
    name: str, plan: TransferPlan, workdir: Path, results: TransferResults, say: Say
) -> None:
    with _store(name, plan) as (rig, direct, _link):
        pod = BenchPod(rig, workdir)
        try:
            pod.start()
            _measure(rig, pod, direct, plan, results, say)
        finally:
            pod.stop()


def _measure(
    rig: Rig,
    pod: BenchPod,
    direct: dict[str, Any],
    plan: TransferPlan,
    results: TransferResults,
    say: Say,
) -> None:
    size = plan.size
    label = f"{size / MiB:g} MiB"
    proxy: dict[str, dict[str, tuple[float, int]]] = {}
    first_byte: dict[str, float] = {}

    def through(mount: str) -> None:
        store = mount_store(mount)
        pid = pod.connector_pid(mount)
        measured: dict[str, tuple[float, int]] = {}
        for kind in ("write", "read"):
            say(f"{rig.name}: {mount} {kind} of {label} through the file API")
            if kind == "read" and mount == BUFFERED:
                path = f"{store['root']}/{KEY}"
                reply = pod.call({"task": "transfer_first_byte", "path": path})
                first_byte["file API"] = reply["seconds"]
            with PeakRss({"connector": pid}) as rss:
                reply = pod.call(
                    {"task": f"large_{kind}", "store": store, "key": KEY, "size": size}
                )
            measured[kind] = (reply["seconds"], rss.growth("connector"))
        pod.call({"task": "remove", "store": store, "key": KEY})
        proxy[mount] = measured

    notes: dict[str, str] = {}

    def library(concurrency: int) -> dict[str, float | str]:
        client = {**direct, "concurrency": concurrency}
        measured: dict[str, float | str] = {}
        for kind in ("write", "read"):
            what = (
                f"{rig.direct_label} {'one stream' if concurrency == 1 else f'{concurrency}-way'}"
            )
            say(f"{rig.name}: {kind} of {label} with {what}")
            try:
                reply = pod.call(
                    {
                        "task": "transfer_direct",
                        "client": client,
                        "kind": kind,
                        "key": KEY,
                        "size": size,
                    }
                )
                measured[kind] = float(reply["seconds"])
                if reply.get("note") and concurrency > 1:
                    notes[kind] = str(reply["note"])
            except TaskFailed as exc:
                measured[kind] = f"failed: {str(exc).splitlines()[0][:160]}"
                if kind == "write":
                    # Nothing to read: store the object with one stream instead.
                    pod.call(
                        {
                            "task": "transfer_direct",
                            "client": {**client, "concurrency": 1},
                            "kind": "write",
                            "key": KEY,
                            "size": size,
                        }
                    )
            if kind == "read" and concurrency == 1:
                reply = pod.call({"task": "transfer_first_byte", "client": client, "key": KEY})
                first_byte["one GET"] = reply["seconds"]
        pod.call({"task": "transfer_remove", "client": client, "key": KEY})
        return measured

    # Interleaved so drift on a shared machine lands on every side.
    through(BUFFERED)
    manager = library(plan.concurrency)
    through(PASSTHROUGH)
    one = library(1)
    results.first_byte[rig.name] = first_byte
    for mount in (BUFFERED, PASSTHROUGH):
        for kind in ("write", "read"):
            seconds, growth = proxy[mount][kind]
            by_manager = manager[kind]
            one_seconds = one[kind]
            if isinstance(one_seconds, str):
                raise TaskFailed(f"{rig.direct_label} one stream {kind} {one_seconds}", "")
            results.rows.append(
                TransferRow(
                    backend=rig.name,
                    workload=kind,
                    mount="buffered" if mount == BUFFERED else "passthrough",
                    size=size,
                    connector_seconds=seconds,
                    connector_rss_growth=growth,
                    manager_seconds=by_manager if isinstance(by_manager, float) else None,
                    one_stream_seconds=one_seconds,
                    manager_note=by_manager if isinstance(by_manager, str) else notes.get(kind, ""),
                )
            )


def run_transfer(
    backends: Sequence[str], plan: TransferPlan, *, command: str, say: Say
) -> TransferResults:
    from ..connector_process import ConnectorStartError
    from ..runner.pod import PodError
    from ..servers.base import ServerStartError

    results = TransferResults(command=command, plan=plan)
    with tempfile.TemporaryDirectory(prefix="asya-bench-", dir="/tmp") as tmp:
        for name in backends:
            try:
                _backend(name, plan, Path(tmp) / name, results, say)
            except (TaskFailed, PodError, ConnectorStartError, ServerStartError) as exc:
                say(f"{name}: failed: {exc}")
                results.failed.append(name)
    return results


def render(results: TransferResults) -> str:
    plan = results.plan
    machine = results.machine
    lines = [
        f"Large objects behind a shaped link: {plan.rate / MB:g} MB/s per connection, "
        f"{plan.latency * 1000:g} ms one way, {plan.concurrency} parts of "
        f"{plan.part_size / MiB:g} MiB in flight, {plan.size / MiB:g} MiB objects",
        f"machine: {machine['cpus']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB, "
        f"Python {machine['python']}",
        f"command: {results.command}",
        "",
        f"{'backend':<8}{'transfer':<22}{'file API':>10}{'manager':>10}{'one':>8}"
        f"{'x manager':>11}{'x one':>8}{'conn. RSS':>11}",
    ]
    for row in results.rows:
        manager = (
            "n/a" if row.manager_seconds is None else f"{row.size / row.manager_seconds / MB:.1f}"
        )
        versus = "n/a" if row.vs_manager is None else f"{row.vs_manager:.2f}"
        lines.append(
            f"{row.backend:<8}{row.mount + ' ' + row.workload:<22}{row.connector_mbps:>10.1f}"
            f"{manager:>10}{row.size / row.one_stream_seconds / MB:>8.1f}{versus:>11}"
            f"{row.vs_one_stream:>8.2f}{row.connector_rss_growth / MiB:>8.0f} MiB"
        )
    lines.append(
        "(MB/s; x manager / x one: file API speed over the library's transfer manager / one stream)"
    )
    notes = {
        f"{row.backend} {row.workload}: {row.manager_note}"
        for row in results.rows
        if row.manager_note
    }
    lines += sorted(notes)
    lines.append("")
    for backend, seconds in results.first_byte.items():
        shown = ", ".join(f"{name} {value * 1000:.1f} ms" for name, value in seconds.items())
        lines.append(f"{backend}: time to the first byte: {shown}")
    lines.append("")
    lines.append("targets: " + "; ".join(_verdicts(results)))
    return "\n".join(lines) + "\n"


def _verdicts(results: TransferResults) -> list[str]:
    verdicts = []
    for row in results.rows:
        name = f"{row.backend} {row.mount} {row.workload}"
        checks = [row.vs_one_stream >= TARGET_VS_ONE_STREAM, row.connector_rss_growth <= TARGET_RSS]
        if row.vs_manager is not None:
            checks.append(row.vs_manager >= TARGET_VS_MANAGER)
        verdicts.append(f"{name} {'met' if all(checks) else 'missed'}")
    return verdicts


def write_json(results: TransferResults, path: Path) -> None:
    path.write_text(json.dumps(results.to_json(), indent=2) + "\n")

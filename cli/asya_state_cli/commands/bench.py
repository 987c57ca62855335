"""``asya-state bench``: the benchmark suite, full path against each backend's own client.

Owns: the command line (backends, ``--quick``, ``--json``, ``--populated``
for the populated-backend mode, and a hidden ``--scale`` that shrinks every
count for smoke tests), printing progress to
stderr and the tables to stdout, and the exit status (1 when a backend
could not be measured; missed targets are reported, not failures).

Must not: contain workloads or orchestration (see asya_state_cli.bench).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

BACKENDS = ("fs", "memory", "redis", "nats", "s3", "gcs")
# Measured only when named: a Redis Cluster (3 primaries, 3 replicas), the same
# with REDIS_WAIT_REPLICAS=1 (every write waits for its replica), and three
# clustered nats-servers with a bucket of three replicas.
OPT_IN = ("redis-cluster", "redis-cluster-wait", "nats-cluster")
DEFAULT_POPULATED = (1_000, 100_000, 1_000_000)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark the file API through connectors against each backend's own client",
        description=(
            "Start the servers each backend needs on 127.0.0.1, run every workload through "
            "the full path (file API in a handler process -> runtime -> connector -> backend) "
            "and with the backend's own Python client, interleaved, and print p50/p99 latency, "
            "throughput, peak RSS, concurrency, keep-alive and contention tables."
        ),
    )
    parser.add_argument(
        "--backend",
        action="append",
        choices=BACKENDS + OPT_IN,
        metavar="NAME",
        help=(
            f"backend to measure ({', '.join(BACKENDS + OPT_IN)}); repeatable; default: every "
            f"available one but {', '.join(OPT_IN)}"
        ),
    )
    parser.add_argument(
        "--quick", action="store_true", help="large objects of 256 MiB instead of 1 GiB"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    transfer = parser.add_argument_group(
        "transfer mode",
        "Large objects through the S3 and GCS connectors behind a link that caps every "
        "connection, against the library's own transfer manager and one stream on the same link.",
    )
    transfer.add_argument(
        "--transfer", action="store_true", help="run the transfer mode (s3 and gcs) instead"
    )
    transfer.add_argument(
        "--cap", type=float, default=12.0, metavar="MB/S", help="per-connection cap (default 12)"
    )
    transfer.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="added one-way latency (also for s3 and gcs in --populated)",
    )
    transfer.add_argument(
        "--concurrency", type=int, default=8, metavar="N", help="parts in flight (default 8)"
    )
    transfer.add_argument(
        "--size-mib", type=int, default=1024, metavar="MIB", help="object size (default 1024)"
    )
    parser.add_argument(
        "--populated",
        type=_sizes,
        nargs="?",
        const=DEFAULT_POPULATED,
        metavar="N,N,...",
        help=(
            "instead of the usual workloads, measure exists (of a stored and of a missing "
            "file), stat and listdir while the backend fills with other mounts' objects "
            "(the same Redis database, NATS bucket, bucket or state directory), at each "
            f"size; default {','.join(map(str, DEFAULT_POPULATED))}"
        ),
    )
    parser.add_argument("--scale", type=_scale, default=1.0, help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"--scale must be in (0, 1], got {text!r}")
    return value


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 0:
        raise argparse.ArgumentTypeError(f"--populated takes sizes like 1000,100000, got {text!r}")
    return sizes


def _command(args: argparse.Namespace) -> str:
    parts = ["asya-state", "bench"]
    for backend in args.backend or []:
        parts += ["--backend", backend]
    if args.quick:
        parts.append("--quick")
    if args.json is not None:
        parts += ["--json", str(args.json)]
    if args.populated:
        parts += ["--populated", ",".join(map(str, args.populated))]
        if args.latency_ms and not args.transfer:
            parts.append(f"--latency-ms {args.latency_ms:g}")
    if args.scale != 1.0:
        parts += ["--scale", f"{args.scale:g}"]
    if args.transfer:
        parts += [
            "--transfer",
            f"--cap {args.cap:g}",
            f"--latency-ms {args.latency_ms:g}",
            f"--concurrency {args.concurrency}",
            f"--size-mib {args.size_mib}",
        ]
    return " ".join(parts)


def _say(message: str) -> None:
    print(f"asya-state bench: {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    if args.transfer:
        return run_transfer(args)
    from ..bench.report import render, write_json
    from ..bench.session import run_bench
    from ..bench.suite import Plan

    backends = list(dict.fromkeys(args.backend or BACKENDS))
    plan = Plan.make(
        quick=args.quick,
        scale=args.scale,
        populated=args.populated or (),
        latency=args.latency_ms / 1000 if args.populated else 0.0,
    )
    results, failed = run_bench(backends, plan, command=_command(args), quick=args.quick, say=_say)
    sys.stdout.write(render(results))
    sys.stdout.flush()
    if args.json is not None:
        write_json(results, args.json)
    if failed:
        _say(f"could not measure: {', '.join(failed)}")
    return 1 if failed else 0


def run_transfer(args: argparse.Namespace) -> int:
    from ..bench.transfer import TransferPlan, render, run_transfer, write_json

    backends = [b for b in dict.fromkeys(args.backend or ("s3", "gcs")) if b in ("s3", "gcs")]
    if not backends or args.concurrency < 1 or args.size_mib < 1 or args.cap <= 0:
        _say("--transfer measures s3 and gcs with a positive cap, concurrency and size")
        return 2
    plan = TransferPlan(
        size=args.size_mib * 1024 * 1024,
        rate=args.cap * 1_000_000,
        latency=args.latency_ms / 1000,
        concurrency=args.concurrency,
    )
    results = run_transfer(backends, plan, command=_command(args), say=_say)
    sys.stdout.write(render(results))
    sys.stdout.flush()
    if args.json is not None:
        write_json(results, args.json)
    return 1 if results.failed else 0

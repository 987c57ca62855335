"""``asya-state run HANDLER``: run an actor's handler locally with state, no cluster.

Owns: the command line of the local runner — handler, mounts, replicas,
paths and retry policy, each option checked before anything starts — the
lifecycle of the pods it starts (every connector and handler process is
stopped and the private socket directory removed on exit, Ctrl-C included,
quietly) and the exit status: 0 when every input line was applied, 1 when
any failed, 2 for a usage error, 128 + the signal when interrupted.

Must not: contain the dispatch or pod logic (see asya_state_cli.runner).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a handler locally; payloads as JSON lines on stdin, outputs on stdout",
        description=(
            "Run HANDLER (module.func or module.Class.method, as spec.handler) with state mounts. "
            "Each stdin line is one JSON payload; each output is one JSON line on stdout."
        ),
    )
    parser.add_argument(
        "handler_spec",
        metavar="HANDLER",
        help="dotted handler, e.g. agent.process or agent.Inference.process",
    )
    parser.add_argument(
        "--mount",
        action="append",
        default=[],
        metavar="SPEC",
        help="PATH (local directory backend) or PATH=CONNECTOR[,write=passthrough][,name=N]; repeatable",
    )
    add_run_options(parser)
    parser.set_defaults(handler=run)


def add_run_options(
    parser: argparse.ArgumentParser, *, pod_defaults_from: str | None = None
) -> None:
    """Options shared by ``run`` and ``up``; ``up`` takes replicas and handler path from the actor."""
    replicas_help = f"independent pods sharing the backend (default: {pod_defaults_from or '1'})"
    path_help = "directory to import the handler from (default: " + (
        "the actor file's directory)" if pod_defaults_from else ".)"
    )
    parser.add_argument(
        "--replicas",
        type=_at_least_one,
        default=None if pod_defaults_from else 1,
        help=replicas_help,
    )
    parser.add_argument(
        "--handler-path", default=None if pod_defaults_from else ".", help=path_help
    )
    parser.add_argument(
        "--state-dir",
        default=".asya-state",
        help="root of the local directory backend (default ./.asya-state)",
    )
    parser.add_argument(
        "--retry-base",
        metavar="SECONDS",
        type=_seconds,
        default=0.05,
        help="requeue backoff base, seconds (default 0.05); the n-th retry waits up to base*2^(n-1)",
    )
    parser.add_argument(
        "--retry-cap",
        metavar="SECONDS",
        type=_seconds,
        default=2.0,
        help="requeue backoff cap, seconds, at least --retry-base (default 2)",
    )
    parser.add_argument(
        "--max-attempts",
        metavar="N",
        type=_at_least_one,
        default=10,
        help="a message fails when N of its attempts ended in a CAS conflict (default 10)",
    )
    parser.add_argument(
        "--max-transient-attempts",
        metavar="N",
        type=_at_least_one,
        default=20,
        help="a message fails when N of its attempts ended in ConnectionError or TimeoutError "
        "(a connector or backend briefly gone; default 20)",
    )
    parser.add_argument(
        "--max-crashes",
        metavar="N",
        type=_at_least_one,
        default=3,
        help="a message fails when the handler process died N times running it (default 3)",
    )


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0 or more, got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    from asya_state_connectors.registry import CONNECTORS

    from ..runner.mounts import MountSpecError, parse_mount, unique_names

    try:
        mounts = unique_names([parse_mount(spec, CONNECTORS) for spec in args.mount])
    except MountSpecError as exc:
        print(f"asya-state run: {exc}", file=sys.stderr)
        return 2
    state_dir = Path(args.state_dir).absolute()
    mounts = [_with_local_defaults(m, state_dir) for m in mounts]
    return run_mounts(args, args.handler_spec, mounts, dict(os.environ))


def _with_local_defaults(mount: Any, state_dir: Path) -> Any:
    from ..runner.mounts import Mount

    assert isinstance(mount, Mount)
    if mount.connector.startswith("fs-") and "STATE_DIR" not in os.environ:
        return dataclasses.replace(
            mount, env={**mount.env, "STATE_DIR": str(state_dir / mount.name)}
        )
    return mount


class _Stopped(KeyboardInterrupt):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _interrupt(signum: int, frame: object) -> None:
    raise _Stopped(signum)


def run_mounts(
    args: argparse.Namespace, handler: str, mounts: list[Any], connector_env: dict[str, str]
) -> int:
    """Start ``args.replicas`` pods with ``mounts``, feed stdin through them, stop everything."""
    from ..connector_process import ConnectorStartError
    from ..runner.dispatch import Dispatcher, RetryPolicy, run_pods
    from ..runner.pod import Pod, PodError, stop_all

    if args.retry_cap < args.retry_base:
        print(
            f"asya-state run: --retry-cap ({args.retry_cap:g}) must not be below "
            f"--retry-base ({args.retry_base:g})",
            file=sys.stderr,
        )
        return 2
    if args.replicas < 1:
        print("asya-state run: --replicas must be at least 1", file=sys.stderr)
        return 2
    handler_path = Path(args.handler_path).absolute()
    if not handler_path.is_dir():
        problem = "is not a directory" if handler_path.exists() else "does not exist"
        print(f"asya-state run: --handler-path {handler_path} {problem}", file=sys.stderr)
        return 2
    # Unix socket paths are limited to 108 bytes: keep the private directory short.
    workdir = Path(tempfile.mkdtemp(prefix="asya-run-", dir="/tmp"))
    pods = [
        Pod(
            i,
            mounts,
            handler,
            workdir=workdir,
            handler_path=handler_path,
            connector_env=connector_env,
        )
        for i in range(args.replicas)
    ]
    dispatcher = Dispatcher(
        RetryPolicy(
            args.retry_base,
            args.retry_cap,
            max_attempts=args.max_attempts,
            max_transient_attempts=args.max_transient_attempts,
            max_crashes=args.max_crashes,
        )
    )
    interrupted = False
    status: int | None = None
    # Explicit handlers: a runner started in the background inherits an
    # ignored SIGINT, and SIGTERM (a CI timeout, a supervisor) deserves the
    # same clean stop as Ctrl-C.
    for handled in (signal.SIGINT, signal.SIGTERM):
        signal.signal(handled, _interrupt)
    try:
        for pod in pods:
            pod.start()
        run_pods(dispatcher, list(pods), sys.stdin)
    except (PodError, ConnectorStartError) as exc:
        print(f"asya-state run: {exc}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt as exc:
        _ignore_signals()
        interrupted = True
        signum = exc.signum if isinstance(exc, _Stopped) else signal.SIGINT.value
        print(f"asya-state run: {signal.Signals(signum).name}; stopping pods", file=sys.stderr)
        status = 128 + signum
    finally:
        _ignore_signals()  # a second Ctrl-C must not cut the stop short with a traceback
        stop_all(pods, interrupted=interrupted)
        shutil.rmtree(workdir, ignore_errors=True)
    if interrupted and dispatcher.summary.lines:
        dispatcher.report(interrupted=True)
    if status is not None:
        return status
    dispatcher.report()
    return 1 if dispatcher.summary.failed or dispatcher.aborted else 0


def _ignore_signals() -> None:
    for handled in (signal.SIGINT, signal.SIGTERM):
        signal.signal(handled, signal.SIG_IGN)

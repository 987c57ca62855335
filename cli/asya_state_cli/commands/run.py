"""``asya-state run HANDLER``: run an actor's handler locally with state, no cluster.

Owns: the command line of the local runner — handler, mounts, replicas,
paths and retry policy — and the lifecycle of the pods it starts: every
connector and handler process is stopped and the private socket directory
removed on exit, Ctrl-C included.

Must not: contain the dispatch or pod logic (see asya_state_cli.runner).
"""

from __future__ import annotations

import argparse
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
        "--replicas", type=int, default=None if pod_defaults_from else 1, help=replicas_help
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
        "--retry-base", type=float, default=0.05, help="CAS requeue backoff base, seconds"
    )
    parser.add_argument(
        "--retry-cap", type=float, default=2.0, help="CAS requeue backoff cap, seconds"
    )
    parser.add_argument(
        "--max-attempts", type=int, default=10, help="attempts per message on CAS conflicts"
    )


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
        return Mount(
            mount.name,
            mount.path,
            mount.connector,
            mount.write,
            {**mount.env, "STATE_DIR": str(state_dir / mount.name)},
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
    dispatcher = Dispatcher(RetryPolicy(args.retry_base, args.retry_cap, args.max_attempts))
    interrupted = False
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
        return 1
    except KeyboardInterrupt as exc:
        interrupted = True
        signum = exc.signum if isinstance(exc, _Stopped) else signal.SIGINT.value
        print(f"asya-state run: {signal.Signals(signum).name}; stopping pods", file=sys.stderr)
        return 128 + signum
    finally:
        stop_all(pods, interrupted=interrupted)
        shutil.rmtree(workdir, ignore_errors=True)
    summary = dispatcher.summary
    if summary.conflicts:
        print(f"asya-state run: {summary.conflicts} CAS conflicts requeued", file=sys.stderr)
    return 1 if summary.failed else 0

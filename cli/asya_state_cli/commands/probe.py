"""``asya-state probe --socket PATH [--ready]``: the sidecar's startup/readiness probe.

Owns: one request over the connector's Unix socket (``/v1/health``, or
``/v1/ready`` which also checks the backend), sent through the runtime's
transport (the one client of the protocol, standard library only), and an
exit status Kubernetes exec probes understand: 0 healthy, 1 not.

Must not: import anything beyond the standard library and the runtime's
transport; it runs every few seconds in every connector container.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "probe", help="check a connector's health over its socket (exit 0 when healthy)"
    )
    parser.add_argument("--socket", required=True, help="the connector's Unix socket")
    parser.add_argument("--ready", action="store_true", help="also check that the backend answers")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    parser.set_defaults(handler=run)


def check(socket_path: str, *, ready: bool, timeout: float) -> tuple[bool, str]:
    """Ask the connector; return (healthy, one-line detail)."""
    # Imported here: building the CLI's parser must not pay for it.
    from asya_state_runtime import transport
    from asya_state_runtime.config import Mount

    mount = Mount(
        "probe", "/", socket_path, timeout=timeout, connect_timeout=timeout, keepalive=False
    )
    pool = transport.Pool(mount)
    try:
        reply = transport.request(
            pool, "GET", "/v1/ready" if ready else "/v1/health", path=socket_path
        )
        body = reply.read_all()[:512].decode("utf-8", "replace")
        return reply.status == 200, f"{reply.status} {body}"
    except OSError as exc:
        return False, str(exc)
    finally:
        pool.close()


def run(args: argparse.Namespace) -> int:
    healthy, detail = check(args.socket, ready=args.ready, timeout=args.timeout)
    if not healthy:
        print(detail, file=sys.stderr)
    return 0 if healthy else 1

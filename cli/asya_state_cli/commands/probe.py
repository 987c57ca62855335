"""``asya-state probe --socket PATH [--ready]``: the sidecar's startup/readiness probe.

Owns: one HTTP request over the connector's Unix socket (``/v1/health``, or
``/v1/ready`` which also checks the backend) and an exit status Kubernetes
exec probes understand: 0 healthy, 1 not.

Must not: import anything beyond the standard library; it runs every few
seconds in every connector container.
"""

from __future__ import annotations

import argparse
import http.client
import socket
import sys
from typing import Any


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


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
    connection = _UnixConnection(socket_path, timeout)
    try:
        connection.request("GET", "/v1/ready" if ready else "/v1/health")
        response = connection.getresponse()
        body = response.read(512).decode("utf-8", "replace")
        return response.status == 200, f"{response.status} {body}"
    except OSError as exc:
        return False, f"{socket_path}: {exc}"
    finally:
        connection.close()


def run(args: argparse.Namespace) -> int:
    healthy, detail = check(args.socket, ready=args.ready, timeout=args.timeout)
    if not healthy:
        print(detail, file=sys.stderr)
    return 0 if healthy else 1

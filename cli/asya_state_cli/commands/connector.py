"""``asya-state connector NAME``: the entrypoint of every connector image.

Owns: resolving the connector by name, building it from the environment and
serving it on CONNECTOR_SOCKET until SIGTERM. Configuration errors (unknown
name, missing extra, missing or bad variables) exit with status 2 and one
line naming the problem.

Must not: import any backend except the one asked for.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "connector",
        help="serve a storage connector on a Unix socket (connector image entrypoint)",
        description="Serve connector NAME on $CONNECTOR_SOCKET, configured from the environment.",
    )
    parser.add_argument("name", help="connector name, e.g. fs-buffered-cas, redis-buffered-cas")
    parser.add_argument("--socket", help="socket path (default: $CONNECTOR_SOCKET)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from asya_state_connectors.errors import ConfigError
    from asya_state_connectors.registry import connector_class
    from asya_state_connectors.server.serve import run as serve
    from asya_state_connectors.settings import Settings

    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = Settings(os.environ)
    try:
        socket_path = args.socket or settings.required(
            "CONNECTOR_SOCKET", hint="the Unix socket to serve on"
        )
        grace = settings.number("CONNECTOR_GRACE_SECONDS", 25.0)
        connector = connector_class(args.name).from_settings(settings)
    except ConfigError as exc:
        print(f"asya-state connector {args.name}: {exc}", file=sys.stderr)
        return 2
    serve(connector, socket_path, grace_seconds=grace)
    return 0

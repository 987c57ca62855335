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
    from asya_state_connectors.server.http import BODY_TIMEOUT
    from asya_state_connectors.server.observability import configure_logging
    from asya_state_connectors.server.serve import ConnectorServer
    from asya_state_connectors.server.serve import run as serve
    from asya_state_connectors.settings import Settings

    settings = Settings(os.environ)
    try:
        level = (settings.optional("LOG_LEVEL", "INFO") or "INFO").upper()
        if level not in logging.getLevelNamesMapping():
            raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
        configure_logging(level, json_format=settings.optional("LOG_FORMAT", "json") == "json")
        socket_path = args.socket or settings.required(
            "CONNECTOR_SOCKET", hint="the Unix socket to serve on"
        )
        server = ConnectorServer(
            connector_class(args.name).from_settings(settings),
            socket_path,
            grace_seconds=settings.number("CONNECTOR_GRACE_SECONDS", 25.0),
            metrics_port=settings.integer("METRICS_PORT", 0, minimum=0) or None,
            metrics_host=settings.optional("METRICS_HOST") or "0.0.0.0",
            # 0 turns the timeout off.
            body_timeout=settings.number("CONNECTOR_BODY_TIMEOUT_SECONDS", BODY_TIMEOUT),
        )
    except ConfigError as exc:
        print(f"asya-state connector {args.name}: {exc}", file=sys.stderr)
        return 2
    try:
        serve(server)
    except (
        ConfigError
    ) as exc:  # raised while the backend client starts (e.g. an unknown AWS_PROFILE)
        print(f"asya-state connector {args.name}: {exc}", file=sys.stderr)
        return 2
    return 0

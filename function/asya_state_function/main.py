"""Serve the function over gRPC: ``python -m asya_state_function``.

Owns: the command line (listen address, mTLS certificate directory,
``--insecure`` for local runs, log level), refusing to start on an SDK
older than the floor, and handing the FunctionRunner to the SDK's server.

Must not: contain composition logic.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from crossplane.function import logging, runtime

from . import sdk
from .fn import FunctionRunner


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asya_state_function",
        description="The asya-state Crossplane composition function (gRPC server).",
    )
    parser.add_argument(
        "--address", default="0.0.0.0:9443", help="listen address (default 0.0.0.0:9443)"
    )
    parser.add_argument(
        "--tls-certs-dir",
        default=os.environ.get("TLS_SERVER_CERTS_DIR"),
        help="directory with tls.crt, tls.key and ca.crt (default $TLS_SERVER_CERTS_DIR)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="serve without mTLS (local runs and tests); --tls-certs-dir is then ignored",
    )
    parser.add_argument("--debug", action="store_true", help="emit debug logs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = sdk.problem()
    if problem is not None:
        print(f"asya_state_function: {problem}", file=sys.stderr)
        return 2
    if not args.insecure and not args.tls_certs_dir:
        print(
            "asya_state_function: pass --tls-certs-dir (or set TLS_SERVER_CERTS_DIR) or --insecure",
            file=sys.stderr,
        )
        return 2
    logging.configure(level=logging.Level.DEBUG if args.debug else logging.Level.INFO)
    credentials = None if args.insecure else runtime.load_credentials(args.tls_certs_dir)
    runtime.serve(FunctionRunner(), args.address, creds=credentials, insecure=args.insecure)
    return 0

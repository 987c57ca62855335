"""``asya-state up ACTOR.yaml``: render an AsyncActor, then run that pod locally.

Owns: the command line of ``up``: it runs the real composition function on
the actor, turns the composed Deployment into local mounts (connector from
each sidecar's image, its rendered env, sockets and volume paths remapped
into private local directories) and hands them to the local runner, so the
handler sees exactly the ASYA_STATE_PROXY_MOUNTS it gets in the cluster.

Must not: duplicate the runner or the function.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from .run import add_run_options, run_mounts


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "up",
        help="render an AsyncActor and run its pod locally (payloads on stdin, outputs on stdout)",
        description=(
            "Render ACTOR.yaml with the composition function and run the resulting pod locally: "
            "one connector process per sidecar with its rendered env, and the handler from spec.handler."
        ),
    )
    parser.add_argument("actor", metavar="ACTOR.yaml")
    parser.add_argument("--input", metavar="INPUT.yaml", help="the function Input to render with")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a value for connector env that only resolves in a cluster (valueFrom, envFrom); repeatable",
    )
    parser.add_argument(
        "--skip-env-from",
        action="store_true",
        help="ignore envFrom sources (supply their variables with --env)",
    )
    add_run_options(parser, pod_defaults_from="spec.replicas")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..runner.from_render import UpError, local_pod
    from .render import RenderError, read_actor, read_input, render

    supplied: dict[str, str] = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"asya-state up: --env {item!r} must be NAME=VALUE", file=sys.stderr)
            return 2
        supplied[name] = value
    try:
        actor = read_actor(args.actor)
        function_input = read_input(args.input) if args.input else None
        rendered = render(actor, function_input)
    except RenderError as exc:
        print(f"asya-state up: {exc}", file=sys.stderr)
        return 2
    for warning in rendered.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if rendered.errors:
        for error in rendered.errors:
            print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        pod = local_pod(
            rendered.resources,
            supplied_env=supplied,
            state_dir=Path(args.state_dir).absolute(),
            skip_env_from=args.skip_env_from,
        )
    except UpError as exc:
        print(f"asya-state up: {args.actor}: {exc}", file=sys.stderr)
        return 2
    if args.replicas is None:
        args.replicas = pod.replicas
    if args.handler_path is None:
        args.handler_path = str(Path(args.actor).absolute().parent)
    return run_mounts(args, pod.handler, pod.mounts, dict(os.environ))

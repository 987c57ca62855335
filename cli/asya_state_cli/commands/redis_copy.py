"""``asya-state redis-copy``: copy a Redis mount to another Redis server or cluster.

Owns: the command line and its output (how many keys were copied). The
source is configured like the connector (``REDIS_URL``, ``STATE_PREFIX``,
``REDIS_CLUSTER`` from the environment); the target is ``--to URL`` with the
same prefix, in its own layout (a hash tag on Redis Cluster), see
``redis.move``. For moving a mount between standalone Redis and a cluster.

Must not: change the source; writers should be stopped while it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "redis-copy",
        help="copy a Redis mount to another Redis or Redis Cluster (REDIS_URL, STATE_PREFIX)",
        description=(
            "Copy every object (value, metadata, expiry), the name index and the delete "
            "records of the redis-buffered-cas mount that REDIS_URL and STATE_PREFIX name to "
            "the same prefix on the Redis at --to, renaming keys to the target's layout "
            "(standalone: the plain prefix; Redis Cluster: the prefix with a hash tag). "
            "Keys of the same name on the target are replaced. Stop the writers first."
        ),
    )
    parser.add_argument("--to", required=True, metavar="URL", help="the target's REDIS_URL")
    parser.add_argument(
        "--to-cluster",
        choices=("auto", "true", "false"),
        default="auto",
        help="REDIS_CLUSTER for the target (default auto: ask the server)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from redis.exceptions import RedisError

    from asya_state_connectors.backends.redis.backend import RedisBufferedCas
    from asya_state_connectors.backends.redis.move import copy_mount
    from asya_state_connectors.errors import ConfigError, ConnectorError
    from asya_state_connectors.settings import Settings

    target_env = {**os.environ, "REDIS_URL": args.to, "REDIS_CLUSTER": args.to_cluster}

    async def copy() -> int:
        source = RedisBufferedCas.from_settings(Settings(os.environ))
        target = RedisBufferedCas.from_settings(Settings(target_env))
        try:
            return await copy_mount(source, target)
        finally:
            await source.close()
            await target.close()

    try:
        keys = asyncio.run(copy())
    except (ConfigError, ConnectorError, RedisError, OSError) as exc:
        print(f"asya-state redis-copy: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    prefix = os.environ.get("STATE_PREFIX", "")
    print(f"copied {keys} keys under {prefix!r} to {args.to}")
    return 0

"""``asya-state reindex``: build a Redis mount's name index again from its stored objects.

Owns: the command line and its output (how many names the index holds).
The connector indexes a mount by itself the first time it is used; this is
for objects written by something that does not keep the index (a connector
from before it, still running during a rolling upgrade). Configured like the
connector, from ``REDIS_URL`` and ``STATE_PREFIX`` in the environment.

Must not: change any object; creates wait while it runs, reads, overwrites
and deletes go on.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reindex",
        help="rebuild a Redis mount's name index (REDIS_URL, STATE_PREFIX from the environment)",
        description=(
            "Drop the name index of the redis-buffered-cas mount that REDIS_URL and "
            "STATE_PREFIX name and build it again from the objects stored under the prefix, "
            "with a batched SCAN. Needed only after objects were written by a connector "
            "version without the index; the connector builds a missing index by itself."
        ),
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from asya_state_connectors.backends.redis.backend import RedisBufferedCas
    from asya_state_connectors.errors import ConfigError, ConnectorError
    from asya_state_connectors.settings import Settings

    async def rebuild() -> int:
        connector = RedisBufferedCas.from_settings(Settings(os.environ))
        try:
            return await connector.rebuild_index()
        finally:
            await connector.close()

    try:
        names = asyncio.run(rebuild())
    except (ConfigError, ConnectorError) as exc:
        print(f"asya-state reindex: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    prefix = os.environ.get("STATE_PREFIX", "")
    print(f"indexed {names} objects under {prefix!r}")
    return 0

"""How much one object-store connector transfers at once: parts, requests and bytes in flight.

Owns: the transfer settings shared by the S3 and GCS connectors (part size,
parts in flight per open file or upload, requests and bytes in flight per
connector, the first range of a read), read from ``<PREFIX>_PARTS_IN_FLIGHT``
and ``<PREFIX>_TRANSFER_MEMORY``, and ``TransferLimits``: the per-connector
request semaphore and byte budget every read-ahead and part upload draws
from.

The byte budget never blocks the part a reader or an upload needs in order
to make progress, only the parts beyond it: a handler copying one file into
another (its read-ahead holding budget while its write waits for some) can
then never deadlock on the budget. So the connector's memory for transfers
is at most the budget plus one part per transfer in progress.

Must not: know any backend or issue a request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..errors import ConfigError
from ..settings import Settings

KiB = 1024
MiB = 1024 * KiB

DEFAULT_PARTS_IN_FLIGHT = 8
DEFAULT_TRANSFER_MEMORY = 256 * MiB
# The first range of a read: what a small object needs whole, and small
# enough that a read abandoned after its first bytes (a zip's central
# directory is at the end) costs little. Ranges then double up to the part size.
FIRST_RANGE = 256 * KiB


@dataclass(frozen=True)
class TransferSettings:
    part_size: int
    parts_in_flight: int  # per open file and per upload
    requests: int  # per connector
    memory: int  # bytes of parts in flight per connector
    first_range: int = FIRST_RANGE

    @classmethod
    def from_settings(
        cls, settings: Settings, prefix: str, *, part_size: int, requests: int
    ) -> TransferSettings:
        """``<prefix>_PARTS_IN_FLIGHT`` and ``<prefix>_TRANSFER_MEMORY``, checked against each other."""
        parts = settings.integer(f"{prefix}_PARTS_IN_FLIGHT", DEFAULT_PARTS_IN_FLIGHT, minimum=1)
        memory = settings.integer(
            f"{prefix}_TRANSFER_MEMORY", max(DEFAULT_TRANSFER_MEMORY, part_size), minimum=1
        )
        if memory < part_size:
            raise ConfigError(
                f"{prefix}_TRANSFER_MEMORY ({memory}) must hold at least one part ({part_size} bytes)"
            )
        return cls(part_size=part_size, parts_in_flight=parts, requests=requests, memory=memory)


class TransferLimits:
    """One connector's request slots and byte budget; create it on the connector's event loop."""

    def __init__(self, settings: TransferSettings) -> None:
        self.settings = settings
        self.requests = asyncio.Semaphore(settings.requests)
        self._budget = settings.memory
        self._used = 0
        self._freed = asyncio.Event()

    @property
    def used(self) -> int:
        return self._used

    def try_take(self, count: int) -> bool:
        """Take ``count`` bytes if the budget has them now (read-ahead, extra upload parts)."""
        if self._used + count > self._budget:
            return False
        self._used += count
        return True

    def force(self, count: int) -> None:
        """Take ``count`` bytes even beyond the budget: the one part a transfer needs to progress."""
        self._used += count

    def give(self, count: int) -> None:
        self._used -= count
        self._freed.set()

    async def freed(self) -> None:
        """Wait until some bytes are given back."""
        self._freed.clear()
        await self._freed.wait()

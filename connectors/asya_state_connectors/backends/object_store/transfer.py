"""How much one object-store connector transfers at once: parts, requests and bytes in flight.

Owns: the transfer settings shared by the S3 and GCS connectors (part size,
parts in flight per open file or upload, requests and bytes in flight per
connector, the first range of a read), read from ``<PREFIX>_PARTS_IN_FLIGHT``
and ``<PREFIX>_TRANSFER_MEMORY``; ``TransferLimits``: the per-connector
request semaphore and byte budget every read-ahead and part upload draws
from; and the upload side shared by both stores: cutting a body into parts
(``regroup``, with reused part buffers) and sending them several at a time
(``send_parts``), so an upload holds at most ``parts_in_flight + 1`` parts.

The byte budget never blocks the part a reader or an upload needs in order
to make progress, only the parts beyond it: a handler copying one file into
another (its read-ahead holding budget while its write waits for some) can
then never deadlock on the budget. So the connector's memory for transfers
is at most the budget plus one part per transfer in progress.

Must not: know any backend or issue a request itself (callers pass ``send``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from ...errors import ConfigError, TooLarge
from ...settings import Settings

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


# A part as uploaded: a pooled buffer while streaming, plain bytes otherwise.
Part = bytes | bytearray


class PartBuffers:
    """Full-part buffers reused across the parts of one upload.

    Reuse keeps the process from growing with every part (freed 8 MiB blocks
    raise the allocator's mmap threshold and then stay in its heap); the
    uploader gives a buffer back once its part is stored, so at most
    ``parts_in_flight + 1`` buffers exist at a time.
    """

    def __init__(self, part_size: int) -> None:
        self.part_size = part_size
        self._free: list[bytearray] = []

    def take(self) -> bytearray:
        return self._free.pop() if self._free else bytearray(self.part_size)

    def give(self, part: Part) -> None:
        if isinstance(part, bytearray) and len(part) == self.part_size:
            self._free.append(part)


async def regroup(
    body: AsyncIterator[bytes], part_size: int, buffers: PartBuffers
) -> AsyncGenerator[Part]:
    """``body`` cut into parts of exactly ``part_size`` bytes; only the last may be shorter.

    Full parts are buffers from ``buffers`` that the consumer gives back once
    done with them. The first buffer grows with the body, so a small body
    (most writes) never allocates a whole part.
    """
    current = bytearray()
    filled = 0
    async for chunk in body:
        view = memoryview(chunk)
        while view:
            take = min(len(view), part_size - filled)
            if len(current) < part_size:
                current += view[:take]
            else:
                current[filled : filled + take] = view[:take]
            filled += take
            view = view[take:]
            if filled == part_size:
                yield current
                current, filled = buffers.take(), 0
    if len(current) < part_size:
        yield current  # the whole body, or a first part that never filled
    elif filled:
        yield bytes(memoryview(current)[:filled])


async def send_parts(
    parts: AsyncIterator[Part],
    send: Callable[[int, Part], Awaitable[None]],
    limits: TransferLimits,
    buffers: PartBuffers,
    *,
    max_parts: int | None = None,
    key: str | None = None,
) -> tuple[int, int]:
    """``send(number, part)`` for every part (numbered from 1), several at once; returns (parts, bytes).

    At most ``parts_in_flight`` sends run at a time, and beyond the first only
    while the connector's byte budget has room; the next part is read from
    ``parts`` while they run. On any failure, or when cancelled, the sends in
    flight are waited for (their outcome ignored) before the error goes on,
    so the caller can abort an upload that nothing writes to any more.
    """
    in_flight: set[asyncio.Task[None]] = set()
    most = limits.settings.parts_in_flight
    number = size = 0

    async def one(number: int, part: Part, charge: int) -> None:
        try:
            await send(number, part)
        finally:
            limits.give(charge)
            buffers.give(part)

    async def reap() -> None:
        done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        in_flight.difference_update(done)
        for task in done:
            task.result()

    try:
        async for part in parts:
            number += 1
            if max_parts is not None and number > max_parts:
                raise TooLarge(f"the body needs more than {max_parts} parts", key=key)
            size += len(part)
            charge = len(part)
            while True:
                if not in_flight:
                    limits.force(charge)
                    break
                if len(in_flight) < most and limits.try_take(charge):
                    break
                await reap()
            in_flight.add(asyncio.ensure_future(one(number, part, charge)))
        while in_flight:
            await reap()
        return number, size
    except BaseException:
        for task in in_flight:
            with contextlib.suppress(BaseException):
                await task
        raise


async def prepend(first: Part, rest: AsyncIterator[Part]) -> AsyncIterator[Part]:
    """``first`` then every part of ``rest`` (a first part taken to decide how to upload)."""
    yield first
    async for part in rest:
        yield part

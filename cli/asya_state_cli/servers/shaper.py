"""A TCP proxy on loopback that shapes every connection like a real object store's frontend.

Owns: the process ``ShapedLink`` launches
(``python -m asya_state_cli.servers.shaper``): it accepts on 127.0.0.1,
opens one upstream connection per client connection, and relays both
directions through a token bucket per connection and direction (a cap in
bytes per second, as S3 and GCS cap what one stream delivers), optionally
holding every chunk back by a fixed one-way latency without lowering the
rate. It counts connections and the bytes relayed each way, and answers a
JSON line of those counters on a second port (``reset`` zeroes them), so a
test can tell how many bytes a workload really fetched from the store.

Must not: bind anything but 127.0.0.1, connect anywhere but the upstream
port on 127.0.0.1 it is given, or change a byte it relays.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field

from .base import LoopbackServer, free_port, wait_for_port

CHUNK = 64 * 1024
# How far ahead of the cap a connection may run after idling: a few chunks,
# as a real frontend's buffers allow, never a whole part.
BURST = 4 * CHUNK
# Chunks read from one side and not yet written to the other; bounds the
# proxy's memory and carries back-pressure end to end.
QUEUED_CHUNKS = 16


@dataclass
class Counters:
    connections: int = 0
    open: int = 0
    peak_open: int = 0
    down: int = 0  # upstream -> client: what the client fetched
    up: int = 0  # client -> upstream: what the client sent

    def as_json(self) -> str:
        return json.dumps(self.__dict__)

    def reset(self) -> None:
        """Zero what was counted; connections still open stay counted as open."""
        self.connections = self.down = self.up = 0
        self.peak_open = self.open


@dataclass
class TokenBucket:
    """``rate`` bytes per second with a burst of ``BURST`` bytes; ``rate`` 0 means no cap."""

    rate: float
    tokens: float = BURST
    stamp: float = field(default_factory=time.monotonic)

    async def take(self, count: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        self.tokens = min(BURST, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= count
        if self.tokens < 0:
            await asyncio.sleep(-self.tokens / self.rate)


class Shaper:
    def __init__(self, upstream_port: int, rate: float, latency: float) -> None:
        self.upstream_port = upstream_port
        self.rate = rate
        self.latency = latency
        self.counters = Counters()

    async def serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        counters = self.counters  # one object for the whole run; reset() zeroes it in place
        counters.connections += 1
        counters.open += 1
        counters.peak_open = max(counters.peak_open, counters.open)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            counters.open -= 1
            writer.close()
            return
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, "up"), self._pump(up_reader, writer, "down")
            )
        finally:
            counters.open -= 1
            for side in (writer, up_writer):
                side.close()

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, direction: str
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUED_CHUNKS)

        async def read() -> None:
            try:
                while chunk := await source.read(CHUNK):
                    await queue.put((time.monotonic() + self.latency, chunk))
            except (ConnectionError, OSError):
                pass
            await queue.put((0.0, b""))

        reading = asyncio.ensure_future(read())
        bucket = TokenBucket(self.rate)
        try:
            while True:
                due, chunk = await queue.get()
                if not chunk:
                    with contextlib.suppress(OSError, RuntimeError):
                        if sink.can_write_eof():
                            sink.write_eof()
                    return
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await bucket.take(len(chunk))
                sink.write(chunk)
                await sink.drain()
                if direction == "down":
                    self.counters.down += len(chunk)
                else:
                    self.counters.up += len(chunk)
        except (ConnectionError, OSError):
            return
        finally:
            reading.cancel()
            with contextlib.suppress(BaseException):
                await reading

    async def serve_stats(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            line = await reader.readline()
            answer = self.counters.as_json().encode() + b"\n"
            if line.strip() == b"reset":
                self.counters.reset()
            writer.write(answer)
            await writer.drain()
        writer.close()


async def _main(args: argparse.Namespace) -> None:
    shaper = Shaper(args.upstream, args.rate, args.latency)
    relay = await asyncio.start_server(shaper.serve_client, "127.0.0.1", args.port)
    stats = await asyncio.start_server(shaper.serve_stats, "127.0.0.1", args.stats_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with relay, stats:
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asya_state_cli.servers.shaper")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stats-port", type=int, required=True)
    parser.add_argument("--upstream", type=int, required=True, help="upstream port on 127.0.0.1")
    parser.add_argument("--rate", type=float, default=0.0, help="bytes/s per connection and way")
    parser.add_argument("--latency", type=float, default=0.0, help="one-way delay in seconds")
    asyncio.run(_main(parser.parse_args(argv)))
    return 0


class ShapedLink(LoopbackServer):
    """The shaper in front of ``upstream`` (``http://127.0.0.1:PORT``), as a loopback server.

    ``rate`` caps each connection, in bytes per second and per direction;
    ``latency`` is added one way, so a round trip pays twice that.
    """

    name = "shaper"

    def __init__(self, upstream: str, *, rate: float, latency: float = 0.0) -> None:
        super().__init__()
        parts = urllib.parse.urlsplit(upstream)
        if parts.hostname != "127.0.0.1" or parts.port is None:
            raise ValueError(f"the shaper only fronts 127.0.0.1 servers, not {upstream!r}")
        self.upstream_port = parts.port
        self.rate = rate
        self.latency = latency
        self.stats_port = free_port()

    def command(self) -> Sequence[str]:
        return [
            sys.executable,
            "-m",
            "asya_state_cli.servers.shaper",
            "--port",
            str(self.port),
            "--stats-port",
            str(self.stats_port),
            "--upstream",
            str(self.upstream_port),
            "--rate",
            repr(self.rate),
            "--latency",
            repr(self.latency),
        ]

    def ready(self) -> None:
        wait_for_port(self.port, self.start_timeout, self.process)
        wait_for_port(self.stats_port, self.start_timeout, self.process)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def counters(self, *, reset: bool = False) -> Counters:
        """The counters now; ``reset`` zeroes them once read (connections still open stay)."""
        import socket

        with socket.create_connection(("127.0.0.1", self.stats_port), timeout=10.0) as sock:
            sock.sendall(b"reset\n" if reset else b"get\n")
            data = b""
            while not data.endswith(b"\n"):
                more = sock.recv(4096)
                if not more:
                    break
                data += more
        return Counters(**json.loads(data))


if __name__ == "__main__":
    sys.exit(main())

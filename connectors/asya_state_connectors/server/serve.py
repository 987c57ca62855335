"""Run a connector behind the protocol on a Unix socket until SIGTERM.

Owns: the socket file (stale file removed, mode 0660), the aiohttp low-level
server, signal handling and the graceful drain: on SIGTERM the listener
closes, requests already in flight finish, requests arriving on kept-alive
connections get 503 ``draining``, and the process exits within the grace
period whatever happens.

Must not: know any backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import stat
from pathlib import Path

from aiohttp import web

from ..interface import Connector
from .app import ProtocolApp

log = logging.getLogger("asya_state_connectors.server")

SOCKET_MODE = 0o660


class ConnectorServer:
    """One connector served on one Unix socket."""

    def __init__(
        self,
        connector: Connector,
        socket_path: str,
        *,
        grace_seconds: float = 25.0,
        metrics_port: int | None = None,
        metrics_host: str = "0.0.0.0",
    ) -> None:
        self.connector = connector
        self.socket_path = socket_path
        self.grace_seconds = grace_seconds
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.app = ProtocolApp(connector)
        self._runner: web.ServerRunner | None = None
        self._metrics_runner: web.ServerRunner | None = None
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        await self.connector.open()
        _prepare_socket_path(Path(self.socket_path))
        server = web.Server(self.app.handle, handler_cancellation=False, access_log=None)
        self._runner = web.ServerRunner(
            server, handle_signals=False, shutdown_timeout=self.grace_seconds
        )
        await self._runner.setup()
        site = web.UnixSite(self._runner, self.socket_path)
        # Create the socket with the final mode: no window where it is wider.
        old_umask = os.umask(0o117)
        try:
            await site.start()
        finally:
            os.umask(old_umask)
        os.chmod(self.socket_path, SOCKET_MODE)
        if self.metrics_port is not None:
            await self._start_metrics_listener()
        log.info("serving %s on %s", self.connector.name, self.socket_path)

    async def _start_metrics_listener(self) -> None:
        """The only TCP listener a connector opens, and only when METRICS_PORT is set."""

        async def metrics_only(request: web.BaseRequest) -> web.StreamResponse:
            if request.method != "GET" or request.path != "/metrics":
                return web.Response(status=404, text="only GET /metrics is served here\n")
            return web.Response(
                text=self.app.metrics.render(), content_type="text/plain", charset="utf-8"
            )

        server = web.Server(metrics_only, access_log=None)
        self._metrics_runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
        await self._metrics_runner.setup()
        await web.TCPSite(self._metrics_runner, self.metrics_host, self.metrics_port).start()
        log.info("metrics on %s:%s/metrics", self.metrics_host, self.metrics_port)

    async def drain_and_stop(self) -> None:
        """Stop accepting, let in-flight requests finish (bounded by the grace period), close."""
        if self._stopped.is_set():
            return
        self.app.draining = True
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        try:
            await asyncio.wait_for(self.app.wait_idle(), self.grace_seconds)
        except TimeoutError:
            log.warning("grace period over with %d requests in flight", self.app.in_flight)
        for runner in (self._runner, self._metrics_runner):
            if runner is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(runner.cleanup(), 2.0)
        await self.connector.close()
        self._stopped.set()

    async def serve_forever(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await self.start()
        try:
            await stop.wait()
        finally:
            log.info("draining: %d requests in flight", self.app.in_flight)
            await self.drain_and_stop()


def _prepare_socket_path(path: Path) -> None:
    """Make the parent directory and remove a stale socket left by a crashed predecessor."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise FileExistsError(f"{path} exists and is not a socket; refusing to replace it")
        path.unlink()


def run(server: ConnectorServer) -> None:
    asyncio.run(server.serve_forever())

"""Run a connector behind the protocol on a Unix socket until SIGTERM.

Owns: the socket file (stale file removed, mode 0660), the listeners (the
Unix socket and the optional metrics port), the event loop (uvloop when it
is installed), signal handling and the graceful drain: on SIGTERM the
listener closes, requests already in flight finish, requests arriving on
kept-alive connections get 503 ``draining``, and the process exits within
the grace period whatever happens.

Must not: know any backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import stat
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from ..interface import Connector
from .app import ProtocolApp, metrics_response
from .http import BODY_TIMEOUT, ConnectionSet, HttpConnection, Request, Response

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
        body_timeout: float = BODY_TIMEOUT,
    ) -> None:
        self.connector = connector
        self.body_timeout = body_timeout
        self.socket_path = socket_path
        self.grace_seconds = grace_seconds
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.app = ProtocolApp(connector)
        self._socket_listener: asyncio.Server | None = None
        self._metrics_listener: asyncio.Server | None = None
        self._connections = ConnectionSet()
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        await self.connector.open()
        _prepare_socket_path(Path(self.socket_path))
        loop = asyncio.get_running_loop()
        # Create the socket with the final mode: no window where it is wider.
        old_umask = os.umask(0o117)
        try:
            self._socket_listener = await loop.create_unix_server(
                lambda: HttpConnection(
                    self.app.handle, self._connections, body_timeout=self.body_timeout
                ),
                self.socket_path,
            )
        finally:
            os.umask(old_umask)
        os.chmod(self.socket_path, SOCKET_MODE)
        if self.metrics_port is not None:
            await self._start_metrics_listener()
        log.info("serving %s on %s", self.connector.name, self.socket_path)

    async def _start_metrics_listener(self) -> None:
        """The only TCP listener a connector opens, and only when METRICS_PORT is set."""

        async def metrics_only(request: Request) -> Response:
            if (
                request.method not in ("GET", "HEAD")
                or request.target.partition("?")[0] != "/metrics"
            ):
                return Response(
                    404, body=b"only GET /metrics is served here\n", content_type="text/plain"
                )
            return metrics_response(self.app.metrics)

        loop = asyncio.get_running_loop()
        self._metrics_listener = await loop.create_server(
            lambda: HttpConnection(metrics_only, self._connections),
            self.metrics_host,
            self.metrics_port,
        )
        log.info("metrics on %s:%s/metrics", self.metrics_host, self.metrics_port)

    async def drain_and_stop(self) -> None:
        """Stop accepting, let in-flight requests finish (bounded by the grace period), close."""
        if self._stopped.is_set():
            return
        self.app.draining = True
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        if self._socket_listener is not None:
            self._socket_listener.close()  # no new connections; metrics stay up while draining
        try:
            await asyncio.wait_for(self.app.wait_idle(), self.grace_seconds)
        except TimeoutError:
            log.warning("grace period over with %d requests in flight", self.app.in_flight)
        listeners = [x for x in (self._socket_listener, self._metrics_listener) if x is not None]
        for listener in listeners:
            listener.close()
        self._connections.close_all()
        for listener in listeners:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.wait_closed(), 2.0)
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
    _run_on_fastest_loop(server.serve_forever())


def _run_on_fastest_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop when the image has it (about half the event loop's cost per request), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)

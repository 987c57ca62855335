"""A throwaway redis-server on a loopback port, for tests and the benchmark.

Owns: the redis-server command line (loopback only, no persistence, its own
working directory), an optional ``requirepass`` for the default user, an
optional TLS-only listener from a given certificate and key, an optional
Unix socket next to the loopback port, and readiness
that waits for a PING answer rather than an open port.

Must not: touch a system-wide Redis or its configuration files.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Sequence
from pathlib import Path

from .base import LoopbackServer, ServerStartError, find_executable


class RedisServer(LoopbackServer):
    """``redis-server`` from PATH (``./dev setup`` installs the Debian package)."""

    name = "redis"

    def __init__(
        self,
        port: int | None = None,
        *,
        password: str | None = None,
        tls: tuple[Path, Path] | None = None,
        unix_socket: Path | None = None,
    ) -> None:
        """``tls``: (certificate, key) PEM files; the server then speaks TLS only.

        ``unix_socket``: also listen on this path, readable by this user only.
        """
        super().__init__(port)
        self.password = password
        self.tls = tls
        self.unix_socket = unix_socket

    def command(self) -> Sequence[str]:
        args = [find_executable("redis-server"), "--bind", "127.0.0.1"]
        if self.tls is None:
            args += ["--port", str(self.port)]
        else:
            cert, key = self.tls
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"]
            args += ["--tls-cert-file", str(cert), "--tls-key-file", str(key)]
            args += ["--tls-ca-cert-file", str(cert)]
        args += [
            "--dir",
            str(self.workdir),
            # A benchmark and test backend: nothing is written to disk.
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ]
        if self.password is not None:
            args += ["--requirepass", self.password]
        if self.unix_socket is not None:
            args += ["--unixsocket", str(self.unix_socket), "--unixsocketperm", "700"]
        return args

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password is not None else ""
        scheme = "redis" if self.tls is None else "rediss"
        return f"{scheme}://{auth}127.0.0.1:{self.port}/0"

    def ready(self) -> None:
        super().ready()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._pong():
                return
            time.sleep(0.05)
        raise ServerStartError(f"redis-server on port {self.port} never answered PING")

    def _pong(self) -> bool:
        """One PING over a raw socket (RESP), so starting needs no client library."""
        request = b"PING\r\n"
        if self.password is not None:
            request = f"AUTH {self.password}\r\n".encode() + request
        try:
            with socket.create_connection(("127.0.0.1", self.port), 1.0) as raw:
                sock = raw
                if self.tls is not None:
                    context = ssl.create_default_context(cafile=str(self.tls[0]))
                    context.check_hostname = False
                    sock = context.wrap_socket(raw)
                sock.sendall(request)
                reply = b""
                while b"PONG" not in reply and b"LOADING" not in reply:
                    data = sock.recv(256)
                    if not data:
                        break
                    reply += data
                return b"+PONG" in reply
        except OSError:
            return False

"""A throwaway redis-server on a loopback port, for tests and the benchmark.

Owns: the redis-server command line (loopback only, no persistence, its own
working directory), an optional ``requirepass`` for the default user, an
optional TLS-only listener from a given certificate and key, an optional
Unix socket next to the loopback port, and readiness
that waits for a PING answer rather than an open port.

``RedisCluster`` starts several of them in cluster mode and joins them
with ``redis-cli --cluster create``, for the cluster tests and benchmark.

Must not: touch a system-wide Redis or its configuration files.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import redis
from redis.crc import key_slot

from .base import LoopbackServer, ServerStartError, find_executable, free_port


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


class RedisClusterNode(RedisServer):
    """One node of a ``RedisCluster``: cluster mode, its own bus port, a short node timeout."""

    name = "redis-node"

    def __init__(self, node_timeout_ms: int) -> None:
        super().__init__()
        self.bus_port = free_port()
        self.node_timeout_ms = node_timeout_ms

    def command(self) -> Sequence[str]:
        return [
            *super().command(),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-port",
            str(self.bus_port),
            "--cluster-node-timeout",
            str(self.node_timeout_ms),
            # Any replica may replace its primary, however long the link was down.
            "--cluster-replica-validity-factor",
            "0",
            # A replica's first sync starts at once (the default waits 5 s for more replicas).
            "--repl-diskless-sync-delay",
            "0",
        ]

    def info(self, section: str) -> dict[str, str]:
        """``INFO section`` as a dict (empty when the node does not answer)."""
        try:
            text = self.command_reply("INFO", section).decode()
        except redis.RedisError:
            return {}
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def command_reply(self, *args: str | int) -> Any:
        """One command's raw reply (bytes, integers, lists); raises redis-py's errors."""
        # redis-py's connection is untyped; its raw replies skip the client's parsing.
        factory: Any = redis.Connection
        connection = factory(host="127.0.0.1", port=self.port, socket_timeout=2.0)
        try:
            connection.send_command(*args)
            return connection.read_response()
        finally:
            connection.disconnect()


class RedisCluster:
    """A Redis Cluster on loopback: ``primaries`` primaries with ``replicas`` replicas each.

    Created the way an operator would (``redis-cli --cluster create ...
    --cluster-replicas N --cluster-yes``); ``start()`` returns once every
    node says the cluster is ok and every replica is in sync. ``node_timeout_ms``
    is how long a silent primary has before its replica takes over.
    """

    def __init__(
        self, primaries: int = 3, replicas: int = 1, *, node_timeout_ms: int = 1000
    ) -> None:
        self.nodes = [RedisClusterNode(node_timeout_ms) for _ in range(primaries * (replicas + 1))]
        self.replicas = replicas
        self.start_timeout = 30.0

    @property
    def url(self) -> str:
        """The URL of one node: the connector discovers the others from it."""
        return self.nodes[0].url

    def start(self) -> Self:
        try:
            for node in self.nodes:
                node.start()
            create = [
                find_executable("redis-cli"),
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ]
            done = subprocess.run(
                create, capture_output=True, timeout=self.start_timeout, check=False
            )
            if done.returncode != 0:
                raise ServerStartError(
                    f"redis-cli --cluster create failed: {done.stdout.decode()}{done.stderr.decode()}"
                )
            self.wait_healthy()
        except BaseException:
            self.cleanup()
            raise
        return self

    def wait_healthy(self, timeout: float | None = None) -> None:
        """Until every running node says ``cluster_state:ok`` and every replica is in sync."""
        deadline = time.monotonic() + (timeout or self.start_timeout)
        while time.monotonic() < deadline:
            if all(self._healthy(node) for node in self.nodes if node.process is not None):
                return
            time.sleep(0.05)
        raise ServerStartError("the Redis cluster did not become healthy in time")

    @staticmethod
    def _healthy(node: RedisClusterNode) -> bool:
        try:
            state = node.command_reply("CLUSTER", "INFO")
        except redis.RedisError:
            return False
        if b"cluster_state:ok" not in state:
            return False
        replication = node.info("replication")
        return replication.get("role") == "master" or replication.get("master_link_status") == "up"

    def primary_of(self, key: bytes) -> RedisClusterNode:
        """The node that serves ``key``'s slot now (as the cluster says)."""
        slot = key_slot(key)
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                ranges = node.command_reply("CLUSTER", "SLOTS")
            except redis.RedisError:
                continue
            for start, end, owner, *_ in ranges:
                if int(start) <= slot <= int(end):
                    port = int(owner[1])
                    return next(n for n in self.nodes if n.port == port)
        raise ServerStartError(f"no live node knows who serves slot {slot}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

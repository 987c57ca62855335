"""Raw HTTP exchanges over a Unix socket, for tests that send what no client library would."""

from __future__ import annotations

import socket


def exchange(path: str, raw: bytes) -> bytes:
    """Send ``raw``; read the answer. A request still waiting for body bytes gets EOF after 0.25 s."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.25)
        sock.connect(path)
        sock.sendall(raw)
        reply = b""
        half_closed = False
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                if half_closed:
                    raise AssertionError(f"no answer and no close for {raw[:200]!r}") from None
                sock.shutdown(socket.SHUT_WR)  # the server may be waiting for a body we never send
                half_closed = True
                sock.settimeout(10)  # a hang past this fails the test
                continue
            except ConnectionResetError:
                return reply
            if not chunk:
                return reply
            reply += chunk

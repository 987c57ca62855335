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


class Answer:
    """One response read off a raw connection: interim statuses, status, headers, body."""

    def __init__(
        self, interim: list[int], status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        self.interim = interim
        self.status = status
        self.headers = headers
        self.body = body

    def all(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in order."""
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def header(self, name: str) -> str | None:
        values = self.all(name)
        assert len(values) <= 1, f"{name} sent {len(values)} times: {values}"
        return values[0] if values else None


class RawConnection:
    """One client connection that sends arbitrary bytes and reads answers one by one.

    Unlike ``exchange`` it never half-closes: a server still waiting for
    bytes makes ``read_answer`` time out, which tells "waits" from "refuses".
    """

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self._buffer = b""

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def _fill(self) -> bool:
        chunk = self.sock.recv(1 << 20)
        self._buffer += chunk
        return bool(chunk)

    def _take_head(self) -> bytes:
        while b"\r\n\r\n" not in self._buffer:
            if not self._fill():
                raise ConnectionError(f"closed inside a response head: {self._buffer[:200]!r}")
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        return head

    def read_answer(self, method: str = "GET") -> Answer:
        interim: list[int] = []
        while True:
            lines = self._take_head().decode("ascii").split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers = [
                (name.strip(), value.strip())
                for name, _, value in (line.partition(":") for line in lines[1:])
            ]
            if status >= 200:
                break
            interim.append(status)
        lengths = {value for name, value in headers if name.lower() == "content-length"}
        assert len(lengths) <= 1, f"conflicting Content-Length values {lengths}"
        length = 0 if method == "HEAD" or status in (204, 304) else int(next(iter(lengths), "0"))
        while len(self._buffer) < length:
            if not self._fill():
                raise ConnectionError(f"closed after {len(self._buffer)} of {length} body bytes")
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return Answer(interim, status, headers, body)

    def pending(self, wait: float = 0.3) -> bytes:
        """Whatever the server sends within ``wait`` seconds without being asked (b"" for none)."""
        self.sock.settimeout(wait)
        try:
            self._fill()
        except TimeoutError:
            pass
        finally:
            self.sock.settimeout(10.0)
        data, self._buffer = self._buffer, b""
        return data

    def closed_by_server(self) -> bool:
        """Whether the server closed the connection (after anything still unread)."""
        try:
            while self._fill():
                pass
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        return True

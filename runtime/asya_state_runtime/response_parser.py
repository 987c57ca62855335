"""HTTP/1.1 responses read from a connection's receive buffer: the runtime client's parser.

Owns: one connection's receive buffer (``Reader``, kept for the connection's
whole life, so a response costs no new file objects), the response head
(status line, headers as lower-cased name -> values, the limits http.client
applies: at most 65536 bytes a line and 100 headers), skipping interim 1xx
answers, and body framing: Content-Length (every value the same, at most
2^63-1), chunked (at most 16 hex digits a size, extensions ignored,
trailers read and dropped) or until the peer closes; none for HEAD, 1xx,
204 and 304. It also decides whether the connection may carry another
request once the body is read (HTTP/1.0, ``Connection: close``, unframed
bodies).

Must not: open, pool or close sockets, write requests, or decide what a
failure means for the handler. It raises ``WireError`` for a peer that
broke the framing, ``BadStatusLine`` as soon as the first bytes of an answer
cannot start an HTTP/1.x status line (a peer speaking something else is
told apart at once, not after a timeout), and lets socket errors (OSError,
timeouts) through.
"""

from __future__ import annotations

import socket

MAX_LINE = 65536
MAX_HEADERS = 100
# A connection's first receive buffer: a connector's head and a small body
# arrive in one recv(). It grows only for a head line longer than this.
BUFFER_SIZE = 16 * 1024
# The largest piece one read of a long body asks the socket for.
_RECV_LIMIT = 256 * 1024
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
# A chunk size of more hex digits than this (2^64 and up) is a broken peer, not a big body.
MAX_CHUNK_SIZE_DIGITS = 16
# The largest Content-Length taken: what a file offset holds.
MAX_CONTENT_LENGTH = 2**63 - 1
_BLANK = (b"\r\n", b"\n")


class WireError(Exception):
    """The peer sent something that is not a well-framed HTTP/1.1 response."""


class BadStatusLine(WireError):
    """No valid HTTP/1.x status line: a peer that speaks another protocol (or, rarely, a dropped one)."""


class RemoteDisconnected(ConnectionResetError, BadStatusLine):
    """The peer closed the connection before sending any byte of a response."""


class LineTooLong(WireError):
    """A head or chunk-size line longer than MAX_LINE."""


class Truncated(WireError):
    """The connection ended inside a response: in its head or before the body it announced."""


class Reader:
    """Buffered reads from one socket; bytes past what was asked for wait for the next read.

    Everything received sits in ``_buf[_start:_end]``. Body reads larger than
    what is buffered go straight from the socket into the caller's buffer.
    """

    __slots__ = ("_buf", "_end", "_sock", "_start", "_view")

    def __init__(self, sock: socket.socket, size: int = BUFFER_SIZE) -> None:
        self._sock = sock
        self._buf = bytearray(size)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0

    @property
    def pending(self) -> int:
        """Bytes received but not read yet (after a whole response: bytes nobody asked for)."""
        return self._end - self._start

    def peek(self, count: int) -> bytes:
        """Up to ``count`` received bytes not read yet, left in place (no recv)."""
        return self._view[self._start : min(self._end, self._start + count)].tobytes()

    def expect(self, prefix: bytes) -> None:
        """Return once the bytes to come start with ``prefix`` (or the stream ends early).

        Raises BadStatusLine as soon as they differ, however few arrived.
        """
        while True:
            have = self._view[self._start : min(self._end, self._start + len(prefix))]
            if not prefix.startswith(have):
                raise BadStatusLine(f"{self.peek(100)!r} where an HTTP/1.x status line belongs")
            if len(have) == len(prefix) or not self._fill():
                return

    def buffered_head(self) -> list[str] | None:
        """The lines of the next head (status line first), if one recv() brought all of it.

        The common case, a whole head in the buffer, is split in one go;
        None leaves the buffer untouched for the line-by-line reader, which
        also enforces the limits and reports the end of stream.
        """
        if self._start == self._end and not self._fill():
            return None
        buf, start = self._buf, self._start
        # The head ends at its first empty line: "\n" followed by "\r\n" or "\n".
        stop = buf.find(b"\n\r\n", start, self._end)
        bare = buf.find(b"\n\n", start, stop if stop >= 0 else self._end)
        if bare >= 0:
            stop, after = bare, bare + 2
        elif stop >= 0:
            after = stop + 3
        else:
            return None
        if stop - start >= MAX_LINE:  # a line could be too long: let readline() judge
            return None
        lines = buf[start:stop].decode("iso-8859-1").split("\n")
        if len(lines) > MAX_HEADERS + 1:
            return None
        self._start = after
        return lines

    def _fill(self) -> int:
        """Receive more after the buffered bytes; 0 at end of stream."""
        start, end = self._start, self._end
        if start == end:
            start = end = 0
        elif end == len(self._buf):
            # Move the unread tail to the front; a tail that already fills the
            # buffer (a head line longer than it) moves into one twice the size.
            old = self._buf
            if start == 0:
                self._buf = bytearray(2 * len(old))
                self._view = memoryview(self._buf)
            self._buf[: end - start] = old[start:end]
            start, end = 0, end - start
        self._start = start
        count = self._sock.recv_into(self._view[end:])
        self._end = end + count
        return count

    def readline(self, limit: int = MAX_LINE) -> bytes:
        """One line with its line feed, or what is left at end of stream (b"" for nothing)."""
        scanned = 0  # bytes after _start already known to hold no line feed
        while True:
            found = self._buf.find(b"\n", self._start + scanned, self._end)
            if found >= 0:
                found += 1
                if found - self._start > limit:
                    raise LineTooLong(f"a line longer than {limit} bytes")
                line = self._view[self._start : found].tobytes()
                self._start = found
                return line
            scanned = self._end - self._start
            if scanned > limit:
                raise LineTooLong(f"a line longer than {limit} bytes")
            if not self._fill():
                line = self._view[self._start : self._end].tobytes()
                self._start = self._end
                return line

    def read(self, count: int) -> bytes:
        """``count`` bytes, fewer only if the stream ends first."""
        start = self._start
        if self._end - start >= count:
            self._start = start + count
            return self._view[start : start + count].tobytes()
        pieces = [self._view[start : self._end].tobytes()]
        left = count - len(pieces[0])
        self._start = self._end = 0
        while left:
            piece = self._sock.recv(min(left, _RECV_LIMIT))
            if not piece:
                break
            pieces.append(piece)
            left -= len(piece)
        return b"".join(pieces)

    def readinto(self, buffer: memoryview) -> int:
        """Up to ``len(buffer)`` bytes, waiting for at most one recv(); 0 at end of stream."""
        size = len(buffer)
        if self._start == self._end and size:
            if size >= len(self._buf):
                return self._sock.recv_into(buffer)
            # A small read refills the buffer, so many small reads share a recv().
            if not self._fill():
                return 0
        count = min(size, self._end - self._start)
        buffer[:count] = self._view[self._start : self._start + count]
        self._start += count
        return count

    def read_to_end(self) -> bytes:
        """Everything until the peer closes."""
        pieces = [self._view[self._start : self._end].tobytes()]
        self._start = self._end = 0
        while piece := self._sock.recv(_RECV_LIMIT):
            pieces.append(piece)
        return b"".join(pieces)


def _parse_status(line: str) -> tuple[int, int]:
    """Version (10 or 11) and status of a status line, checked as http.client checks it."""
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise BadStatusLine(f"bad status line {line[:100]!r}")
    version, code = parts[0], parts[1]
    if not (len(code) == 3 and code.isascii() and code.isdigit()) or code[0] == "0":
        raise BadStatusLine(f"bad status line {line[:100]!r}")
    if version == "HTTP/1.0":
        return 10, int(code)
    if version.startswith("HTTP/1."):
        return 11, int(code)
    raise BadStatusLine(f"unsupported protocol {version[:20]!r}")


def _content_length(values: list[str]) -> int:
    """The body length of one or more Content-Length fields (or a list in one), which must agree.

    Taking the first of two different values would read the wrong number of
    bytes and take the rest, or part of the next answer, for another reply.
    """
    sizes = {part.strip() for value in values for part in value.split(",")}
    if len(sizes) != 1:
        raise WireError(f"conflicting Content-Length values {sorted(sizes)[:4]!r}")
    (size,) = sizes
    # isascii: str.isdigit also accepts digits such as "²" that int() rejects.
    if not (size.isascii() and size.isdigit()) or len(size) > 19 or int(size) > MAX_CONTENT_LENGTH:
        raise WireError(f"bad Content-Length {size[:40]!r}")
    return int(size)


def _parse_fields(lines: list[str]) -> dict[str, list[str]]:
    """Header (or trailer) lines, by lower-cased name."""
    fields: dict[str, list[str]] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep:
            raise WireError(f"malformed header line {line[:100]!r}")
        key = name.strip().lower()
        values = fields.get(key)
        if values is None:
            fields[key] = [value.strip()]
        else:
            values.append(value.strip())
    return fields


def _read_head_lines(reader: Reader) -> list[str]:
    """A head line by line, for heads that arrive in pieces or come near the limits."""
    lines: list[str] = []
    while len(lines) <= MAX_HEADERS + 1:  # the status line and MAX_HEADERS headers
        line = reader.readline(MAX_LINE)
        if not line.endswith(b"\n"):
            if not lines and not line:
                raise RemoteDisconnected("Remote end closed connection without response")
            # Stricter than http.client: a head cut short could lack the very
            # header (a size, a kind) its reader needs.
            raise Truncated("the connection ended inside a response head")
        if lines and line in _BLANK:
            return lines
        lines.append(line.decode("iso-8859-1"))
    raise WireError(f"got more than {MAX_HEADERS} headers")


def read_response(reader: Reader, method: str) -> Response:
    """The head of the next final response on ``reader``; its body is read through the result."""
    while True:
        lines = reader.buffered_head()
        if lines is None:
            reader.expect(b"HTTP/1.")
            lines = _read_head_lines(reader)
        version, status = _parse_status(lines[0])
        # Interim answers (100 Continue, 102, 103) precede the real one.
        if status >= 200:
            return Response(reader, method, version, status, _parse_fields(lines[1:]))


class Response:
    """One response: its head, and its body read on demand from the connection's Reader.

    ``length`` is the number of body bytes still to come when the body has a
    Content-Length (0 when there is no body), None when it is chunked or runs
    until the peer closes. ``done`` is set once the whole body was read.
    """

    __slots__ = (
        "_chunk_left",
        "_reader",
        "chunked",
        "done",
        "headers",
        "length",
        "status",
        "version",
        "will_close",
    )

    def __init__(
        self,
        reader: Reader,
        method: str,
        version: int,
        status: int,
        headers: dict[str, list[str]],
    ) -> None:
        self._reader = reader
        self.version = version
        self.status = status
        self.headers = headers
        self.chunked = False
        # Bytes left in the current chunk; 0 means the next thing is a size line.
        self._chunk_left = 0
        self.length: int | None = None
        connection = headers.get("connection")
        if connection is None:
            self.will_close = version != 11
        else:
            tokens = ",".join(connection).lower()
            self.will_close = "close" in tokens if version == 11 else "keep-alive" not in tokens
        codings = headers.get("transfer-encoding")
        sizes = headers.get("content-length")
        if status in (204, 304) or method == "HEAD":
            self.length = 0
        elif codings is not None:
            # The last coding frames the body; with any other the body runs until close.
            last = ",".join(codings).rsplit(",", 1)[-1]
            self.chunked = last.strip().lower() == "chunked"
        elif sizes is not None:
            self.length = _content_length(sizes)
        if self.length is None and not self.chunked:
            self.will_close = True  # the body ends when the connection does
        self.done = self.length == 0

    def header(self, name: str) -> str | None:
        """A header's value, repeated ones joined by ", " (as http.client's getheader)."""
        values = self.headers.get(name.lower())
        if not values:
            return None
        return values[0] if len(values) == 1 else ", ".join(values)

    def close(self) -> None:
        """Read nothing more (the connection is gone)."""
        self.done = True

    def read(self) -> bytes:
        """The rest of the body."""
        if self.done:
            return b""
        if self.chunked:
            data = self._read_chunks()
        elif self.length is None:
            data = self._reader.read_to_end()
        else:
            data = self._reader.read(self.length)
            if len(data) < self.length:
                raise Truncated(f"{len(data)} of {self.length} body bytes")
            self.length = 0
        self.done = True
        return data

    def readinto(self, buffer: memoryview) -> int:
        """Some body bytes into ``buffer``; 0 once the body is complete."""
        if self.done or not buffer:
            return 0
        if self.chunked:
            return self._readinto_chunk(buffer)
        if self.length is None:
            count = self._reader.readinto(buffer)
            self.done = not count
            return count
        count = self._reader.readinto(buffer[: self.length])
        if not count:
            raise Truncated(f"the body ended {self.length} bytes early")
        self.length -= count
        self.done = not self.length
        return count

    def _readinto_chunk(self, buffer: memoryview) -> int:
        left = self._chunk_left or self._next_chunk()
        if not left:
            self.done = True
            return 0
        count = self._reader.readinto(buffer[:left])
        if not count:
            raise Truncated(f"a chunk ended {left} bytes early")
        self._chunk_left = left - count
        if not self._chunk_left:
            self._end_chunk()
        return count

    def _read_chunks(self) -> bytes:
        pieces = []
        left = self._chunk_left  # a readinto may have stopped inside a chunk
        while left or (left := self._next_chunk()):
            piece = self._reader.read(left)
            if len(piece) < left:
                raise Truncated(f"a chunk ended {left - len(piece)} bytes early")
            pieces.append(piece)
            self._end_chunk()
            left = 0
        self._chunk_left = 0
        return b"".join(pieces)

    def _next_chunk(self) -> int:
        """The size of the next chunk; 0 for the last one, whose trailers are then skipped."""
        line = self._reader.readline(MAX_LINE)
        if not line.endswith(b"\n"):
            raise Truncated("the chunked body ended before its last chunk")
        size = line.split(b";", 1)[0].strip()  # chunk extensions are ignored
        # int(x, 16) alone would also take "-1", "0x1f" or "1_0".
        if not size or not _HEX_DIGITS.issuperset(size) or len(size) > MAX_CHUNK_SIZE_DIGITS:
            raise WireError(f"bad chunk size line {line[:100]!r}")
        count = int(size, 16)
        if not count:
            for _ in range(MAX_HEADERS + 1):
                trailer = self._reader.readline(MAX_LINE)
                if trailer in _BLANK:
                    return 0
                if not trailer:
                    # Like http.client: the body is complete, the connection is not.
                    self.will_close = True
                    return 0
            raise WireError(f"got more than {MAX_HEADERS} trailer lines")
        return count

    def _end_chunk(self) -> None:
        line = self._reader.readline(MAX_LINE)
        if line not in _BLANK:
            if not line.endswith(b"\n"):
                raise Truncated("the chunked body ended after a chunk")
            raise WireError(f"chunk data not followed by CRLF: {line[:100]!r}")

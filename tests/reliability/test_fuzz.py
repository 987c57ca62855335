"""Fuzzing the connector's HTTP server with generated hostile requests.

Methods, targets with random bytes and percent-escapes, Range values,
Content-Length lies and broken chunked bodies, sent raw over the Unix
socket. The server must answer every one without a crash, a hang, or a 500
for what is the client's fault.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asya_state_cli.commands.probe import check
from asya_state_cli.connector_process import ConnectorProcess
from tests.rawhttp import exchange

METHODS = [
    "GET",
    "HEAD",
    "PUT",
    "POST",
    "DELETE",
    "PATCH",
    "OPTIONS",
    "TRACE",
    "CONNECT",
    "G E T",
    "\x00",
]
PREFIXES = [
    "/v1/objects/",
    "/v1/xattrs/",
    "/v1/list",
    "/v1/info",
    "/v1/",
    "/",
    "",
    "*",
    "//v1/objects/",
]
path_piece = st.one_of(
    st.text(
        st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=" "), max_size=30
    ),
    st.sampled_from(
        ["..", ".", "%2e%2e", "%00", "%", "%z", "%C3", "%FF", "a/b/../c", "k" * 1100, "?op=append"]
    ),
)
range_value = st.one_of(
    st.from_regex(r"bytes=[0-9]{0,25}-[0-9]{0,25}", fullmatch=True),
    st.sampled_from(
        ["bytes=", "bytes=-", "bytes=5-1", "bytes=0-0,2-3", "items=0-1", "bytes=-0", "garbage"]
    ),
)
header = st.one_of(
    st.tuples(st.just("Range"), range_value),
    st.tuples(
        st.just("Content-Length"), st.sampled_from(["-1", "abc", "99999999999999999999", "5", "0"])
    ),
    st.tuples(st.just("If-Match"), st.sampled_from(['"x"', "*", "", 'W/"a"', '"'])),
    st.tuples(st.just("If-None-Match"), st.sampled_from(["*", '"x"', "", "a, b"])),
    st.tuples(
        st.just("Transfer-Encoding"), st.sampled_from(["chunked", "gzip", "chunked, chunked", "x"])
    ),
    st.tuples(
        st.just("Content-Type"),
        st.text(max_size=20).filter(lambda t: "\r" not in t and "\n" not in t),
    ),
)
body = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        [b"0\r\n\r\n", b"5\r\nabc\r\n0\r\n\r\n", b"ZZ\r\nx\r\n", b"ffffffffffff\r\n", b"3\r\nabc"]
    ),
)


@pytest.fixture(scope="module")
def connector() -> Iterator[ConnectorProcess]:
    with tempfile.TemporaryDirectory(prefix="asya-fuzz-", dir="/tmp") as workdir:
        process = ConnectorProcess(
            "fs-buffered-cas", Path(workdir) / "fuzz.sock", {"STATE_DIR": workdir + "/d"}
        )
        with process:
            yield process


@given(
    method=st.sampled_from(METHODS),
    prefix=st.sampled_from(PREFIXES),
    pieces=st.lists(path_piece, max_size=4),
    headers=st.lists(header, max_size=4),
    payload=body,
)
@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_generated_requests_never_crash_hang_or_500(
    connector: ConnectorProcess,
    method: str,
    prefix: str,
    pieces: list[str],
    headers: list[tuple[str, str]],
    payload: bytes,
) -> None:
    target = prefix + "/".join(pieces)
    lines = [f"{method} {target} HTTP/1.1", "Host: x", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + payload
    reply = exchange(connector.socket_path, raw)
    status_line = reply.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/"), f"no HTTP answer to {raw[:300]!r}"
    assert b" 500 " not in status_line, f"{raw[:300]!r} -> {status_line!r}"
    assert connector.process is not None
    assert connector.process.poll() is None, "the connector died"


def test_still_healthy_after_fuzzing(connector: ConnectorProcess) -> None:
    healthy, detail = check(connector.socket_path, ready=True, timeout=3)
    assert healthy, detail

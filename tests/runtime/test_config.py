"""Mount configuration: the ASYA_STATE_PROXY_MOUNTS grammar and its errors."""

from __future__ import annotations

import pytest

from asya_state_runtime.config import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_SOCKET_DIR,
    DEFAULT_TIMEOUT,
    Mount,
    MountConfigError,
    load_mounts,
    parse_mounts,
)


def test_entries_with_options_and_defaults() -> None:
    mounts = parse_mounts(
        "weights:/state/weights:write=passthrough,timeout=120;cache:/state/cache/",
        "/run/sockets",
    )
    assert mounts == [
        Mount(
            "weights",
            "/state/weights",
            "/run/sockets/weights.sock",
            "passthrough",
            120.0,
            DEFAULT_CONNECT_TIMEOUT,
        ),
        Mount(
            "cache",
            "/state/cache",
            "/run/sockets/cache.sock",
            "buffered",
            DEFAULT_TIMEOUT,
            DEFAULT_CONNECT_TIMEOUT,
        ),
    ]
    assert mounts[0].passthrough
    assert not mounts[1].passthrough


def test_whitespace_and_empty_entries_are_tolerated() -> None:
    mounts = parse_mounts(" state : /state : connect_timeout=0.5 ; ;")
    assert [(m.name, m.path, m.connect_timeout) for m in mounts] == [("state", "/state", 0.5)]


def test_paths_are_normalized() -> None:
    (mount,) = parse_mounts("s://state/./a/../b/")
    assert mount.path == "/state/b"


def test_socket_dir_comes_from_the_environment() -> None:
    (mount,) = load_mounts(
        {"ASYA_STATE_PROXY_MOUNTS": "s:/state", "ASYA_STATE_PROXY_SOCKET_DIR": "/sock"}
    )
    assert mount.socket == "/sock/s.sock"
    (mount,) = load_mounts({"ASYA_STATE_PROXY_MOUNTS": "s:/state"})
    assert mount.socket == f"{DEFAULT_SOCKET_DIR}/s.sock"


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("state", "expected name:path"),
        ("../x:/state", "mount name '../x'"),
        ("s:state", "must be absolute"),
        ("s:/", "filesystem root"),
        ("s:/state:write=fast", "write='fast'"),
        ("s:/state:timeout=0", "timeout='0'"),
        ("s:/state:timeout=soon", "timeout='soon'"),
        ("s:/state:connect_timeout=-1", "connect_timeout='-1'"),
        ("s:/state:colour=red", "unknown option 'colour'"),
        ("s:/state:write", "must be option=value"),
        ("s:/state:write=buffered,write=passthrough", "given twice"),
        ("a:/state;a:/other", "name 'a' is used twice"),
        ("a:/state;b:/state/", "path '/state' is used twice"),
    ],
)
def test_bad_entries_fail_naming_the_entry(spec: str, fragment: str) -> None:
    with pytest.raises(MountConfigError) as caught:
        parse_mounts(spec)
    message = str(caught.value)
    assert "ASYA_STATE_PROXY_MOUNTS entry" in message
    assert fragment in message


def test_the_failing_entry_is_identified_by_position_and_text() -> None:
    with pytest.raises(MountConfigError, match=r"entry 2 \('b:relative'\)"):
        parse_mounts("a:/state;b:relative")


def test_missing_or_empty_configuration_is_an_error() -> None:
    with pytest.raises(MountConfigError, match="ASYA_STATE_PROXY_MOUNTS is not set"):
        load_mounts({})
    with pytest.raises(MountConfigError, match="lists no mounts"):
        parse_mounts(" ; ")


def test_socket_dir_must_be_absolute_and_socket_paths_short() -> None:
    with pytest.raises(MountConfigError, match="ASYA_STATE_PROXY_SOCKET_DIR"):
        parse_mounts("s:/state", "relative/dir")
    with pytest.raises(MountConfigError, match="longer than 107 bytes"):
        parse_mounts("s:/state", "/" + "d" * 110)

"""Status -> exception mapping, as handlers see it; every message names the path."""

from __future__ import annotations

import errno
import json

import pytest

from asya_state_runtime import errors
from asya_state_runtime.config import parse_mounts

(MOUNT,) = parse_mounts("cache:/state/cache", "/run/s")
PATH = "/state/cache/k.json"


def body(code: str, message: str = "detail") -> bytes:
    return json.dumps({"code": code, "message": message, "key": "k.json"}).encode()


@pytest.mark.parametrize(
    ("status", "code", "exc_type", "number"),
    [
        (404, "not_found", FileNotFoundError, errno.ENOENT),
        (403, "permission_denied", PermissionError, errno.EACCES),
        (409, "conflict", FileExistsError, errno.EEXIST),
        (413, "too_large", OSError, errno.EFBIG),
        (400, "invalid_key", OSError, errno.EINVAL),
        (501, "unsupported", OSError, errno.ENOTSUP),
        (500, "backend_error", OSError, errno.EIO),
        (503, "unavailable", ConnectionError, errno.ECONNABORTED),
        (503, "unreachable", ConnectionError, errno.ECONNREFUSED),
        (503, "draining", ConnectionError, errno.ECONNABORTED),
        (504, "timeout", TimeoutError, errno.ETIMEDOUT),
        (408, "request_timeout", TimeoutError, errno.ETIMEDOUT),
        (404, "no_such_attribute", OSError, errno.ENODATA),
        (400, "is_a_directory", IsADirectoryError, errno.EISDIR),
        (400, "not_a_directory", NotADirectoryError, errno.ENOTDIR),
        (400, "name_too_long", OSError, errno.ENAMETOOLONG),
        (507, "no_space", OSError, errno.ENOSPC),
    ],
)
def test_status_mapping(status: int, code: str, exc_type: type[OSError], number: int) -> None:
    exc = errors.from_status(status, body(code, "the detail"), PATH, MOUNT)
    assert type(exc) is exc_type
    assert exc.errno == number
    assert exc.filename == PATH
    assert "the detail" in str(exc)
    assert PATH in str(exc)
    assert "'cache'" in str(exc)


def test_a_head_answer_explains_itself_through_its_headers() -> None:
    exc = errors.from_status(
        400, b"", PATH, MOUNT, "not_a_directory", "a parent of 'k.json' is a file"
    )
    assert type(exc) is NotADirectoryError
    assert "a parent of 'k.json' is a file" in str(exc)
    assert "no detail" not in str(exc)


def test_an_unknown_code_falls_back_to_its_status() -> None:
    exc = errors.from_status(507, body("some_future_code"), PATH, MOUNT)
    assert exc.errno == errno.ENOSPC
    assert "some_future_code" in str(exc)


def test_a_missing_attribute_is_not_a_missing_file() -> None:
    exc = errors.from_status(404, body("no_such_attribute"), PATH, MOUNT)
    assert not isinstance(exc, FileNotFoundError)


def test_non_json_error_bodies_still_explain() -> None:
    exc = errors.from_status(502, b"<html>bad gateway</html>", PATH, MOUNT)
    assert type(exc) is OSError
    assert "bad gateway" in str(exc)


def test_unreachable_connector_is_a_connection_error_naming_socket_and_mount() -> None:
    exc = errors.unreachable(MOUNT, PATH, FileNotFoundError(errno.ENOENT, "No such file"))
    assert isinstance(exc, ConnectionError)
    assert not isinstance(exc, FileNotFoundError)
    assert "/run/s/cache.sock" in str(exc)
    assert "'cache'" in str(exc)
    assert exc.filename == PATH

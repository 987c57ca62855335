"""Translation of connector answers and transport failures into the exceptions handlers catch.

Owns: the status -> exception table of the wire protocol (404
FileNotFoundError, 403 PermissionError, 409 FileExistsError, 413
OSError(EFBIG), 400 OSError(EINVAL), 501 OSError(ENOTSUP), 500 OSError(EIO),
503 ConnectionError, 504 TimeoutError) and the errors for an unreachable or
silent connector. Every exception carries the handler's path as its
``filename`` so its message names the path.

Must not: perform I/O. An unreachable connector is a ConnectionError, never
FileNotFoundError: "load or start fresh" code must not mistake a missing
sidecar for missing state.
"""

from __future__ import annotations

import errno
import json

from .config import Mount

NO_SUCH_ATTRIBUTE = "no_such_attribute"

# Statuses whose exception class follows from the errno (OSError picks the subclass).
_ERRNO_BY_STATUS = {
    400: errno.EINVAL,
    403: errno.EACCES,
    404: errno.ENOENT,
    409: errno.EEXIST,
    413: errno.EFBIG,
    416: errno.EINVAL,
    501: errno.ENOTSUP,
}


def describe(body: bytes) -> tuple[str | None, str]:
    """The stable code and message of an error body; tolerates a body that is not JSON."""
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        parsed = None
    if isinstance(parsed, dict):
        code = parsed.get("code")
        message = parsed.get("message")
        return (
            code if isinstance(code, str) else None,
            message if isinstance(message, str) and message else "no detail",
        )
    text = body.decode("utf-8", "replace").strip()
    return None, text[:300] or "no detail"


def from_status(status: int, body: bytes, path: str, mount: Mount) -> OSError:
    """The exception a handler sees for an error answer of the connector."""
    code, message = describe(body)
    detail = f"{message} (mount {mount.name!r}, HTTP {status}{', ' + code if code else ''})"
    if status == 404 and code == NO_SUCH_ATTRIBUTE:
        return OSError(errno.ENODATA, detail, path)
    if status == 503:
        return ConnectionError(errno.ECONNABORTED, f"connector unavailable: {detail}", path)
    if status == 504:
        return TimeoutError(errno.ETIMEDOUT, f"backend timed out: {detail}", path)
    number = _ERRNO_BY_STATUS.get(status, errno.EIO)
    return OSError(number, detail, path)


def unreachable(mount: Mount, path: str, cause: OSError) -> ConnectionError:
    reason = cause.strerror or str(cause)
    return ConnectionError(
        cause.errno or errno.ECONNREFUSED,
        f"state connector for mount {mount.name!r} is unreachable at {mount.socket}: {reason}"
        " (is its sidecar running?)",
        path,
    )


def timed_out(mount: Mount, path: str, seconds: float) -> TimeoutError:
    return TimeoutError(
        errno.ETIMEDOUT,
        f"state connector for mount {mount.name!r} at {mount.socket} did not answer "
        f"within {seconds:g}s",
        path,
    )


def lost(mount: Mount, path: str, cause: BaseException) -> ConnectionError:
    return ConnectionError(
        errno.ECONNRESET,
        f"connection to the state connector for mount {mount.name!r} at {mount.socket} "
        f"was lost: {cause!r}",
        path,
    )

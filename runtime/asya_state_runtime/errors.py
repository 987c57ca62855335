"""Translation of connector answers and transport failures into the exceptions handlers catch.

Owns: the one table of the wire protocol's errors, by stable code first and
by status for codes it does not know (404 FileNotFoundError, 403
PermissionError, 409 FileExistsError, 413 OSError(EFBIG), 400
OSError(EINVAL), 501 OSError(ENOTSUP), 507 OSError(ENOSPC), 500 OSError(EIO),
503 ConnectionError (ECONNREFUSED for ``unreachable``: the backend was
never reached; ECONNABORTED otherwise: the outcome is unknown), 504 and
408 TimeoutError; is_a_directory IsADirectoryError,
not_a_directory NotADirectoryError, name_too_long OSError(ENAMETOOLONG),
no_such_attribute OSError(ENODATA)), and the errors for an unreachable,
silent or foreign connector (one that speaks another protocol: EPROTO).
The code and message come from the JSON body, or from the
``X-Asya-Error-Code``/``X-Asya-Error-Message`` headers when there is no body
(a HEAD answer). Every exception carries the handler's path as its
``filename`` so its message names the path.

Must not: perform I/O. An unreachable connector is a ConnectionError, never
FileNotFoundError: "load or start fresh" code must not mistake a missing
sidecar for missing state.
"""

from __future__ import annotations

import errno
import json

from .config import Mount

# What the runtime speaks, as error messages name it: the paths are under /v1/.
PROTOCOL = "asya-state protocol v1"
ERROR_CODE_HEADER = "X-Asya-Error-Code"
ERROR_MESSAGE_HEADER = "X-Asya-Error-Message"

# What a stable code means, whatever its status; OSError picks the subclass
# (IsADirectoryError, NotADirectoryError, ...) from the errno.
_ERRNO_BY_CODE = {
    "is_a_directory": errno.EISDIR,
    "not_a_directory": errno.ENOTDIR,
    "name_too_long": errno.ENAMETOOLONG,
    "no_space": errno.ENOSPC,
    "no_such_attribute": errno.ENODATA,
}
# Statuses whose exception class follows from the errno, for codes not above.
_ERRNO_BY_STATUS = {
    400: errno.EINVAL,
    403: errno.EACCES,
    404: errno.ENOENT,
    409: errno.EEXIST,
    413: errno.EFBIG,
    416: errno.EINVAL,
    501: errno.ENOTSUP,
    507: errno.ENOSPC,
}


def describe(body: bytes) -> tuple[str | None, str | None]:
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
            message if isinstance(message, str) and message else None,
        )
    text = body.decode("utf-8", "replace").strip()
    return None, text[:300] or None


def from_status(
    status: int,
    body: bytes,
    path: str,
    mount: Mount,
    header_code: str | None = None,
    header_message: str | None = None,
) -> OSError:
    """The exception a handler sees for an error answer of the connector.

    ``header_code`` and ``header_message`` are the answer's error headers;
    the body, when there is one, says the same at full length.
    """
    code, message = describe(body)
    code = code or header_code
    message = message or header_message or "no detail"
    detail = f"{message} (mount {mount.name!r}, HTTP {status}{', ' + code if code else ''})"
    if code in _ERRNO_BY_CODE:
        return OSError(_ERRNO_BY_CODE[code], detail, path)
    if status == 503 and code == "unreachable":
        # The backend was never reached: the request certainly was not applied.
        return ConnectionError(errno.ECONNREFUSED, f"backend unreachable: {detail}", path)
    if status == 503:
        # Sent, then the backend failed: a write may have been applied.
        return ConnectionError(errno.ECONNABORTED, f"connector unavailable: {detail}", path)
    if status == 504:
        return TimeoutError(errno.ETIMEDOUT, f"backend timed out: {detail}", path)
    if status == 408:
        # The connector gave up waiting for the rest of this request's body.
        return TimeoutError(errno.ETIMEDOUT, f"request body timed out: {detail}", path)
    return OSError(_ERRNO_BY_STATUS.get(status, errno.EIO), detail, path)


def unreachable(mount: Mount, path: str, cause: BaseException) -> ConnectionError:
    reason = getattr(cause, "strerror", None) or str(cause)
    return ConnectionError(
        getattr(cause, "errno", None) or errno.ECONNREFUSED,
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


def foreign(mount: Mount, path: str, found: str) -> ConnectionError:
    """The peer on the mount's socket is not an asya-state connector of this protocol version.

    A ConnectionError, like an unreachable connector: the handler cannot use
    the mount, and "load or start fresh" code must not take the peer's 404
    for missing state. EPROTO tells it from a connector that is down.
    """
    return ConnectionError(
        errno.EPROTO,
        f"the connector at {mount.path} (socket {mount.socket}) does not speak "
        f"{PROTOCOL}: {found} (is the sidecar an image of this release?)",
        path,
    )


def lost(mount: Mount, path: str, cause: BaseException) -> ConnectionError:
    return ConnectionError(
        errno.ECONNRESET,
        f"connection to the state connector for mount {mount.name!r} at {mount.socket} "
        f"was lost: {cause!r}",
        path,
    )


# Set on the exception a mutating request ends with when an attempt of it may
# have been applied and the outcome could not be learnt within the mount's
# timeout (see MountClient._once).
_OUTCOME_UNKNOWN = "asya_outcome_unknown"


def mark_outcome_unknown(exc: BaseException) -> None:
    setattr(exc, _OUTCOME_UNKNOWN, True)


def outcome_unknown(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from, ended a write that may have been applied.

    A queue runner must not hand such a message to the handler again as if
    nothing had happened: the first attempt may have taken effect.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if getattr(current, _OUTCOME_UNKNOWN, False):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False

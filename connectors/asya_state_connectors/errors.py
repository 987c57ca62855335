"""The connector exception tree and its mapping onto the wire protocol.

Owns: every error a connector may raise, each with the HTTP status and the
stable machine-readable ``code`` the server puts in the JSON error body.
Backends translate their client's exceptions into these (each backend keeps
its own mapping table); the server turns them into responses; the runtime
turns responses into the Python exceptions handler code catches.

The file-versus-directory errors are 400s, never 409: a 409 means a lost
compare-and-swap, which callers retry; a directory in the way stays in the way.

Must not: import a backend client or the server.

    ConnectorError                      500 backend_error
    ├── BadRequest                      400 bad_request
    │   └── InvalidKey                  400 invalid_key
    ├── IsADirectory                    400 is_a_directory    (objects live below the key)
    ├── NotADirectory                   400 not_a_directory   (an ancestor of the key is an object)
    ├── NameTooLong                     400 name_too_long     (a segment exceeds the backend's limit)
    ├── PermissionDenied                403 permission_denied
    ├── NotFound                        404 not_found
    │   └── NoSuchAttribute             404 no_such_attribute
    ├── RequestTimeout                  408 request_timeout   (the body stalled)
    ├── Conflict                        409 conflict          (CAS / create-only)
    ├── TooLarge                        413 too_large
    ├── RangeNotSatisfiable             416 range_not_satisfiable
    ├── Unsupported                     501 unsupported       (capability not declared)
    ├── BackendError                    500 backend_error
    ├── NoSpace                         507 no_space          (disk or quota full)
    ├── BackendUnavailable              503 unavailable       (outcome unknown: maybe applied)
    │   ├── BackendUnreachable          503 unreachable       (nothing reached the backend)
    │   └── Draining                    503 draining          (refused before handling)
    └── BackendTimeout                  504 timeout
"""

from __future__ import annotations

from typing import ClassVar

# Error answers repeat their code and a short, printable-ASCII message in
# these headers: a HEAD answer has no body, and a failed stat must still say
# what happened.
ERROR_CODE_HEADER = "X-Asya-Error-Code"
ERROR_MESSAGE_HEADER = "X-Asya-Error-Message"


class ConnectorError(Exception):
    """Base of every error a connector reports; carries status and code."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "backend_error"

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key = key

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.key is not None:
            body["key"] = self.key
        return body


class BadRequest(ConnectorError):
    status = 400
    code = "bad_request"


class InvalidKey(BadRequest):
    code = "invalid_key"


class IsADirectory(ConnectorError):
    """The key is a directory (objects live below it): it cannot be read or written as a file."""

    status = 400
    code = "is_a_directory"


class NotADirectory(ConnectorError):
    """An ancestor of the key (or the key, named with a trailing ``/``) is an object, not a directory."""

    status = 400
    code = "not_a_directory"


class NameTooLong(ConnectorError):
    """A segment of the key is longer than the backend stores (a file name on a local disk)."""

    status = 400
    code = "name_too_long"


class PermissionDenied(ConnectorError):
    status = 403
    code = "permission_denied"


class NotFound(ConnectorError):
    status = 404
    code = "not_found"


class NoSuchAttribute(NotFound):
    code = "no_such_attribute"


class RequestTimeout(ConnectorError):
    """The client sent no byte of the request body for the connector's body timeout."""

    status = 408
    code = "request_timeout"


class Conflict(ConnectorError):
    """A conditional write or delete lost: the revision changed or the key exists."""

    status = 409
    code = "conflict"


class TooLarge(ConnectorError):
    status = 413
    code = "too_large"


class RangeNotSatisfiable(ConnectorError):
    status = 416
    code = "range_not_satisfiable"

    def __init__(self, message: str, *, key: str | None = None, size: int) -> None:
        super().__init__(message, key=key)
        self.size = size


class Unsupported(ConnectorError):
    """The request needs a capability this connector does not declare."""

    status = 501
    code = "unsupported"


class BackendError(ConnectorError):
    status = 500
    code = "backend_error"


class NoSpace(ConnectorError):
    """The backend has no room left (a full disk or an exhausted quota); nothing was stored."""

    status = 507
    code = "no_space"


class BackendUnavailable(ConnectorError):
    status = 503
    code = "unavailable"


class BackendUnreachable(BackendUnavailable):
    """The backend could not be reached: the request was certainly never sent to it.

    Unlike a plain ``unavailable`` (sent, then the connection broke or the
    server refused mid-way), this proves the request was not applied, so a
    client may give up on it and send the work again later.
    """

    code = "unreachable"


class Draining(BackendUnavailable):
    code = "draining"


class BackendTimeout(ConnectorError):
    status = 504
    code = "timeout"


class ConfigError(Exception):
    """Bad or missing connector configuration, raised before the server starts."""


ERRORS_BY_CODE: dict[str, type[ConnectorError]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        InvalidKey,
        IsADirectory,
        NotADirectory,
        NameTooLong,
        PermissionDenied,
        NotFound,
        NoSuchAttribute,
        RequestTimeout,
        Conflict,
        TooLarge,
        RangeNotSatisfiable,
        Unsupported,
        BackendError,
        NoSpace,
        BackendUnavailable,
        BackendUnreachable,
        Draining,
        BackendTimeout,
    )
}

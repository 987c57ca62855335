"""The mount table's configuration: parsing ``ASYA_STATE_PROXY_MOUNTS``.

Owns: the ``Mount`` value (name, path, socket, write mode, timeouts,
connection reuse) and the grammar ``name:path[:opt=v,...]`` with entries
joined by ``;``; the socket directory (``ASYA_STATE_PROXY_SOCKET_DIR``).
Every error names the entry. Options: ``write=buffered|passthrough``,
``timeout=<s>``, ``connect_timeout=<s>``, ``keepalive=true|false`` (false
opens one connection per request: a diagnostic and benchmark baseline).

Must not: touch the network, patch anything, or accept a config that could
silently send state paths to the local disk (a bad entry is an error, never
skipped).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

MOUNTS_ENV = "ASYA_STATE_PROXY_MOUNTS"
SOCKET_DIR_ENV = "ASYA_STATE_PROXY_SOCKET_DIR"
DEFAULT_SOCKET_DIR = "/var/run/asya/state"

BUFFERED = "buffered"
PASSTHROUGH = "passthrough"
WRITE_MODES = (BUFFERED, PASSTHROUGH)

DEFAULT_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 5.0

# A mount name becomes a socket file name, so it must be one safe path segment.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107


class MountConfigError(ValueError):
    """The mount configuration is invalid; the message names the entry."""


@dataclass(frozen=True)
class Mount:
    """One state mount: paths under ``path`` go to the connector at ``socket``."""

    name: str
    path: str
    socket: str
    write_mode: str = BUFFERED
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    keepalive: bool = True

    @property
    def passthrough(self) -> bool:
        return self.write_mode == PASSTHROUGH


def load_mounts(env: Mapping[str, str] | None = None) -> list[Mount]:
    """Mounts from the environment; raises MountConfigError naming the bad entry."""
    env = os.environ if env is None else env
    spec = env.get(MOUNTS_ENV, "")
    if not spec.strip():
        raise MountConfigError(f"{MOUNTS_ENV} is not set or empty; it lists the state mounts")
    return parse_mounts(spec, env.get(SOCKET_DIR_ENV) or DEFAULT_SOCKET_DIR)


def parse_mounts(spec: str, socket_dir: str = DEFAULT_SOCKET_DIR) -> list[Mount]:
    """Parse ``name:path[:opt=v,...];...`` into mounts, checking names and paths are unique."""
    if not os.path.isabs(socket_dir):
        raise MountConfigError(f"{SOCKET_DIR_ENV} must be an absolute path, got {socket_dir!r}")
    mounts: list[Mount] = []
    for index, raw in enumerate(spec.split(";"), start=1):
        entry = raw.strip()
        if not entry:
            continue
        mount = _parse_entry(entry, index, socket_dir)
        for other in mounts:
            if other.name == mount.name:
                raise _entry_error(index, entry, f"mount name {mount.name!r} is used twice")
            if other.path == mount.path:
                raise _entry_error(index, entry, f"mount path {mount.path!r} is used twice")
        mounts.append(mount)
    if not mounts:
        raise MountConfigError(f"{MOUNTS_ENV} lists no mounts: {spec!r}")
    return mounts


def _entry_error(index: int, entry: str, problem: str) -> MountConfigError:
    return MountConfigError(f"{MOUNTS_ENV} entry {index} ({entry!r}): {problem}")


def _parse_entry(entry: str, index: int, socket_dir: str) -> Mount:
    parts = entry.split(":", 2)
    if len(parts) < 2:
        raise _entry_error(index, entry, "expected name:path[:option=value,...]")
    name, path = parts[0].strip(), parts[1].strip()
    if not _NAME.match(name):
        raise _entry_error(
            index, entry, f"mount name {name!r} must be letters, digits, '.', '_' or '-'"
        )
    if not path.startswith("/"):
        raise _entry_error(index, entry, f"mount path {path!r} must be absolute")
    path = normalize(path)
    if path == "/":
        raise _entry_error(index, entry, "the filesystem root cannot be a state mount")
    socket = os.path.join(socket_dir, f"{name}.sock")
    if len(os.fsencode(socket)) > _MAX_SOCKET_PATH:
        raise _entry_error(
            index, entry, f"socket path {socket!r} is longer than {_MAX_SOCKET_PATH} bytes"
        )
    options = _parse_options(parts[2] if len(parts) == 3 else "", index, entry)
    write_mode = options.pop("write", BUFFERED)
    if write_mode not in WRITE_MODES:
        raise _entry_error(
            index, entry, f"write={write_mode!r} is not one of {', '.join(WRITE_MODES)}"
        )
    timeout = _seconds(options.pop("timeout", None), DEFAULT_TIMEOUT, "timeout", index, entry)
    connect_timeout = _seconds(
        options.pop("connect_timeout", None),
        DEFAULT_CONNECT_TIMEOUT,
        "connect_timeout",
        index,
        entry,
    )
    keepalive = options.pop("keepalive", "true")
    if keepalive not in ("true", "false"):
        raise _entry_error(index, entry, f"keepalive={keepalive!r} must be true or false")
    return Mount(name, path, socket, write_mode, timeout, connect_timeout, keepalive == "true")


_OPTIONS = ("write", "timeout", "connect_timeout", "keepalive")


def _parse_options(text: str, index: int, entry: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            raise _entry_error(index, entry, f"option {item!r} must be option=value")
        if key not in _OPTIONS:
            raise _entry_error(
                index, entry, f"unknown option {key!r} (known: {', '.join(_OPTIONS)})"
            )
        if key in options:
            raise _entry_error(index, entry, f"option {key!r} is given twice")
        options[key] = value
    return options


def _seconds(value: str | None, default: float, option: str, index: int, entry: str) -> float:
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (seconds > 0 and math.isfinite(seconds)):
        raise _entry_error(index, entry, f"{option}={value!r} must be a positive number of seconds")
    return seconds


def normalize(path: str) -> str:
    """Lexically normalize an absolute path (POSIX keeps a leading ``//``; we do not)."""
    path = os.path.normpath(path)
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    return path

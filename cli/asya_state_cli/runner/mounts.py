"""Mount specs of the local runner: ``--mount PATH`` and ``--mount PATH=CONNECTOR[,opt=v]``.

Owns: parsing specs into mounts (name, path, connector, write mode, the
runtime's ``timeout`` for the mount), the
names derived from paths, and rendering the runtime's
``ASYA_STATE_PROXY_MOUNTS`` value, the same contract a pod gets.

Must not: start processes.
"""

from __future__ import annotations

import dataclasses
import math
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

DEFAULT_CONNECTOR = "fs-buffered-cas"
WRITE_MODES = ("buffered", "passthrough")
_NAME_CHARS = re.compile(r"[^a-z0-9-]+")


class MountSpecError(ValueError):
    """A --mount value that cannot be used; the message quotes it."""


@dataclass(frozen=True)
class Mount:
    name: str
    path: str
    connector: str
    write: str = "buffered"
    env: dict[str, str] = field(default_factory=dict)
    # The runtime's per-mount timeout (seconds); None keeps the runtime's default.
    timeout: float | None = None

    @property
    def cas(self) -> bool:
        return self.connector.endswith("-cas")

    def runtime_entry(self) -> str:
        entry = f"{self.name}:{self.path}:write={self.write}"
        return entry if self.timeout is None else f"{entry},timeout={self.timeout:g}"


def mounts_env(mounts: Iterable[Mount]) -> str:
    """The ASYA_STATE_PROXY_MOUNTS value for these mounts."""
    return ";".join(m.runtime_entry() for m in mounts)


def name_for(path: str) -> str:
    base = posixpath.basename(path.rstrip("/")) or "state"
    name = _NAME_CHARS.sub("-", base.lower()).strip("-")[:40] or "state"
    return name if name[0].isalpha() else f"m-{name}"


def parse_mount(spec: str, known_connectors: Iterable[str]) -> Mount:
    path, sep, rest = spec.partition("=")
    if not path.startswith("/"):
        raise MountSpecError(f"--mount {spec!r}: the path must be absolute, like /state")
    if any(c in path for c in ":;,"):
        raise MountSpecError(f"--mount {spec!r}: the path must not contain ':', ';' or ','")
    path = posixpath.normpath(path)
    connector, write, name = DEFAULT_CONNECTOR, "buffered", name_for(path)
    timeout: float | None = None
    if sep:
        connector, *options = rest.split(",")
        if connector not in set(known_connectors):
            known = ", ".join(sorted(known_connectors))
            raise MountSpecError(
                f"--mount {spec!r}: unknown connector {connector!r}; known: {known}"
            )
        for option in options:
            key, eq, value = option.partition("=")
            if not eq:
                raise MountSpecError(f"--mount {spec!r}: option {option!r} must be key=value")
            if key == "write":
                if value not in WRITE_MODES:
                    raise MountSpecError(f"--mount {spec!r}: write must be buffered or passthrough")
                write = value
            elif key == "name":
                name = value
            elif key == "timeout":
                timeout = _seconds(value)
                if timeout is None:
                    raise MountSpecError(
                        f"--mount {spec!r}: timeout must be a number of seconds above 0"
                    )
            else:
                raise MountSpecError(
                    f"--mount {spec!r}: unknown option {key!r} (write, name, timeout)"
                )
    return Mount(name=name, path=path, connector=connector, write=write, timeout=timeout)


def _seconds(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def unique_names(mounts: list[Mount]) -> list[Mount]:
    """Mount names must differ (one socket each); suffix repeats, refuse nested paths."""
    seen: dict[str, int] = {}
    result: list[Mount] = []
    for mount in mounts:
        count = seen.get(mount.name, 0)
        seen[mount.name] = count + 1
        name = mount.name if count == 0 else f"{mount.name}-{count + 1}"
        result.append(dataclasses.replace(mount, name=name))
    paths = [m.path for m in result]
    for a in paths:
        for b in paths:
            if a != b and (b + "/").startswith(a.rstrip("/") + "/"):
                raise MountSpecError(f"mount {b} is nested inside mount {a}")
        if paths.count(a) > 1:
            raise MountSpecError(f"mount path {a} is given twice")
    return result

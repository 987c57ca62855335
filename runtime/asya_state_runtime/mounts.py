"""Which paths belong to a state mount, and under which key.

Owns: turning whatever a file API received (str, bytes, os.PathLike) into a
``Target`` (mount client, key, normalized path, whether a trailing slash
demands a directory) by longest-prefix match on the normalized absolute
path. Relative paths resolve against the current directory like the OS would.

Must not: claim anything the OS should handle: integer file descriptors,
paths relative to a ``dir_fd``, objects that are not paths, and every path
outside the mounts resolve to None and go to the real OS untouched.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from .config import Mount, normalize
from .mount_client import MountClient


@dataclass(frozen=True)
class Target:
    """A path on a state mount: ``key`` is the path below the mount ("" for its root).

    ``dir_only`` is set when the path as given ends with ``/`` (or ``/.``):
    normalizing drops that, but a local disk then demands a directory.
    """

    client: MountClient
    key: str
    path: str
    dir_only: bool = False

    @property
    def mount(self) -> Mount:
        return self.client.mount

    def child(self, key: str) -> Target:
        """The target of another key on the same mount."""
        path = self.mount.path + "/" + key if key else self.mount.path
        return Target(self.client, key, path)


class MountTable:
    """The configured mounts, matched longest path first."""

    def __init__(self, mounts: Sequence[Mount]) -> None:
        self.mounts = list(mounts)
        clients = sorted((MountClient(m) for m in mounts), key=lambda c: -len(c.mount.path))
        self._entries = [(c.mount.path, c.mount.path + "/", c) for c in clients]

    def resolve(self, file: object, dir_fd: int | None = None) -> Target | None:
        if isinstance(file, int):
            return None
        try:
            raw = os.fspath(file)  # type: ignore[call-overload]
        except TypeError:
            return None
        path = os.fsdecode(raw)
        if not path.startswith("/"):
            if dir_fd is not None or not path:
                return None
            try:
                path = os.path.join(os.getcwd(), path)
            except OSError:
                return None
        dir_only = path.endswith(("/", "/."))
        path = normalize(path)
        for root, prefix, client in self._entries:
            if path == root:
                return Target(client, "", path)
            if path.startswith(prefix):
                return Target(client, path[len(prefix) :], path, dir_only)
        return None

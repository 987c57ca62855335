"""asya-state runtime hooks: plain Python file I/O on state mounts, served by connector sidecars.

Owns: the public API. ``install()`` patches ``open``/``io.open``, ``os``
file functions, ``shutil.rmtree`` and ``pathlib.Path.touch`` so that paths
under the mounts of ``ASYA_STATE_PROXY_MOUNTS`` become requests to each
mount's connector over its Unix socket (names that loaded modules bound to
the originals, such as ``bz2``'s own ``open``, are rebound too);
``uninstall()`` restores them; ``reset_revisions()`` forgets the revisions
remembered for compare-and-set (the local runner calls it between messages
and before a retry). The
``sitecustomize`` next to this package calls ``install()`` at interpreter
start, so handler code needs no import.

Must not: import anything outside the standard library; it is injected into
arbitrary actor images.
"""

from __future__ import annotations

from .config import Mount, MountConfigError
from .hooks import active_mounts, install, is_installed, uninstall
from .revisions import reset as reset_revisions

__all__ = [
    "Mount",
    "MountConfigError",
    "active_mounts",
    "install",
    "is_installed",
    "reset_revisions",
    "uninstall",
]

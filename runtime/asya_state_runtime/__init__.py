"""asya-state runtime hooks: plain Python file I/O on state mounts, served by connector sidecars.

Owns: the public API. ``install()`` patches ``open``/``io.open``, ``os``
file functions, ``shutil.rmtree`` and ``pathlib.Path.touch`` so that paths
under the mounts of ``ASYA_STATE_PROXY_MOUNTS`` become requests to each
mount's connector over its Unix socket (names that loaded modules bound to
the originals, such as ``bz2``'s own ``open``, are rebound too);
``uninstall()`` restores them. The ``sitecustomize`` next to this package
calls ``install()`` at interpreter start, so handler code needs no import,
and, when ``ASYA_STATE_PROXY_MOUNTS`` and ``ASYA_HANDLER`` are set,
``scope_handler()`` so that every call of the handler starts a fresh
revision memory for compare-and-set. Runtimes that call handlers their own
way use ``revision_scope()`` (a context manager) or ``scoped(handler)`` (a
decorator for sync, async, generator and async generator handlers).
``outcome_unknown(exc)`` says whether a failure ended a write that may have
been applied (a runtime should not simply run that message again).

Must not: import anything outside the standard library; it is injected into
arbitrary actor images.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Mount, MountConfigError
    from .errors import outcome_unknown
    from .handler import scope_handler, unscope_handler
    from .hooks import active_mounts, install, is_installed, uninstall
    from .revisions import revision_scope, scoped

# The public API, imported on first use: a tool that needs only the
# transport (the ``asya-state probe`` exec probe) does not pay for the hooks.
_MODULE_OF = {
    "Mount": "config",
    "MountConfigError": "config",
    "outcome_unknown": "errors",
    "scope_handler": "handler",
    "unscope_handler": "handler",
    "active_mounts": "hooks",
    "install": "hooks",
    "is_installed": "hooks",
    "uninstall": "hooks",
    "revision_scope": "revisions",
    "scoped": "revisions",
}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Mount",
    "MountConfigError",
    "active_mounts",
    "install",
    "is_installed",
    "outcome_unknown",
    "revision_scope",
    "scope_handler",
    "scoped",
    "uninstall",
    "unscope_handler",
]

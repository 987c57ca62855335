"""Run as a script by test_stdlib.py: import the whole standard library, then install the hooks.

Prints one JSON object: ``before`` lists the module-level names bound to an
original of a patched function once every importable standard-library module
(and package submodule) is loaded, ``uncovered`` those still bound to it after
``install()``, ``restored`` whether ``uninstall()`` put every one back, and
``failed`` the modules that could not be imported here. Nothing is installed
at interpreter start (no ``ASYA_STATE_PROXY_MOUNTS``), so every module is
imported before the hooks, the order that needs the sweep.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import pkgutil
import sys
import warnings
from types import ModuleType
from typing import Any

# Modules that open windows, browsers or print on import, run a command line,
# or are the interpreter's own test suite.
SKIP_TOP = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test"}
SKIP_PARTS = {"test", "tests", "idle_test", "__main__"}
# Where the patched functions are defined: their names there are the
# definitions themselves, not captured references (posix.stat is os.stat,
# genericpath.exists is os.path.exists, _io.open is open).
DEFINING = {"posix", "nt", "genericpath", "_io"}


def import_stdlib() -> list[str]:
    failed: list[str] = []

    def attempt(name: str) -> ModuleType | None:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                return importlib.import_module(name)
        except Exception:
            failed.append(name)
            return None

    for top in sorted(sys.stdlib_module_names - SKIP_TOP):
        module = attempt(top)
        path = getattr(module, "__path__", None)
        if path is None:
            continue
        for info in pkgutil.walk_packages(path, top + ".", onerror=failed.append):
            if not SKIP_PARTS & set(info.name.split(".")):
                attempt(info.name)
    return failed


def namespaces() -> dict[tuple[str, str], Any]:
    """Every module-level name of every loaded module, with its value."""
    return {
        (module_name, name): value
        for module_name, module in list(sys.modules.items())
        if isinstance(module, ModuleType) and not module_name.startswith("asya_state_runtime")
        for name, value in list(vars(module).items())
    }


def main() -> None:
    warnings.simplefilter("ignore")
    failed = import_stdlib()

    import asya_state_runtime
    from asya_state_runtime import hooks

    before = namespaces()
    asya_state_runtime.install("scan:/state", socket_dir="/nonexistent")
    replaced = {id(original): (owner, name) for (owner, name), original in hooks._originals.items()}
    owners = {
        module_name
        for module_name, module in sys.modules.items()
        if any(module is owner for owner, _ in hooks._originals)
    }

    def original_of(value: Any) -> tuple[Any, str] | None:
        found = replaced.get(id(value))
        return found if found is not None and hooks._originals[found] is value else None

    captured = sorted(
        key
        for key, value in before.items()
        if original_of(value) is not None and key[0] not in owners | DEFINING
    )
    during = namespaces()
    uncovered = [key for key in captured if original_of(during[key]) is not None]
    rebound = [key for key in captured if during[key] is getattr(*original_of(before[key]))]
    asya_state_runtime.uninstall()
    after = namespaces()
    print(
        json.dumps(
            {
                "captured": captured,
                "uncovered": uncovered,
                "rebound": rebound,
                "restored": [key for key in captured if after[key] is before[key]],
                "failed": failed,
                "modules": len(sys.modules),
            }
        )
    )


if __name__ == "__main__":
    main()

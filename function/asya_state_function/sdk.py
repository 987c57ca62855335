"""The oldest crossplane-function-sdk-python the function works with, and the check for it.

Owns: the floor version (the first release with ``response.set_conditions``,
which reports StateProxyReady) and one sentence saying what is wrong when
the installed SDK is older. ``function/constraints.txt`` pins the floor;
the function image installs exactly that file.

Must not: import anything of the SDK beyond its ``response`` module.
"""

from __future__ import annotations

from importlib import metadata

from crossplane.function import response

FLOOR = "0.12.0"
DISTRIBUTION = "crossplane-function-sdk-python"


def problem() -> str | None:
    """Why the installed SDK cannot run the function, or None."""
    if hasattr(response, "set_conditions"):
        return None
    try:
        installed = metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        installed = "of unknown version"
    return (
        f"{DISTRIBUTION} {installed} has no response.set_conditions (added in {FLOOR}); "
        "install the versions pinned in function/constraints.txt"
    )

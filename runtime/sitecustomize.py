"""Interpreter-start activation of the asya-state runtime hooks.

Owns: installing the hooks when ``ASYA_STATE_PROXY_MOUNTS`` is set (this
directory is on ``PYTHONPATH``), scoping the revision memory to each call of
the handler named by ``ASYA_HANDLER`` (set on the runtime container, and by
the local runner), refusing to start on a bad configuration,
and then running the image's own ``sitecustomize`` (the next one on
``sys.path``) so this one never hides it.

Must not: let the process run without hooks when mounts are configured: a
handler would then write its state to the container's local disk and lose it.
"""

from __future__ import annotations

import os
import sys

_EXIT_CONFIG = 78  # sysexits.h EX_CONFIG


def _activate() -> None:
    if not os.environ.get("ASYA_STATE_PROXY_MOUNTS", "").strip():
        return
    try:
        import asya_state_runtime

        asya_state_runtime.install()
        handler = os.environ.get("ASYA_HANDLER", "").strip()
        if handler:
            asya_state_runtime.scope_handler(handler)
    except Exception as exc:
        sys.stderr.write(f"asya-state runtime: refusing to start: {exc}\n")
        sys.stderr.flush()
        # site.py reports and swallows exceptions from sitecustomize; exiting
        # is the only way to keep the handler from running without its state.
        os._exit(_EXIT_CONFIG)


def _chain() -> None:
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    entries = [os.path.abspath(entry or os.curdir) for entry in sys.path]
    later = entries[entries.index(here) + 1 :] if here in entries else entries
    search = [entry for entry in later if entry != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", search)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


_activate()
_chain()

"""Scoping the handler named by ``ASYA_HANDLER``: every call of it gets a fresh revision memory.

Owns: reading a handler spec (``module.function`` or ``module.Class.method``,
as the actor's ``spec.handler`` and the runner take it), wrapping that
handler in place with ``revisions.scoped`` (the function on its module, the
method on its class, so instances made before or after get it), and the
import hook that does so when the handler's module has been executed.

The actor runtime imports the handler module itself, long after
``sitecustomize`` ran, and calls the handler its own way; the runtime hooks
cannot change how it calls, only what it finds. So a ``sys.meta_path``
finder (stdlib only) answers for the handler's module names by asking the
other finders for the spec and patching that spec's loader: its
``exec_module`` runs the module, then replaces the handler attribute. The
finder stays installed, so a reload or a re-import gets wrapped again. A
module already imported when ``scope_handler`` runs is wrapped at once.

Must not: import the handler's module (the actor runtime decides when and
how) or fail the process start: a spec it cannot use leaves the handler
unwrapped, and the actor runtime reports a bad handler better than we can.
A handler that is not a function (a callable object whose class has no
``__call__`` function, a builtin) is left alone with a RuntimeWarning; its
memory is then per thread or task only (see revisions.py).
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import threading
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec

from .revisions import scoped

_lock = threading.Lock()

# (module name, attribute path) pairs a spec may mean, longest module first.
Candidates = list[tuple[str, list[str]]]


def candidates(spec: str) -> Candidates:
    """Every split of ``spec`` into module and attributes; empty if it is malformed."""
    parts = spec.strip().split(".")
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        return []
    return [(".".join(parts[:split]), parts[split:]) for split in range(len(parts) - 1, 0, -1)]


def scope_handler(spec: str) -> bool:
    """Give every call of the handler ``spec`` names a fresh revision scope.

    Wraps it now if its module is already imported, and (in any case)
    installs the import hook so the module is wrapped whenever it is
    executed. Returns whether it was wrapped now.
    """
    splits = candidates(spec)
    if not splits:
        return False
    with _lock:
        for finder in [f for f in sys.meta_path if isinstance(f, HandlerFinder)]:
            sys.meta_path.remove(finder)
        sys.meta_path.insert(0, HandlerFinder(spec, splits))
    for module_name, attributes in splits:
        module = sys.modules.get(module_name)
        if module is not None and wrap(module, attributes, spec):
            return True
    return False


def unscope_handler() -> None:
    """Remove the import hook (handlers already wrapped stay wrapped)."""
    with _lock:
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, HandlerFinder)]


def wrap(module: ModuleType, attributes: Sequence[str], spec: str) -> bool:
    """Replace the handler ``attributes`` names in ``module``; False if they name nothing there."""
    owner: Any = module
    for name in attributes[:-1]:
        owner = getattr(owner, name, None)
        if not inspect.isclass(owner):
            return False  # missing, or a submodule that is wrapped when it runs
    name = attributes[-1]
    if inspect.isclass(owner):
        return _wrap_method(owner, name, spec)
    target = getattr(owner, name, None)
    if target is None or inspect.ismodule(target):
        return False
    if inspect.isfunction(target):
        setattr(owner, name, scoped(target))
        return True
    # A class the runtime instantiates and calls, or an instance: scope its __call__.
    return _wrap_method(target if inspect.isclass(target) else type(target), "__call__", spec)


def _wrap_method(cls: type, name: str, spec: str) -> bool:
    raw = inspect.getattr_static(cls, name, None)
    if raw is None:
        return False
    if isinstance(raw, staticmethod):
        setattr(cls, name, staticmethod(scoped(raw.__func__)))
    elif isinstance(raw, classmethod):
        setattr(cls, name, classmethod(scoped(raw.__func__)))
    elif inspect.isfunction(raw):
        # Set on the class named, even if the method is inherited, so that
        # other subclasses of its base are not affected.
        setattr(cls, name, scoped(raw))
    else:
        _cannot(spec, raw)
    return True


def _cannot(spec: str, target: object) -> None:
    warnings.warn(
        f"asya-state: handler {spec!r} is a {type(target).__name__}, not a function; "
        "its calls get no revision scope of their own (wrap it with "
        "asya_state_runtime.scoped)",
        RuntimeWarning,
        stacklevel=2,
    )


class HandlerFinder:
    """A meta path finder that finds nothing itself: patches the loader the others give.

    Not derived from importlib.abc.MetaPathFinder, whose import costs every
    process start more than this whole module.
    """

    def __init__(self, spec: str, splits: Candidates) -> None:
        self.spec = spec
        self.splits = {module_name: attributes for module_name, attributes in splits}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        attributes = self.splits.get(fullname)
        if attributes is None:
            return None
        for finder in list(sys.meta_path):
            if finder is self or isinstance(finder, HandlerFinder):
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            found: ModuleSpec | None = find(fullname, path, target)
            if found is not None:
                self._patch(found, fullname, attributes)
                return found
        return None

    def _patch(self, found: ModuleSpec, fullname: str, attributes: list[str]) -> None:
        loader = found.loader
        execute = getattr(loader, "exec_module", None)
        if loader is None or execute is None:
            return  # a legacy loader: nothing to hook

        def exec_module(module: ModuleType) -> None:
            if module.__name__ != fullname:
                execute(module)  # a loader shared by several modules (zipimport)
                return
            try:
                execute(module)
            finally:
                vars(loader).pop("exec_module", None)
            try:
                wrap(module, attributes, self.spec)
            except Exception as exc:  # never break the handler's import
                warnings.warn(
                    f"asya-state: could not scope handler {self.spec!r}: {exc!r}",
                    RuntimeWarning,
                    stacklevel=2,
                )

        # An instance attribute: the loader's class and other loaders are untouched.
        # A loader without an instance dict cannot take it; the handler stays unscoped.
        with contextlib.suppress(AttributeError, TypeError):
            loader.exec_module = exec_module  # type: ignore[method-assign]

"""The runtime is injected into arbitrary images: standard library only, flat, importable bare."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.runtime.conftest import RUNTIME_DIR

PACKAGE = RUNTIME_DIR / "asya_state_runtime"


def runtime_files() -> list[Path]:
    return [*sorted(PACKAGE.glob("*.py")), RUNTIME_DIR / "sitecustomize.py"]


def test_the_package_is_flat_so_it_ships_as_configmap_keys() -> None:
    entries = [p for p in PACKAGE.iterdir() if p.name != "__pycache__"]
    assert entries, "runtime package is empty"
    assert all(p.is_file() and p.suffix in (".py", ".typed") for p in entries), entries


def test_every_import_is_standard_library_or_the_runtime_itself() -> None:
    foreign: list[str] = []
    for path in runtime_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "asya_state_runtime":
                    foreign.append(f"{path.name}: {name}")
    assert foreign == []


def test_imports_and_installs_in_a_bare_interpreter() -> None:
    # -I -S: no site-packages, no user site, no PYTHONPATH; only runtime/ is added.
    code = f"""
import sys
sys.path.insert(0, {str(RUNTIME_DIR)!r})
import asya_state_runtime, asya_state_runtime.hooks
asya_state_runtime.install("s:/state", socket_dir="/nonexistent")
assert asya_state_runtime.is_installed()
asya_state_runtime.uninstall()
stdlib = (sys.base_prefix, sys.base_exec_prefix)
foreign = [
    name for name, module in sys.modules.items()
    if getattr(module, "__file__", None)
    and not module.__file__.startswith(stdlib)
    and not module.__file__.startswith({str(RUNTIME_DIR)!r})
]
print(foreign)
"""
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

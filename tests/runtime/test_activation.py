"""Activation the production way: sitecustomize on PYTHONPATH plus ASYA_STATE_PROXY_MOUNTS."""

from __future__ import annotations

import json
from pathlib import Path

from tests.runtime.conftest import Connectors, handler_env, run_handler


def test_a_handler_gets_the_hooks_without_importing_anything(hooks: Connectors, ns: str) -> None:
    run_handler(
        hooks,
        f"""
        import json, os
        os.makedirs("/state/{ns}/sessions", exist_ok=True)
        try:
            with open("/state/{ns}/sessions/s1.json") as f:
                history = json.load(f)
        except FileNotFoundError:
            history = []
        history.append("hello")
        with open("/state/{ns}/sessions/s1.json", "w") as f:
            json.dump(history, f)
        """,
    )
    with open(f"/state/{ns}/sessions/s1.json") as f:
        assert json.load(f) == ["hello"]


def test_without_mounts_nothing_is_patched(connectors: Connectors) -> None:
    env = handler_env(connectors)
    del env["ASYA_STATE_PROXY_MOUNTS"]
    result = run_handler(
        connectors,
        "import builtins, io, sys; "
        "print(builtins.open is io.open and type(open).__name__ == 'builtin_function_or_method',"
        " 'asya_state_runtime' in sys.modules)",
        env=env,
    )
    assert result.stdout.split() == ["True", "False"]


def test_bad_configuration_stops_the_process_naming_the_entry(connectors: Connectors) -> None:
    env = handler_env(connectors, ASYA_STATE_PROXY_MOUNTS="ok:/state;broken:/x:write=sometimes")
    result = run_handler(connectors, "print('handler ran')", env=env, check=False)
    assert result.returncode == 78
    assert "handler ran" not in result.stdout
    assert "entry 2" in result.stderr
    assert "broken:/x:write=sometimes" in result.stderr


def test_the_images_own_sitecustomize_still_runs(connectors: Connectors, tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text("import builtins\nbuiltins.IMAGE_HOOK = 'ran'\n")
    env = handler_env(connectors)
    env["PYTHONPATH"] = f"{env['PYTHONPATH']}:{tmp_path}"
    result = run_handler(
        connectors,
        "import asya_state_runtime; print(IMAGE_HOOK, asya_state_runtime.is_installed())",
        env=env,
    )
    assert result.stdout.split() == ["ran", "True"]


def test_an_unreachable_sidecar_is_not_missing_state(
    connectors: Connectors, tmp_path: Path
) -> None:
    env = handler_env(connectors, ASYA_STATE_PROXY_SOCKET_DIR=str(tmp_path))
    result = run_handler(
        connectors,
        """
        try:
            open("/state/history.json")
        except FileNotFoundError:
            print("FileNotFoundError")
        except ConnectionError as exc:
            print("ConnectionError", exc)
        """,
        env=env,
    )
    assert result.stdout.startswith("ConnectionError")
    assert f"{tmp_path}/mem.sock" in result.stdout


def test_a_handler_name_that_names_nothing_does_not_stop_the_process(
    connectors: Connectors,
) -> None:
    """The actor runtime reports a bad ASYA_HANDLER better than the hooks could."""
    for spec in ("not a handler", "missing_module.handler"):
        env = handler_env(connectors, ASYA_HANDLER=spec)
        result = run_handler(
            connectors,
            "import asya_state_runtime; print(asya_state_runtime.is_installed())",
            env=env,
        )
        assert result.stdout.split() == ["True"], spec

"""Root test configuration: loads every module in tests/fixtures/ as a plugin.

A backend joins the suites by adding ``tests/fixtures/<backend>.py`` with its
server fixture and its ``connector_env_<name>`` fixtures; nothing else needs
to change.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = sorted(
    f"tests.fixtures.{path.stem}"
    for path in (Path(__file__).parent / "fixtures").glob("*.py")
    if path.stem != "__init__"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="run the long soak tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak"):
        return
    skip = pytest.mark.skip(reason="long soak; run with --soak")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)

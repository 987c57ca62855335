"""Fixtures of the chart tests: the loaded chart and every values scenario rendered once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import helm_python as helm
import pytest

from .helpers import CHART_DIR, CI_VALUES, Manifest, load_values, render


@dataclass(frozen=True)
class Scenario:
    """A values file (or the chart defaults) and what the chart renders for it."""

    name: str
    values: dict[str, Any]
    merged: dict[str, Any]
    manifests: list[Manifest]


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


SCENARIOS = ["defaults", *(path.name for path in CI_VALUES)]


@pytest.fixture(scope="session")
def rendered(chart: helm.Chart) -> dict[str, Scenario]:
    sources = {"defaults": {}, **{path.name: load_values(path) for path in CI_VALUES}}
    return {
        name: Scenario(name, values, chart.merge_values(values), render(chart, values))
        for name, values in sources.items()
    }


@pytest.fixture(params=SCENARIOS)
def scenario(request: pytest.FixtureRequest, rendered: dict[str, Scenario]) -> Scenario:
    return rendered[request.param]

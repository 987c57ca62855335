"""`helm lint --strict` finds no errors or warnings, with defaults and every scenario."""

from __future__ import annotations

from pathlib import Path

import helm_python as helm
import pytest

from .helpers import CHART_DIR, CI_VALUES, NAMESPACE, load_values

ERROR, WARNING = 3, 2


@pytest.mark.parametrize(
    "values_file", [None, *CI_VALUES], ids=lambda p: p.name if p else "defaults"
)
def test_lint_is_clean(values_file: Path | None) -> None:
    values = load_values(values_file) if values_file else None
    report = helm.lint(CHART_DIR, values, strict=True, namespace=NAMESPACE, kube_version="v1.29.0")
    problems = [m for m in report["messages"] if m["severity"] >= WARNING]
    assert not problems, f"helm lint reported: {problems}"
    assert not report["errors"], f"helm lint failed: {report['errors']}"

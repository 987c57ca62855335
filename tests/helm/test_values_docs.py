"""values.yaml documents every key it sets: a ``# --`` comment on the key or on a parent."""

from __future__ import annotations

import re
from typing import Any

import yaml

from .helpers import CHART_DIR

KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z][\w.-]*):")


def _documented_paths(lines: list[str]) -> set[tuple[str, ...]]:
    """Paths of the keys whose comment block starts with ``# --``."""
    documented: set[tuple[str, ...]] = set()
    stack: list[tuple[int, str]] = []
    comment: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped)
            continue
        match = KEY.match(line)
        if match is None:
            comment = []
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        if comment and comment[0].startswith("# --"):
            documented.add(tuple(key for _, key in stack))
        comment = []
    return documented


def _leaf_paths(values: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    leaves: list[tuple[str, ...]] = []
    for key, value in values.items():
        path = (*prefix, key)
        if isinstance(value, dict) and value:
            leaves.extend(_leaf_paths(value, path))
        else:
            leaves.append(path)
    return leaves


def test_every_value_is_documented() -> None:
    text = (CHART_DIR / "values.yaml").read_text()
    documented = _documented_paths(text.splitlines())
    undocumented = [
        ".".join(path)
        for path in _leaf_paths(yaml.safe_load(text))
        if not any(path[:n] in documented for n in range(1, len(path) + 1))
    ]
    assert not undocumented, f"values.yaml keys without a '# --' comment: {undocumented}"

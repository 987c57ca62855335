"""NOTES.txt: the next step it prints is an AsyncActor that the API and the function accept."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import helm_python as helm
import jsonschema
import pytest
import yaml

from asya_state_cli.main import main

from .helpers import NAMESPACE, PACKAGE_XRD, notes, render

HEREDOC = re.compile(r"cat <<'YAML' \| kubectl apply -f -\n(?P<body>.*?)\n\s*YAML\n", re.S)


@pytest.mark.parametrize(
    ("values", "namespace"),
    [({}, "default"), ({"runtimeLibrary": {"namespaces": []}}, NAMESPACE)],
    ids=["default-namespaces", "release-namespace-only"],
)
def test_notes_actor_is_accepted_in_a_namespace_with_the_library(
    chart: helm.Chart,
    values: dict[str, object],
    namespace: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    match = HEREDOC.search(notes(chart, values))
    assert match, "NOTES.txt no longer shows an AsyncActor to apply"
    actor = yaml.safe_load(textwrap.dedent(match["body"]))
    assert actor["metadata"]["namespace"] == namespace

    xrd = yaml.safe_load(PACKAGE_XRD.read_text())
    jsonschema.validate(actor, xrd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])

    actor_file = tmp_path / "actor.yaml"
    actor_file.write_text(yaml.safe_dump(actor))
    chart_file = tmp_path / "chart.yaml"
    chart_file.write_text(yaml.safe_dump_all([m.body for m in render(chart, values)]))
    status = main(["render", str(actor_file), "--composition", str(chart_file)])
    assert status == 0, capsys.readouterr().err


@pytest.mark.parametrize(
    ("values", "unqualified"),
    [
        ({}, ["function package asya/", "connector registry asya"]),
        ({"connectors": {"registry": "mirror.example.com/asya"}}, ["function package asya/"]),
        ({"images": {"registry": "localhost:5000/asya"}}, []),
        (
            {
                "images": {"registry": "registry.example.com/asya"},
                "function": {"package": "asya/function:1.0.0"},
            },
            ["function package asya/function:1.0.0"],
        ),
    ],
    ids=["placeholder", "connectors-mirrored", "local-registry", "package-override"],
)
def test_notes_warn_about_references_without_a_registry_host(
    chart: helm.Chart, values: dict[str, object], unqualified: list[str]
) -> None:
    text = notes(chart, values)
    warning = next((line for line in text.splitlines() if line.startswith("WARNING")), "")
    if not unqualified:
        assert not warning, warning
    for reference in unqualified:
        assert reference in warning
    assert ("connector registry" in warning) == any("connector" in u for u in unqualified)

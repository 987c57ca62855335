"""NOTES.txt: the AsyncActor it shows is accepted by the API and the function; it warns about
references Crossplane v2 cannot pull."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import helm_python as helm
import jsonschema
import pytest
import yaml

from asya_state_cli.main import main

from .helpers import PACKAGE_XRD, notes, render

HEREDOC = re.compile(r"cat <<'YAML' \| kubectl apply -f -\n(?P<body>.*?)\n\s*YAML\n", re.S)


def test_notes_actor_is_accepted_by_the_xrd_and_the_function(
    chart: helm.Chart, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    match = HEREDOC.search(notes(chart))
    assert match, "NOTES.txt no longer shows an AsyncActor to apply"
    actor = yaml.safe_load(textwrap.dedent(match["body"]))
    assert isinstance(actor["spec"]["stateProxy"], dict), "the notes show the shorthand"

    xrd = yaml.safe_load(PACKAGE_XRD.read_text())
    jsonschema.validate(actor, xrd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])

    actor_file = tmp_path / "actor.yaml"
    actor_file.write_text(yaml.safe_dump(actor))
    chart_file = tmp_path / "chart.yaml"
    chart_file.write_text(yaml.safe_dump_all([m.body for m in render(chart)]))
    status = main(["render", str(actor_file), "--composition", str(chart_file)])
    out = capsys.readouterr()
    assert status == 0, out.err
    (deployment,) = yaml.safe_load_all(out.out)
    sidecar = deployment["spec"]["template"]["spec"]["initContainers"][1]
    prefix = next(e["value"] for e in sidecar["env"] if e["name"] == "STATE_PREFIX")
    assert prefix == "default/chat-agent/", "the notes tell where the keys live"
    assert "keys under default/chat-agent/" in notes(chart)


@pytest.mark.parametrize(
    ("values", "unqualified"),
    [
        ({}, []),
        ({"images": {"registry": "asya"}}, ["function package asya/", "connector registry asya"]),
        (
            {"images": {"registry": "asya"}, "connectors": {"registry": "mirror.example.com/a"}},
            ["function package asya/"],
        ),
        ({"images": {"registry": "localhost:5000/asya"}}, []),
        (
            {
                "images": {"registry": "registry.example.com/asya"},
                "function": {"package": "asya/function:1.0.0"},
            },
            ["function package asya/function:1.0.0"],
        ),
    ],
    ids=["defaults", "unqualified", "connectors-mirrored", "local-registry", "package-override"],
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

"""Rendering the chart with the real Helm engine, and reading what it renders.

Owns: where the chart, its scenarios and its sources of truth live; one
``render`` that returns parsed manifests tagged with their template; the
Kubernetes versions manifests are validated for.

Must not: hold assertions; the test modules decide what is right.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml
from kubernetes_validate import utils as kube_validate

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "helm" / "asya-state-proxy"
CI_VALUES = sorted((ROOT / "helm" / "ci").glob("*-values.yaml"))
PACKAGE_DIR = ROOT / "package"
PACKAGE_XRD = PACKAGE_DIR / "configuration" / "definition.yaml"
PACKAGE_COMPOSITION = PACKAGE_DIR / "configuration" / "composition.yaml"
PACKAGE_INPUT_CRD = PACKAGE_DIR / "input" / "stateproxy.fn.asya.sh_inputs.yaml"
EXAMPLES_DIR = ROOT / "examples"
APP_VERSION = str(yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"])
SYNC_HINT = "the chart reads it through the symlinks in helm/asya-state-proxy/files/"

RELEASE = "asp"
NAMESPACE = "crossplane-system"

# The chart's kubeVersion floor (native sidecars) and the newest schemas
# kubernetes-validate ships.
KUBE_VERSIONS = ("1.29", kube_validate.latest_version())


@dataclass(frozen=True)
class Manifest:
    """One rendered object and the template it came from."""

    template: str
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        namespace = self.body["metadata"].get("namespace")
        return None if namespace is None else str(namespace)


def load_values(path: Path) -> dict[str, Any]:
    values = yaml.safe_load(path.read_text())
    assert isinstance(values, dict), f"{path} must hold a mapping"
    return values


def render(
    chart: helm.Chart, values: dict[str, Any] | None = None, *, namespace: str = NAMESPACE
) -> list[Manifest]:
    """Render like ``helm template``; NOTES.txt and empty documents are dropped."""
    rendered = chart.render(values, name=RELEASE, namespace=namespace, is_install=True)
    manifests = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            continue
        for body in yaml.safe_load_all(text):
            if body is not None:
                manifests.append(Manifest(template, body))
    return manifests


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [manifest for manifest in manifests if manifest.kind == kind]


def only(manifests: list[Manifest], kind: str) -> Manifest:
    found = of_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, rendered {[m.name for m in found]}"
    return found[0]


def notes(chart: helm.Chart, values: dict[str, Any] | None = None) -> str:
    rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return next(text for template, text in rendered.items() if template.endswith("NOTES.txt"))

"""The chart's AsyncActor XRD is the Crossplane package's, pointed at the chart's Composition."""

from __future__ import annotations

import copy

import pytest
import yaml

from .conftest import Scenario
from .helpers import PACKAGE_XRD, SYNC_HINT, of_kind, only


def test_xrd_is_the_package_xrd(scenario: Scenario) -> None:
    xrds = of_kind(scenario.manifests, "CompositeResourceDefinition")
    if not scenario.merged["xrd"]["enabled"]:
        assert not xrds
        return
    (xrd,) = xrds
    package = yaml.safe_load(PACKAGE_XRD.read_text())
    rendered = copy.deepcopy(xrd.body)
    for key, value in (package["metadata"].get("labels") or {}).items():
        assert rendered["metadata"]["labels"].pop(key) == value
    rendered["metadata"].pop("labels")
    assert rendered["metadata"].pop("annotations") == {"helm.sh/resource-policy": "keep"}, (
        "helm uninstall must not delete the CRD and with it every AsyncActor"
    )
    rendered["spec"].pop("defaultCompositionRef", None)
    package["spec"].pop("defaultCompositionRef", None)
    assert rendered == package, f"the chart's XRD differs from {PACKAGE_XRD}; {SYNC_HINT}"


def test_default_composition_is_the_charts(scenario: Scenario) -> None:
    if not scenario.merged["xrd"]["enabled"]:
        pytest.skip("this scenario installs no XRD")
    spec = only(scenario.manifests, "CompositeResourceDefinition").body["spec"]
    composition = scenario.merged["composition"]
    if composition["enabled"] and composition["setAsDefault"]:
        assert spec["defaultCompositionRef"] == {
            "name": only(scenario.manifests, "Composition").name
        }
    else:
        # A default naming a Composition that is not installed would strand every actor.
        assert "defaultCompositionRef" not in spec


def test_composition_composes_the_xrd_kind(scenario: Scenario) -> None:
    if not scenario.merged["xrd"]["enabled"]:
        pytest.skip("this scenario installs no XRD")
    spec = only(scenario.manifests, "CompositeResourceDefinition").body["spec"]
    (version,) = [v for v in spec["versions"] if v["referenceable"]]
    assert version["served"]
    assert only(scenario.manifests, "Composition").body["spec"]["compositeTypeRef"] == {
        "apiVersion": f"{spec['group']}/{version['name']}",
        "kind": spec["names"]["kind"],
    }

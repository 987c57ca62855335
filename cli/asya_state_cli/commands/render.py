"""``asya-state render ACTOR.yaml``: print what the composition function composes.

Owns: reading the AsyncActor (the namespace a ``kubectl apply`` would give
it when the file names none), the function Input (from ``--input`` or from
the pipeline step of the Composition for the actor's kind) and optional
Deployments (as is, or wrapped in a provider-kubernetes Object), running
the real function in-process through RunFunction, and printing the
composed resources as multi-document YAML (warnings and errors on stderr;
exit 1 on a fatal result, 2 when the files cannot be used).

Must not: import the function or its SDK at module import: connector images
run other subcommands of this CLI without them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

XR_GROUP = "asya.sh/"
XR_KIND = "AsyncActor"
DEFAULT_NAMESPACE = "default"
INPUT_GROUP = "stateproxy.fn.asya.sh/"
RESOURCE_NAME_ANNOTATION = "crossplane.io/composition-resource-name"
COMPOSED_KINDS = ("Deployment", "Object")

# Keys printed first, in this order; the rest follow alphabetically.
_KEY_ORDER = ("apiVersion", "kind", "metadata", "spec", "name", "namespace", "image")


class RenderError(Exception):
    """A file or document the command cannot use; the message names it."""


@dataclass
class Rendered:
    """The outcome of one RunFunction call, as plain data."""

    resources: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    conditions: list[dict[str, str]] = field(default_factory=list)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "render",
        help="print the resources the composition function composes for an AsyncActor",
        description=(
            "Run the composition function on ACTOR.yaml (an AsyncActor) and print the composed "
            "resources as YAML. Errors name the field; the exit status is 1 on an invalid spec."
        ),
    )
    parser.add_argument("actor", metavar="ACTOR.yaml", help="the AsyncActor to render")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--input", metavar="INPUT.yaml", help="the function Input (stateproxy.fn.asya.sh/v1beta1)"
    )
    source.add_argument(
        "--composition",
        metavar="FILE",
        help="YAML with the Composition whose pipeline step passes the function its Input",
    )
    parser.add_argument(
        "--observed-deployment",
        metavar="FILE",
        help=(
            "the Deployment (or provider-kubernetes Object) as observed in the cluster "
            "(drives StateProxyReady and readiness)"
        ),
    )
    parser.add_argument(
        "--desired-deployment",
        metavar="FILE",
        help=(
            "a Deployment, or a provider-kubernetes Object wrapping one, composed by an "
            "earlier pipeline step (upstream Asya's composition makes the Object); the "
            "function patches it"
        ),
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        actor = read_actor(args.actor)
        function_input: dict[str, Any] | None = None
        if args.input:
            function_input = read_input(args.input)
        elif args.composition:
            function_input = input_from_composition(
                _load(args.composition), args.composition, actor
            )
        observed = _composed(args.observed_deployment)
        desired = _composed(args.desired_deployment)
        rendered = render(actor, function_input, observed=observed, desired=desired)
    except RenderError as exc:
        print(f"asya-state render: {exc}", file=sys.stderr)
        return 2
    for warning in rendered.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for error in rendered.errors:
        print(f"error: {error}", file=sys.stderr)
    if observed is not None:
        for condition in rendered.conditions:
            print(
                f"condition: {condition['type']}={condition['status']} "
                f"({condition['reason']}): {condition['message']}",
                file=sys.stderr,
            )
    if rendered.errors:
        return 1
    sys.stdout.write(dump(rendered.resources))
    return 0


def render(
    actor: dict[str, Any],
    function_input: dict[str, Any] | None = None,
    *,
    observed: dict[str, Any] | None = None,
    desired: dict[str, Any] | None = None,
) -> Rendered:
    """Run the real function once on ``actor``; the Deployments sit under the target name."""
    try:
        from crossplane.function import resource
        from crossplane.function.proto.v1 import run_function_pb2 as fnv1

        from asya_state_function.fn import FunctionRunner
        from asya_state_function.models import DEFAULT_DEPLOYMENT_RESOURCE
        from asya_state_function.structs import to_dict
    except ImportError as exc:
        raise RenderError(
            f"render needs the function extra: pip install 'asya-state-proxy[function]' ({exc})"
        ) from exc

    target = str((function_input or {}).get("deploymentResourceName", DEFAULT_DEPLOYMENT_RESOURCE))
    request = fnv1.RunFunctionRequest(
        meta=fnv1.RequestMeta(tag="asya-state-render"),
        observed=fnv1.State(composite=fnv1.Resource(resource=resource.dict_to_struct(actor))),
    )
    if function_input is not None:
        request.input.CopyFrom(resource.dict_to_struct(function_input))
    if observed is not None:
        request.observed.resources[target].resource.CopyFrom(resource.dict_to_struct(observed))
    if desired is not None:
        request.desired.resources[target].resource.CopyFrom(resource.dict_to_struct(desired))
    response = asyncio.run(FunctionRunner().RunFunction(request))

    rendered = Rendered()
    for result in response.results:
        if result.severity == fnv1.SEVERITY_FATAL:
            rendered.errors.append(result.message)
        elif result.severity == fnv1.SEVERITY_WARNING:
            rendered.warnings.append(result.message)
    for condition in response.conditions:
        rendered.conditions.append(
            {
                "type": condition.type,
                "status": fnv1.Status.Name(condition.status)
                .removeprefix("STATUS_CONDITION_")
                .title(),
                "reason": condition.reason,
                "message": condition.message,
            }
        )
    for name in sorted(response.desired.resources):
        composed = to_dict(response.desired.resources[name].resource)
        annotations = composed.setdefault("metadata", {}).setdefault("annotations", {})
        annotations[RESOURCE_NAME_ANNOTATION] = name
        rendered.resources.append(composed)
    return rendered


def input_from_composition(
    documents: Iterable[Any], source: str, actor: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The Input of the asya-state step of the Composition for ``actor``'s kind in ``documents``."""
    api_version = str((actor or {}).get("apiVersion", f"{XR_GROUP}v1alpha1"))
    kind = str((actor or {}).get("kind", XR_KIND))
    for document in documents:
        if not isinstance(document, dict) or document.get("kind") != "Composition":
            continue
        spec = document.get("spec") or {}
        ref = spec.get("compositeTypeRef") or {}
        if ref.get("apiVersion") != api_version or ref.get("kind") != kind:
            continue
        for step in spec.get("pipeline") or []:
            step_input = (step or {}).get("input") or {}
            if str(step_input.get("apiVersion", "")).startswith(INPUT_GROUP):
                result: dict[str, Any] = step_input
                return result
        name = (document.get("metadata") or {}).get("name")
        raise RenderError(
            f"{source}: Composition {name!r} has no pipeline step with a {INPUT_GROUP}* input"
        )
    raise RenderError(f"{source}: no Composition for {api_version} {kind}")


def dump(resources: Iterable[dict[str, Any]]) -> str:
    """Multi-document YAML, keys in a stable, readable order, multi-line strings as blocks."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump_all(
        [_ordered(item) for item in resources],
        Dumper=Dumper,
        sort_keys=False,
        default_flow_style=False,
    )


def _ordered(value: Any) -> Any:
    if isinstance(value, dict):
        keys = sorted(
            value,
            key=lambda k: (_KEY_ORDER.index(k) if k in _KEY_ORDER else len(_KEY_ORDER), k),
        )
        return {key: _ordered(value[key]) for key in keys}
    if isinstance(value, list):
        return [_ordered(item) for item in value]
    return value


def _load(path: str) -> list[Any]:
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RenderError(f"{path}: {exc.strerror or exc}") from exc
    try:
        return [document for document in yaml.safe_load_all(text) if document is not None]
    except yaml.YAMLError as exc:
        raise RenderError(f"{path}: not valid YAML: {exc}") from exc


def _one(documents: list[Any], kinds: tuple[str, ...], path: str) -> dict[str, Any]:
    found = [d for d in documents if isinstance(d, dict) and d.get("kind") in kinds]
    if len(found) != 1:
        wanted = " or ".join(kinds)
        raise RenderError(f"{path}: expected one {wanted} document, found {len(found)}")
    document: dict[str, Any] = found[0]
    return document


def _actor(documents: list[Any], path: str) -> dict[str, Any]:
    """The one asya.sh document; a namespaced AsyncActor without a namespace gets ``default``."""
    found = [
        d
        for d in documents
        if isinstance(d, dict) and str(d.get("apiVersion", "")).startswith(XR_GROUP)
    ]
    if len(found) != 1:
        raise RenderError(f"{path}: expected one {XR_KIND} document, found {len(found)}")
    actor: dict[str, Any] = found[0]
    metadata = actor.setdefault("metadata", {}) or {}
    if actor.get("kind") == XR_KIND and not metadata.get("namespace"):
        # What kubectl apply does for a namespaced resource without one.
        actor["metadata"] = {**metadata, "namespace": DEFAULT_NAMESPACE}
    return actor


def read_actor(path: str) -> dict[str, Any]:
    """The AsyncActor in the file at ``path`` (``render`` and ``up`` read it the same way)."""
    return _actor(_load(path), path)


def read_input(path: str) -> dict[str, Any]:
    """The function Input in the file at ``path``."""
    return _one(_load(path), ("Input",), path)


def _composed(path: str | None) -> dict[str, Any] | None:
    return _one(_load(path), COMPOSED_KINDS, path) if path else None

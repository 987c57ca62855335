"""The gRPC FunctionRunner: one RunFunction call, start to finish.

Owns: the order of the steps (check the SDK, parse and check the input and
the XR, turn the shorthand into its mount, find the Deployment an earlier
step composed (as is, or wrapped in a provider-kubernetes Object) or
compose one, apply the state mounts, report readiness, warnings and
StateProxyReady) and the guarantee that a call never raises: every problem
becomes a fatal result Crossplane shows on the XR.

Must not: contain the rules or the builders themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from crossplane.function import logging, resource, response
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1

from . import builders, conditions, sdk, shorthand, validation, workload
from .identity import identify
from .models import ActorSpec, FunctionInput
from .readiness import rollout
from .structs import to_dict, to_struct


class FunctionRunner(grpcv1.FunctionRunnerServiceServicer):
    """Serves RunFunction for the asya-state composition function."""

    def __init__(self) -> None:
        self.log = logging.get_logger()

    async def RunFunction(
        self, req: fnv1.RunFunctionRequest, _context: grpc.aio.ServicerContext | None = None
    ) -> fnv1.RunFunctionResponse:
        log = self.log.bind(tag=req.meta.tag)
        rsp: fnv1.RunFunctionResponse = response.to(req)
        problem = sdk.problem()
        if problem is not None:
            response.fatal(rsp, f"asya-state function: {problem}")
            return rsp
        try:
            _compose(req, rsp)
        except Exception as exc:  # a bug must not crash the server or skip the response
            log.exception("RunFunction failed")
            response.fatal(rsp, f"asya-state function: internal error: {exc!r}")
        return rsp


def _compose(req: fnv1.RunFunctionRequest, rsp: fnv1.RunFunctionResponse) -> None:
    raw_input = to_dict(req.input) if req.HasField("input") else {}
    settings, errors = validation.parse(FunctionInput, raw_input, "input")
    if settings is not None:
        errors.extend(validation.validate_input(settings))
    if settings is None or errors:
        _fail(rsp, "InvalidInput", errors)
        return

    xr = to_dict(req.observed.composite.resource)
    spec, found, errors = validation.parse_spec(xr.get("spec") or {})
    if spec is None:
        _fail(rsp, "InvalidSpec", errors)
        return
    if found is not None:
        errors = validation.shorthand_errors(found)
        if errors:
            _fail(rsp, "InvalidSpec", errors)
            return
        spec = spec.model_copy(update={"state_proxy": [shorthand.entry(found)]})

    target = settings.deployment_resource_name
    composes = target not in req.desired.resources
    identity = identify(xr, spec)
    errors = validation.validate_actor(
        identity, spec, settings, composes_deployment=composes, shorthand=found is not None
    )
    if errors:
        _fail(rsp, "InvalidSpec", errors)
        return

    composed = (
        builders.minimal_deployment(xr, spec, settings, identity)
        if composes
        else to_dict(req.desired.resources[target].resource)
    )
    try:
        located = workload.desired(composed)
        patched = builders.apply(located, spec, settings, identity)
    except (workload.NotADeployment, builders.PatchError) as exc:
        _fail(rsp, "CannotPatch", [f"desired resource {target!r}: {exc}"])
        return
    rsp.desired.resources[target].resource.CopyFrom(
        to_struct(workload.put_back(composed, located, patched))
    )

    observed = workload.observed(
        to_dict(req.observed.resources[target].resource)
        if target in req.observed.resources
        else None
    )
    status = conditions.state_proxy_status(spec, observed, settings)
    if composes:
        # Readiness of resources the function composes is the function's to report:
        # rolled out, and (with mounts) on the template that has the sidecars.
        done = rollout(observed).complete and status.status == "True"
        rsp.desired.resources[target].ready = fnv1.READY_TRUE if done else fnv1.READY_FALSE

    replicas = _replicas(spec, patched)
    for warning in conditions.warnings(spec, settings, replicas, shorthand=found is not None):
        response.warning(rsp, warning)
    _set_condition(rsp, status)


def _replicas(spec: ActorSpec, deployment: dict[str, Any]) -> int:
    if spec.replicas is not None:
        return spec.replicas
    replicas = (deployment.get("spec") or {}).get("replicas", 1)
    return replicas if isinstance(replicas, int) else 1


def _fail(
    rsp: fnv1.RunFunctionResponse, reason: str, errors: Sequence[validation.FieldError | str]
) -> None:
    for error in errors:
        response.fatal(rsp, str(error))
    summary = "; ".join(str(error) for error in errors)
    _set_condition(rsp, conditions.Status("False", reason, summary))


def _set_condition(rsp: fnv1.RunFunctionResponse, status: conditions.Status) -> None:
    response.set_conditions(
        rsp,
        resource.Condition(
            typ=conditions.CONDITION_TYPE,
            status=status.status,
            reason=status.reason,
            message=status.message,
        ),
    )

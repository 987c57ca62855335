"""The gRPC FunctionRunner: one RunFunction call, start to finish.

Owns: the order of the steps (parse and check the input and the XR, choose
between composing the Deployment and patching the one an earlier step
composed, apply the state mounts, report warnings and StateProxyReady) and
the guarantee that a call never raises: every problem becomes a fatal
result Crossplane shows on the XR.

Must not: contain the rules or the builders themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from crossplane.function import logging, resource, response
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1

from . import builders, conditions, validation
from .models import ActorSpec, FunctionInput
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
    target = settings.deployment_resource_name
    composes = target not in req.desired.resources
    spec, errors = validation.parse(ActorSpec, xr.get("spec") or {}, "spec")
    if spec is not None:
        xr_name = str((xr.get("metadata") or {}).get("name", ""))
        errors.extend(
            validation.validate_actor(xr_name, spec, settings, composes_deployment=composes)
        )
    if spec is None or errors:
        _fail(rsp, "InvalidSpec", errors)
        return

    deployment = (
        builders.minimal_deployment(xr, spec, settings)
        if composes
        else to_dict(req.desired.resources[target].resource)
    )
    try:
        patched = builders.apply(deployment, spec, settings)
    except builders.PatchError as exc:
        _fail(rsp, "CannotPatch", [f"desired resource {target!r}: {exc}"])
        return
    rsp.desired.resources[target].resource.CopyFrom(to_struct(patched))

    observed = (
        to_dict(req.observed.resources[target].resource)
        if target in req.observed.resources
        else None
    )
    if composes:
        # Readiness of resources the function composes is the function's to report.
        available = conditions.deployment_available(observed)
        rsp.desired.resources[target].ready = fnv1.READY_TRUE if available else fnv1.READY_FALSE

    for warning in conditions.warnings(spec, settings, _replicas(spec, patched)):
        response.warning(rsp, warning)
    status = conditions.state_proxy_status(spec, observed, settings)
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

"""RunFunction in-process: the table of cases, idempotence, and schema-valid Deployments."""

from __future__ import annotations

import copy

import pytest
from crossplane.function import resource
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from . import seeds
from .cases import CACHE, CASES, EARLIER, SERVICE, Case
from .helpers import actor, assert_valid_kubernetes, mount, request, run


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_run_function(case: Case) -> None:
    out = await run(case.req)
    assert out.fatal == case.want_fatal, case.reason
    assert len(out.warnings) == len(case.want_warnings), f"{case.reason}: {out.warnings}"
    for got, prefix in zip(out.warnings, case.want_warnings):
        assert got.startswith(prefix), f"{case.reason}: {got!r} should start with {prefix!r}"
    if case.want_condition is not None:
        assert out.condition is not None, case.reason
        assert out.condition[:2] == case.want_condition, f"{case.reason}: {out.condition}"
    if case.want_ready is not None:
        assert out.ready["deployment"] == case.want_ready, case.reason
    if case.check is not None:
        case.check(out)
    for name, composed in out.resources.items():
        if composed.get("kind") == "Object":
            composed = composed["spec"]["forProvider"]["manifest"]
        if composed.get("kind") == "Deployment":
            assert_valid_kubernetes(composed, f"{case.reason} ({name})")


IDEMPOTENCE = [
    pytest.param(
        request(actor(CACHE, mount("w", "/state/w", type="s3-buffered-cas"))), id="composed"
    ),
    pytest.param(
        request(actor(CACHE), desired={"deployment": EARLIER, "service": SERVICE}), id="patched"
    ),
    pytest.param(
        request(
            seeds.as_claimed(seeds.load(seeds.STATE_PROXY_PAGE)),
            desired={"deployment": seeds.upstream_deployment(seeds.load(seeds.STATE_PROXY_PAGE))},
        ),
        id="upstream-object",
    ),
    pytest.param(
        request(actor(stateProxy={"backend": "s3", "bucket": "b"})),
        id="shorthand",
    ),
]


@pytest.mark.parametrize("req", IDEMPOTENCE)
async def test_running_twice_equals_running_once(req: fnv1.RunFunctionRequest) -> None:
    first = await run(req)
    again = copy.deepcopy(req)
    again.desired.CopyFrom(first.response.desired)
    second = await run(again)
    assert second.resources == first.resources, "a second pass adds no sidecar, env or volume twice"
    pod = second.pod
    assert len({c["name"] for c in pod["initContainers"]}) == len(pod["initContainers"])
    assert len({v["name"] for v in pod["volumes"]}) == len(pod["volumes"])
    runtime = second.container()
    assert len({e["name"] for e in runtime["env"]}) == len(runtime["env"])
    python_path = next(e["value"] for e in runtime["env"] if e["name"] == "PYTHONPATH")
    assert python_path.split(":").count("/opt/asya/state-runtime") == 1


async def test_changed_entry_replaces_its_sidecar() -> None:
    first = await run(request(actor(mount("cache", "/state/cache", type="redis-buffered-cas"))))
    changed = request(
        actor(
            mount(
                "cache",
                "/state/cache",
                type="redis-buffered-cas",
                env=[{"name": "A", "value": "1"}],
            )
        )
    )
    changed.desired.CopyFrom(first.response.desired)
    out = await run(changed)
    assert [c["name"] for c in out.pod["initContainers"]] == [
        "asya-state-runtime-library",
        "asya-state-cache",
    ]
    assert out.sidecar("cache")["env"][-2] == {"name": "A", "value": "1"}


async def test_never_raises_on_a_malformed_composite() -> None:
    req = request(actor(CACHE))
    req.observed.composite.resource.CopyFrom(resource.dict_to_struct({"spec": "not an object"}))
    out = await run(req)
    assert out.fatal, "a spec that is not an object is a fatal result, not an exception"
    assert out.fatal[0].startswith("spec: ")


async def test_an_internal_error_becomes_a_fatal_result(monkeypatch: pytest.MonkeyPatch) -> None:
    from asya_state_function import builders

    def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(builders, "apply", broken)
    out = await run(request(actor(CACHE)))
    assert out.fatal == ["asya-state function: internal error: RuntimeError('boom')"]

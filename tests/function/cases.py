"""The RunFunction table: each case a request, what a user relies on, and the reason it matters.

Shared by the in-process tests and the gRPC tests, which must agree exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from asya_state_function.sidecars import HEALTH_CHECK

from . import seeds
from .helpers import TAG, Outcome, actor, deployment, mount, request, wrapped, xr


@dataclass(frozen=True)
class Case:
    id: str
    reason: str
    req: fnv1.RunFunctionRequest
    want_fatal: list[str] = field(default_factory=list)
    want_warnings: list[str] = field(default_factory=list)  # message prefixes, in order
    want_condition: tuple[str, str] | None = None
    want_ready: int | None = None
    check: Callable[[Outcome], None] | None = None


LIB = "/opt/asya/state-runtime"
SOCKETS = "/var/run/asya/state"
REGISTRY = "docker.io/asya"
RUNTIME = {"name": "asya-runtime", "image": "registry.example.com/agents/a:1"}
HARDENED = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
FOREIGN = "is not from the connector catalog"


def _check(socket: str, wait: int, route: str = "/v1/health") -> list[str]:
    return ["python3", "-I", "-S", "-c", HEALTH_CHECK, socket, str(wait), route]


# -- the seeds' YAML, verbatim -------------------------------------------------


def _virtual_actors(out: Outcome) -> None:
    side = out.sidecar("state")
    assert side["image"] == f"{REGISTRY}/asya-state-proxy-s3-buffered-lww:{TAG}"
    assert side["env"] == [
        {"name": "CONNECTOR_SOCKET", "value": f"{SOCKETS}/state.sock"},
        {"name": "STATE_BUCKET", "value": "asya-actor-state"},
        {"name": "STATE_PREFIX", "value": "default/chat-agent/"},
    ], "the bucket becomes STATE_BUCKET and keys live under <namespace>/<actor>/"
    runtime = out.container()
    assert out.env(runtime)["ASYA_STATE_PROXY_MOUNTS"] == "state:/state:write=buffered"
    assert out.env(runtime)["ASYA_HANDLER"] == "agent.process"
    assert runtime["image"] == "my-chat-agent:latest"
    assert out.deployment["metadata"]["name"] == "chat-agent"


def _seed_after_upstream(out: Outcome) -> None:
    composed = out.resources["deployment"]
    assert composed["kind"] == "Object", "the Object stays an Object; only its manifest changes"
    assert composed["spec"]["providerConfigRef"] == {"name": "kubernetes-provider"}
    assert composed["spec"]["watch"] is True
    pod = out.pod
    assert [c["name"] for c in pod["containers"]] == ["asya-runtime", "asya-sidecar"], (
        "upstream's own connector container for the mount is replaced by the native sidecar"
    )
    assert [c["name"] for c in pod["initContainers"]] == [
        "asya-state-runtime-library",
        "asya-state-weights",
    ]
    side = out.sidecar("weights")
    assert side["image"] == "ghcr.io/deliveryhero/asya-state-proxy-s3-buffered-lww:v1.0.0"
    assert not {"lifecycle", "livenessProbe", "readinessProbe"} & set(side), (
        "an image outside the catalog gets no hook or probe that assumes our protocol"
    )
    assert {"name": "STATE_PREFIX", "value": "prod/model-inference/"} in side["env"]
    assert {v["name"] for v in pod["volumes"]} == {
        "socket-dir",
        "tmp",
        "asya-runtime",
        "asya-state-sockets",
        "asya-state-runtime",
        "asya-state-mounts",
        "asya-state-weights-tmp",
    }, "upstream's state-sockets volume went with its connector container"
    runtime = out.container()
    assert runtime["command"] == ["python3", "/opt/asya/asya_runtime.py"]
    assert out.env(runtime)["ASYA_SOCKET_DIR"] == "/var/run/asya", "upstream's env is kept"
    assert out.env(runtime)["PYTHONPATH"] == LIB
    mounts = {m["mountPath"]: m["name"] for m in runtime["volumeMounts"]}
    assert mounts[SOCKETS] == "asya-state-sockets"
    assert mounts["/opt/asya/asya_runtime.py"] == "asya-runtime"


def _multiple_seed_mounts(out: Outcome) -> None:
    assert [c["name"] for c in out.pod["containers"]] == ["asya-runtime", "asya-sidecar"]
    assert [c["name"] for c in out.pod["initContainers"]][1:] == [
        "asya-state-weights",
        "asya-state-cache",
    ]


# -- the shorthand -------------------------------------------------------------


def _shorthand(connector: str, *env: dict[str, str]) -> Callable[[Outcome], None]:
    def check(out: Outcome) -> None:
        side = out.sidecar("state")
        assert side["image"] == f"{REGISTRY}/asya-state-proxy-{connector}:{TAG}"
        assert side["env"][1:] == list(env)

    return check


def _shorthand_secret(out: Outcome) -> None:
    side = out.sidecar("state")
    assert side["env"][1:] == [
        {"name": "REDIS_URL", "valueFrom": {"secretKeyRef": {"name": "redis", "key": "url"}}},
        {"name": "STATE_PREFIX", "value": "shared"},
    ], "an explicit STATE_PREFIX replaces the default"
    assert side["resources"] == {"requests": {"cpu": "20m"}}
    assert out.volume("asya-state-state-tmp") == {
        "name": "asya-state-state-tmp",
        "emptyDir": {"sizeLimit": "2Gi"},
    }
    assert out.env(out.container())["ASYA_STATE_PROXY_MOUNTS"] == "state:/state:write=passthrough"


# -- the pod the function builds ----------------------------------------------


def _composed_pod(out: Outcome) -> None:
    side = out.sidecar("weights")
    assert side["image"] == f"{REGISTRY}/asya-state-proxy-s3-buffered-lww:{TAG}"
    assert side["restartPolicy"] == "Always"
    assert "command" not in side, "the image entrypoint runs the connector"
    assert side["env"] == [
        {"name": "CONNECTOR_SOCKET", "value": f"{SOCKETS}/weights.sock"},
        {"name": "STATE_BUCKET", "value": "my-model-weights"},
        {"name": "STATE_PREFIX", "value": "prod/model-inference/"},
    ]
    assert side["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"}}
    assert side["lifecycle"] == {
        "postStart": {"exec": {"command": _check(f"{SOCKETS}/weights.sock", 120)}}
    }, "the handler starts only once the socket answers, with no probe period"
    assert "startupProbe" not in side
    assert "readinessProbe" not in side, "a backend outage does not make the pod unready"
    assert side["livenessProbe"] == {
        "exec": {"command": _check(f"{SOCKETS}/weights.sock", 0)},
        "periodSeconds": 30,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }
    assert side["securityContext"] == HARDENED
    assert side["volumeMounts"] == [
        {"name": "asya-state-sockets", "mountPath": SOCKETS},
        {"name": "asya-state-weights-tmp", "mountPath": "/tmp"},
    ]
    copier = out.pod["initContainers"][0]
    assert copier == {
        "name": "asya-state-runtime-library",
        "image": f"{REGISTRY}/asya-state-proxy-runtime:{TAG}",
        "command": ["cp", "-R", "/opt/asya-state-runtime/.", "/mnt/asya-state-runtime/"],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "volumeMounts": [{"name": "asya-state-runtime", "mountPath": "/mnt/asya-state-runtime"}],
        "securityContext": HARDENED,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }, "the library comes from an image of this release, copied before any sidecar starts"
    runtime = out.container()
    assert out.env(runtime) == {
        "ASYA_HANDLER": "inference.Inference.process",
        "ASYA_STATE_PROXY_MOUNTS": "weights:/state/weights:write=buffered",
        "ASYA_STATE_PROXY_SOCKET_DIR": SOCKETS,
        "PYTHONPATH": LIB,
    }
    assert runtime["volumeMounts"] == [
        {"name": "asya-state-sockets", "mountPath": SOCKETS},
        {"name": "asya-state-runtime", "mountPath": LIB, "readOnly": True},
        {"name": "asya-state-mounts", "mountPath": "/state/weights", "readOnly": True},
    ], "no subPath (upgrades reach new pods); the mount path itself is read-only"
    assert {v["name"]: v for v in out.pod["volumes"]} == {
        "asya-state-sockets": {"name": "asya-state-sockets", "emptyDir": {}},
        "asya-state-runtime": {"name": "asya-state-runtime", "emptyDir": {"sizeLimit": "16Mi"}},
        "asya-state-mounts": {"name": "asya-state-mounts", "emptyDir": {"sizeLimit": "1Mi"}},
        "asya-state-weights-tmp": {
            "name": "asya-state-weights-tmp",
            "emptyDir": {"sizeLimit": "1Gi"},
        },
    }
    assert out.pod["securityContext"] == {"fsGroup": 65532}
    assert out.deployment["metadata"] == {
        "name": "model-inference",
        "namespace": "prod",
        "labels": {"app.kubernetes.io/name": "model-inference", "asya.sh/actor": "model-inference"},
    }
    assert "replicas" not in out.deployment["spec"], "no spec.replicas leaves the count alone"


COMPOSED = xr(
    {
        "actor": "model-inference",
        "image": "registry.example.com/inference/model-inference:1.0.0",
        "handler": "inference.Inference.process",
        "stateProxy": [
            {
                "name": "weights",
                "mount": {"path": "/state/weights"},
                "connector": {
                    "type": "s3-buffered-lww",
                    "env": [{"name": "STATE_BUCKET", "value": "my-model-weights"}],
                    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                },
            }
        ],
    },
    name="model-inference",
    namespace="prod",
)


def _two_mounts(out: Outcome) -> None:
    assert [c["name"] for c in out.pod["initContainers"]] == [
        "asya-state-runtime-library",
        "asya-state-weights",
        "asya-state-cache",
    ]
    assert out.sidecar("cache")["image"] == f"{REGISTRY}/asya-state-proxy-redis-buffered-cas:{TAG}"
    assert out.env(out.container())["ASYA_STATE_PROXY_MOUNTS"] == (
        "weights:/state/weights:write=passthrough;cache:/state/cache:write=buffered"
    )
    assert out.sidecar("cache")["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"memory": "256Mi"},
    }, "an entry without resources gets the input's defaults"
    guards = [m["mountPath"] for m in out.container()["volumeMounts"] if m.get("readOnly")]
    assert guards == [LIB, "/state/weights", "/state/cache"]


def _catalog_input(out: Outcome) -> None:
    assert (
        out.sidecar("a")["image"]
        == "mirror.example.com/team/asya-state-proxy-redis-buffered-cas:2.0.0"
    )
    assert out.sidecar("b")["image"] == "mirror.example.com/pinned/s3@sha256:abc"
    assert "lifecycle" in out.sidecar("b"), "an image of input.catalog.images is the catalog's"
    assert out.pod["initContainers"][0]["image"] == (
        "mirror.example.com/team/asya-state-proxy-runtime:2.0.0"
    )
    assert out.env(out.container())["ASYA_STATE_PROXY_MOUNTS"] == (
        "a:/state/a:write=passthrough;b:/state/b:write=buffered"
    ), "the input's default writeMode applies only where the entry sets none"
    assert out.sidecar("a")["resources"] == {"requests": {"cpu": "10m"}}
    assert out.volume("asya-state-a-tmp")["emptyDir"] == {"sizeLimit": "512Mi"}


def _custom_input(out: Outcome) -> None:
    side = out.sidecar("cache")
    assert side["env"][0] == {"name": "CONNECTOR_SOCKET", "value": "/run/st/cache.sock"}
    assert side["lifecycle"]["postStart"]["exec"]["command"] == _check("/run/st/cache.sock", 30)
    assert side["readinessProbe"]["exec"]["command"] == _check(
        "/run/st/cache.sock", 0, "/v1/ready"
    ), "readiness checks the backend only when the platform engineer opts in"
    assert "livenessProbe" not in side
    runtime = out.container("main")
    env = out.env(runtime)
    assert env["ASYA_STATE_PROXY_SOCKET_DIR"] == "/run/st"
    assert env["PYTHONPATH"] == "/lib/hooks"
    assert {m["mountPath"] for m in runtime["volumeMounts"]} == {"/run/st", "/lib/hooks", "/state"}
    assert out.pod["initContainers"][0]["image"] == "mirror.example.com/hooks:7"
    assert out.pod["imagePullSecrets"] == [{"name": "platform-pull"}]


EARLIER = deployment(
    {"name": "sidecar-proxy", "image": "envoy:1"},
    {
        "name": "asya-runtime",
        "image": "registry.example.com/agents/a:1",
        "env": [
            {"name": "PYTHONPATH", "value": "/app:/vendor"},
            {"name": "LOG_LEVEL", "value": "debug"},
        ],
        "volumeMounts": [{"name": "models", "mountPath": "/models"}],
    },
    initContainers=[{"name": "migrate", "image": "migrate:1"}],
    volumes=[{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}],
    securityContext={"fsGroup": 1000, "runAsNonRoot": True},
    imagePullSecrets=[{"name": "team-pull"}],
)
SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "actor"},
    "spec": {"ports": [{"port": 80}]},
}


def _patched_in_place(out: Outcome) -> None:
    assert out.resources["service"] == SERVICE, "other composed resources stay untouched"
    assert out.deployment["metadata"] == EARLIER["metadata"]
    assert out.deployment["spec"]["replicas"] == 2
    assert out.pod["containers"][0] == {"name": "sidecar-proxy", "image": "envoy:1"}
    runtime = out.container()
    assert runtime["env"][:2] == [
        {"name": "PYTHONPATH", "value": f"{LIB}:/app:/vendor"},
        {"name": "LOG_LEVEL", "value": "debug"},
    ], "existing env keeps its order; the library goes first on PYTHONPATH"
    assert runtime["volumeMounts"][0] == {"name": "models", "mountPath": "/models"}
    assert [c["name"] for c in out.pod["initContainers"]] == [
        "asya-state-runtime-library",
        "migrate",
        "asya-state-cache",
    ]
    assert out.pod["volumes"][0] == {
        "name": "models",
        "persistentVolumeClaim": {"claimName": "models"},
    }
    assert out.pod["securityContext"] == {"fsGroup": 1000, "runAsNonRoot": True}, (
        "an fsGroup set by an earlier step is kept"
    )
    assert out.pod["imagePullSecrets"] == [{"name": "team-pull"}]
    assert "ASYA_HANDLER" not in out.env(runtime), "a patched Deployment gets no handler env"
    assert {"name": "STATE_PREFIX", "value": "agents/actor/"} in out.sidecar("cache")["env"]


def _env_sources(out: Outcome) -> None:
    side = out.sidecar("state")
    assert side["env"] == [
        {"name": "CONNECTOR_SOCKET", "value": f"{SOCKETS}/state.sock"},
        {"name": "REDIS_URL", "valueFrom": {"secretKeyRef": {"name": "redis", "key": "url"}}},
        {
            "name": "STATE_PREFIX",
            "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "prefix", "optional": True}},
        },
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "EMPTY"},
    ]
    assert side["envFrom"] == [
        {"secretRef": {"name": "creds"}},
        {"prefix": "X_", "configMapRef": {"name": "more", "optional": False}},
    ]


def _fs_volume(out: Outcome) -> None:
    side = out.sidecar("files")
    assert side["volumeMounts"][-1] == {
        "name": "asya-state-files-pvc",
        "mountPath": "/data",
        "subPath": "actors/a",
    }
    assert {"name": "asya-state-files-pvc", "persistentVolumeClaim": {"claimName": "shared"}} in (
        out.pod["volumes"]
    )
    assert {"name": "STATE_PREFIX", "value": ""} in side["env"], "an empty prefix is kept as set"


def _metrics_port(out: Outcome) -> None:
    side = out.sidecar("cache")
    assert side["ports"] == [{"name": "m-9100", "containerPort": 9100, "protocol": "TCP"}]
    assert {"name": "METRICS_PORT", "value": "9100"} in side["env"]
    assert "ports" not in out.sidecar("files"), "no port unless asked: no TCP listener"


def _identity(out: Outcome) -> None:
    pod = out.pod
    assert pod["serviceAccountName"] == "agent-s3", "IRSA / Workload Identity for the connectors"
    assert pod["imagePullSecrets"] == [{"name": "actor-pull"}, {"name": "platform-pull"}]


def _no_checks(out: Outcome) -> None:
    assert not {"lifecycle", "livenessProbe", "readinessProbe"} & set(out.sidecar("s"))


def _no_mounts(out: Outcome) -> None:
    assert "initContainers" not in out.pod
    assert out.container()["env"] == [{"name": "ASYA_HANDLER", "value": "agent.process"}]
    assert out.deployment["spec"]["replicas"] == 0


def _untouched(out: Outcome) -> None:
    assert out.deployment == deployment(RUNTIME)


# -- readiness -----------------------------------------------------------------


def _observed(*, generation: int = 3, sidecars: bool = True, **status: Any) -> dict[str, Any]:
    """The cluster's view of the composed Deployment: 2 wanted replicas at ``generation``."""
    base = deployment(RUNTIME)
    pod: dict[str, Any] = {"containers": [RUNTIME]}
    if sidecars:
        pod["initContainers"] = [{"name": "asya-state-cache"}]
    return {
        **base,
        "metadata": {**base["metadata"], "generation": generation},
        "spec": {**base["spec"], "template": {"spec": pod}},
        "status": status,
    }


DONE: dict[str, Any] = {
    "observedGeneration": 3,
    "replicas": 2,
    "updatedReplicas": 2,
    "readyReplicas": 2,
    "availableReplicas": 2,
    "conditions": [
        {"type": "Available", "status": "True"},
        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
    ],
}


def _rollout(**changes: Any) -> dict[str, Any]:
    return {**DONE, **changes}


CACHE = mount("cache", "/state/cache")
SCALED = actor(CACHE, replicas=2)


def _readiness(
    case_id: str,
    reason: str,
    observed: dict[str, Any] | None,
    condition: tuple[str, str],
    ready: int,
) -> Case:
    return Case(
        id=case_id,
        reason=reason,
        req=request(SCALED, observed={"deployment": observed} if observed else None),
        want_condition=condition,
        want_ready=ready,
    )


READINESS = [
    _readiness(
        "rolled-out",
        "every pod updated and available at the observed generation: ready",
        _observed(**DONE),
        ("True", "Available"),
        fnv1.READY_TRUE,
    ),
    _readiness(
        "not-observed",
        "a Deployment not created yet is not ready",
        None,
        ("False", "Creating"),
        fnv1.READY_FALSE,
    ),
    _readiness(
        "status-of-an-older-generation",
        "a status the controller wrote for the previous spec says nothing about this one",
        _observed(generation=4, **DONE),
        ("False", "RollingOut"),
        fnv1.READY_FALSE,
    ),
    _readiness(
        "new-pod-not-updated",
        "one of two pods still runs the old template",
        _observed(**_rollout(updatedReplicas=1, replicas=2)),
        ("False", "RollingOut"),
        fnv1.READY_FALSE,
    ),
    _readiness(
        "old-pods-still-present",
        "both new pods exist but an old one has not terminated: two templates serve at once",
        _observed(**_rollout(replicas=3)),
        ("False", "RollingOut"),
        fnv1.READY_FALSE,
    ),
    _readiness(
        "new-pod-not-available",
        "a new pod exists but has not become available",
        _observed(**_rollout(availableReplicas=1)),
        ("False", "Unavailable"),
        fnv1.READY_FALSE,
    ),
    _readiness(
        "available-condition-false",
        "counts look complete but the controller says the Deployment is unavailable",
        _observed(**_rollout(conditions=[{"type": "Available", "status": "False"}])),
        ("False", "Unavailable"),
        fnv1.READY_FALSE,
    ),
    _readiness(
        "progress-deadline-exceeded",
        "a rollout the controller gave up on is reported, not waited for silently",
        _observed(
            **_rollout(
                updatedReplicas=1,
                conditions=[
                    {"type": "Available", "status": "True"},
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": 'ReplicaSet "a-5d4" has timed out progressing.',
                    },
                ],
            )
        ),
        ("False", "Unavailable"),
        fnv1.READY_FALSE,
    ),
    _readiness(
        "template-without-sidecars",
        "an available Deployment still on a template without the sidecars is not ready for state",
        _observed(sidecars=False, **DONE),
        ("False", "RollingOut"),
        fnv1.READY_FALSE,
    ),
]


def _object_status(manifest: dict[str, Any] | None) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": "True"}]}
    if manifest is not None:
        status["atProvider"] = {"manifest": manifest}
    return status


UPSTREAM_SEED = seeds.load(seeds.STATE_PROXY_PAGE)
UPSTREAM_DESIRED = seeds.upstream_deployment(UPSTREAM_SEED)


def _wrapped_observed(**status: Any) -> dict[str, Any]:
    manifest = UPSTREAM_DESIRED["spec"]["forProvider"]["manifest"]
    observed_manifest = {
        **manifest,
        "metadata": {**manifest["metadata"], "generation": 2},
        "spec": {
            **manifest["spec"],
            "template": {"spec": {"initContainers": [{"name": "asya-state-weights"}]}},
        },
        "status": status,
    }
    return wrapped(manifest, **_object_status(observed_manifest))


CASES: list[Case] = [
    # The seeds, verbatim.
    Case(
        id="seed-virtual-actors-shorthand",
        reason="the Virtual Actors page's {backend: s3, bucket, consistency: lww} is one mount at /state",
        req=request(
            {
                **seeds.load(seeds.VIRTUAL_ACTORS),
                "metadata": {"name": "chat-agent", "namespace": "default"},
            }
        ),
        want_condition=("False", "Creating"),
        want_ready=fnv1.READY_FALSE,
        check=_virtual_actors,
    ),
    Case(
        id="seed-state-proxy-page-after-upstream",
        reason="the documented list form without image or handler patches upstream's Object-wrapped Deployment",
        req=request(
            seeds.as_claimed(UPSTREAM_SEED),
            desired={"deployment": UPSTREAM_DESIRED},
        ),
        want_warnings=[
            f"spec.stateProxy[0].connector.image: ghcr.io/deliveryhero/asya-state-proxy-s3-buffered-lww:v1.0.0 {FOREIGN}"
        ],
        want_condition=("False", "Creating"),
        want_ready=fnv1.READY_UNSPECIFIED,
        check=_seed_after_upstream,
    ),
    Case(
        id="seed-connectors-page-after-upstream",
        reason="the connectors page's actor (no namespace) patches upstream's Object too",
        req=request(
            seeds.as_claimed(seeds.load(seeds.CONNECTORS_PAGE), namespace="agents"),
            desired={
                "deployment": seeds.upstream_deployment(seeds.load(seeds.CONNECTORS_PAGE), "agents")
            },
        ),
        want_warnings=[
            f"spec.stateProxy[0].connector.image: ghcr.io/deliveryhero/asya-state-proxy-s3-buffered-lww:v1.0.0 {FOREIGN}"
        ],
        check=lambda out: out.sidecar("weights"),
    ),
    Case(
        id="seed-multiple-mounts-after-upstream",
        reason="the usage page's S3 + Redis mounts replace upstream's two connector containers",
        req=request(
            seeds.as_claimed(seeds.with_state_proxy(seeds.MULTIPLE_MOUNTS, "multi")),
            desired={
                "deployment": seeds.upstream_deployment(
                    seeds.with_state_proxy(seeds.MULTIPLE_MOUNTS, "multi")
                )
            },
        ),
        want_warnings=[
            f"spec.stateProxy[0].connector.image: ghcr.io/deliveryhero/asya-state-proxy-s3-buffered-lww:v1.0.0 {FOREIGN}",
            f"spec.stateProxy[1].connector.image: ghcr.io/deliveryhero/asya-state-proxy-redis-buffered-cas:v1.0.0 {FOREIGN}",
        ],
        check=_multiple_seed_mounts,
    ),
    Case(
        id="seed-passthrough-after-upstream",
        reason="the usage page's passthrough mount renders after upstream's step",
        req=request(
            seeds.as_claimed(seeds.with_state_proxy(seeds.PASSTHROUGH, "publisher")),
            desired={
                "deployment": seeds.upstream_deployment(
                    seeds.with_state_proxy(seeds.PASSTHROUGH, "publisher")
                )
            },
        ),
        want_warnings=[
            f"spec.stateProxy[0].connector.image: ghcr.io/deliveryhero/asya-state-proxy-s3-passthrough:v1.0.0 {FOREIGN}"
        ],
        check=lambda out: out.sidecar("weights"),
    ),
    # The shorthand, per backend.
    Case(
        id="shorthand-s3-cas-by-default",
        reason="without consistency the shorthand is compare-and-swap, the safe choice for replicas",
        req=request(actor(stateProxy={"backend": "s3", "bucket": "b"})),
        check=_shorthand(
            "s3-buffered-cas",
            {"name": "STATE_BUCKET", "value": "b"},
            {"name": "STATE_PREFIX", "value": "agents/actor/"},
        ),
    ),
    Case(
        id="shorthand-s3-lww-passthrough-endpoint",
        reason="lww streaming to S3 is s3-passthrough; url is the S3-compatible endpoint",
        req=request(
            actor(
                stateProxy={
                    "backend": "s3",
                    "bucket": "b",
                    "url": "http://minio:9000",
                    "consistency": "lww",
                    "writeMode": "passthrough",
                }
            )
        ),
        check=_shorthand(
            "s3-passthrough",
            {"name": "STATE_BUCKET", "value": "b"},
            {"name": "AWS_ENDPOINT_URL", "value": "http://minio:9000"},
            {"name": "STATE_PREFIX", "value": "agents/actor/"},
        ),
    ),
    Case(
        id="shorthand-gcs-lww",
        reason="gcs with lww is gcs-buffered-lww on the bucket",
        req=request(actor(stateProxy={"backend": "gcs", "bucket": "g", "consistency": "lww"})),
        check=_shorthand(
            "gcs-buffered-lww",
            {"name": "STATE_BUCKET", "value": "g"},
            {"name": "STATE_PREFIX", "value": "agents/actor/"},
        ),
    ),
    Case(
        id="shorthand-redis-url",
        reason="redis takes its URL",
        req=request(actor(stateProxy={"backend": "redis", "url": "redis://redis:6379/0"})),
        check=_shorthand(
            "redis-buffered-cas",
            {"name": "REDIS_URL", "value": "redis://redis:6379/0"},
            {"name": "STATE_PREFIX", "value": "agents/actor/"},
        ),
    ),
    Case(
        id="shorthand-nats-kv-bucket-and-url",
        reason="NATS KV takes the server URL and the KV bucket",
        req=request(
            actor(
                stateProxy={
                    "backend": "nats-kv",
                    "url": "nats://nats:4222",
                    "bucket": "actors",
                    "consistency": "cas",
                }
            )
        ),
        check=_shorthand(
            "nats-kv-buffered-cas",
            {"name": "NATS_KV_BUCKET", "value": "actors"},
            {"name": "NATS_URL", "value": "nats://nats:4222"},
            {"name": "STATE_PREFIX", "value": "agents/actor/"},
        ),
    ),
    Case(
        id="shorthand-secret-prefix-resources",
        reason="the shorthand takes env from Secrets instead of url, an explicit prefix, resources and a spill limit",
        req=request(
            actor(
                stateProxy={
                    "backend": "redis",
                    "writeMode": "passthrough",
                    "env": [
                        {
                            "name": "REDIS_URL",
                            "valueFrom": {"secretKeyRef": {"name": "redis", "key": "url"}},
                        },
                        {"name": "STATE_PREFIX", "value": "shared"},
                    ],
                    "resources": {"requests": {"cpu": "20m"}},
                    "spillSizeLimit": "2Gi",
                }
            )
        ),
        want_warnings=["spec.stateProxy.writeMode: passthrough into redis-buffered-cas"],
        check=_shorthand_secret,
    ),
    Case(
        id="shorthand-lww-with-replicas-warns-at-consistency",
        reason="the warning names the field the user wrote: consistency",
        req=request(
            actor(stateProxy={"backend": "gcs", "bucket": "g", "consistency": "lww"}, replicas=3)
        ),
        want_warnings=[
            "spec.stateProxy.consistency: gcs-buffered-lww is last-writer-wins and the actor runs 3 replicas"
        ],
    ),
    # The pod.
    Case(
        id="composed-pod",
        reason="alone, the function composes a Deployment with hardened native sidecars, the library and the guards",
        req=request(COMPOSED),
        want_condition=("False", "Creating"),
        want_ready=fnv1.READY_FALSE,
        check=_composed_pod,
    ),
    Case(
        id="two-mounts-type-and-image",
        reason="each entry gets its own sidecar, in order; connector.type resolves through the default catalog",
        req=request(
            actor(
                {
                    **mount(
                        "weights",
                        "/state/weights",
                        image=f"{REGISTRY}/asya-state-proxy-s3-passthrough:1",
                    ),
                    "writeMode": "passthrough",
                },
                CACHE,
            )
        ),
        want_condition=("False", "Creating"),
        check=_two_mounts,
    ),
    Case(
        id="catalog-and-defaults-from-input",
        reason="the input's registry, tag, per-name images and defaults are what the catalog and entries use",
        req=request(
            actor(
                {
                    **mount("a", "/state/a"),
                    "connector": {
                        "type": "redis-buffered-cas",
                        "resources": {"requests": {"cpu": "10m"}},
                    },
                },
                {
                    **mount("b", "/state/b", image="mirror.example.com/pinned/s3@sha256:abc"),
                    "writeMode": "buffered",
                },
            ),
            function_input={
                "apiVersion": "stateproxy.fn.asya.sh/v1beta1",
                "kind": "Input",
                "catalog": {
                    "registry": "mirror.example.com/team/",
                    "tag": "2.0.0",
                    "images": {"s3-buffered-lww": "mirror.example.com/pinned/s3@sha256:abc"},
                },
                "defaults": {"writeMode": "passthrough", "spillSizeLimit": "512Mi"},
            },
        ),
        want_warnings=["spec.stateProxy[0].writeMode: passthrough into redis-buffered-cas"],
        check=_catalog_input,
    ),
    Case(
        id="custom-input",
        reason="socket dir, library, container name, probes and pull secrets come from the input",
        req=request(
            actor(mount("cache", "/state")),
            function_input={
                "socketDir": "/run/st",
                "runtimeContainerName": "main",
                "runtimeLibrary": {
                    "image": "mirror.example.com/hooks:7",
                    "mountPath": "/lib/hooks",
                },
                "probes": {
                    "startupTimeoutSeconds": 30,
                    "livenessPeriodSeconds": 0,
                    "readiness": "backend",
                },
                "imagePullSecrets": [{"name": "platform-pull"}],
            },
        ),
        check=_custom_input,
    ),
    Case(
        id="patch-earlier-deployment",
        reason="a Deployment from an earlier step is patched in place: its containers, env, volumes and other resources survive",
        req=request(actor(CACHE), desired={"deployment": EARLIER, "service": SERVICE}),
        want_condition=("False", "Creating"),
        want_ready=fnv1.READY_UNSPECIFIED,
        check=_patched_in_place,
    ),
    Case(
        id="env-sources",
        reason="connector env takes values, secretKeyRef, configMapKeyRef, fieldRef and envFrom, after CONNECTOR_SOCKET",
        req=request(
            actor(
                mount(
                    "state",
                    "/state",
                    type="redis-buffered-cas",
                    env=[
                        {
                            "name": "REDIS_URL",
                            "valueFrom": {"secretKeyRef": {"name": "redis", "key": "url"}},
                        },
                        {
                            "name": "STATE_PREFIX",
                            "valueFrom": {
                                "configMapKeyRef": {
                                    "name": "cfg",
                                    "key": "prefix",
                                    "optional": True,
                                }
                            },
                        },
                        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "EMPTY"},
                    ],
                    envFrom=[
                        {"secretRef": {"name": "creds"}},
                        {"prefix": "X_", "configMapRef": {"name": "more", "optional": False}},
                    ],
                )
            )
        ),
        check=_env_sources,
    ),
    Case(
        id="fs-volume",
        reason="an fs connector gets its PersistentVolumeClaim mounted where STATE_DIR points",
        req=request(
            actor(
                mount(
                    "files",
                    "/state/files",
                    type="fs-buffered-cas",
                    env=[
                        {"name": "STATE_DIR", "value": "/data"},
                        {"name": "STATE_PREFIX", "value": ""},
                    ],
                    volume={"claimName": "shared", "mountPath": "/data", "subPath": "actors/a"},
                )
            )
        ),
        check=_fs_volume,
    ),
    Case(
        id="metrics-port",
        reason="a metrics port is declared on the sidecar and handed to the connector; others open none",
        req=request(
            actor(
                mount("cache", "/state/cache", type="redis-buffered-cas", metricsPort=9100),
                mount("files", "/state/files", type="redis-buffered-cas"),
            )
        ),
        check=_metrics_port,
    ),
    Case(
        id="service-account-and-pull-secrets",
        reason="connectors reach S3/GCS through the pod's identity; private images need pull secrets",
        req=request(
            actor(CACHE, serviceAccountName="agent-s3", imagePullSecrets=[{"name": "actor-pull"}]),
            function_input={"imagePullSecrets": [{"name": "platform-pull"}]},
        ),
        check=_identity,
    ),
    Case(
        id="no-mounts-composes-plain-deployment",
        reason="an actor without stateProxy still gets its Deployment, with nothing added",
        req=request(actor(replicas=0)),
        want_condition=("True", "NoMounts"),
        check=_no_mounts,
    ),
    Case(
        id="no-mounts-leaves-earlier-deployment",
        reason="without stateProxy the function changes nothing an earlier step composed",
        req=request(actor(), desired={"deployment": deployment(RUNTIME)}),
        want_condition=("True", "NoMounts"),
        check=_untouched,
    ),
    *READINESS,
    Case(
        id="wrapped-observed-rolled-out",
        reason="an Object reports its Deployment under status.atProvider.manifest; that rollout decides",
        req=request(
            seeds.as_claimed(UPSTREAM_SEED),
            desired={"deployment": UPSTREAM_DESIRED},
            observed={
                "deployment": _wrapped_observed(
                    **{
                        **DONE,
                        "observedGeneration": 2,
                        "replicas": 1,
                        "updatedReplicas": 1,
                        "availableReplicas": 1,
                    }
                )
            },
        ),
        want_warnings=[
            f"spec.stateProxy[0].connector.image: ghcr.io/deliveryhero/asya-state-proxy-s3-buffered-lww:v1.0.0 {FOREIGN}"
        ],
        want_condition=("True", "Available"),
    ),
    Case(
        id="wrapped-observed-mid-rollout",
        reason="the Object itself is Ready as soon as it is applied; the Deployment inside may still be rolling out",
        req=request(
            seeds.as_claimed(UPSTREAM_SEED),
            desired={"deployment": UPSTREAM_DESIRED},
            observed={
                "deployment": _wrapped_observed(
                    **{
                        **DONE,
                        "observedGeneration": 2,
                        "replicas": 2,
                        "updatedReplicas": 1,
                        "availableReplicas": 1,
                    }
                )
            },
        ),
        want_warnings=[
            f"spec.stateProxy[0].connector.image: ghcr.io/deliveryhero/asya-state-proxy-s3-buffered-lww:v1.0.0 {FOREIGN}"
        ],
        want_condition=("False", "RollingOut"),
    ),
    Case(
        id="wrapped-not-reported-yet",
        reason="an Object whose provider has not reported the manifest yet is still being created",
        req=request(
            seeds.as_claimed(UPSTREAM_SEED),
            desired={"deployment": UPSTREAM_DESIRED},
            observed={
                "deployment": wrapped(
                    UPSTREAM_DESIRED["spec"]["forProvider"]["manifest"], **_object_status(None)
                )
            },
        ),
        want_warnings=[
            f"spec.stateProxy[0].connector.image: ghcr.io/deliveryhero/asya-state-proxy-s3-buffered-lww:v1.0.0 {FOREIGN}"
        ],
        want_condition=("False", "Creating"),
    ),
    # Warnings.
    Case(
        id="lww-with-replicas-warns",
        reason="last-writer-wins with several replicas loses updates silently; the user is told",
        req=request(actor(mount("s", "/state", type="s3-buffered-lww"), replicas=3)),
        want_warnings=[
            "spec.stateProxy[0].connector: s3-buffered-lww is last-writer-wins and the actor runs 3 replicas"
        ],
    ),
    Case(
        id="lww-replicas-from-earlier-deployment",
        reason="without spec.replicas the earlier Deployment's replica count decides the LWW warning",
        req=request(
            actor(mount("s", "/state", image=f"{REGISTRY}/asya-state-proxy-gcs-buffered-lww:1")),
            desired={"deployment": deployment(RUNTIME)},
        ),
        want_warnings=[
            "spec.stateProxy[0].connector: gcs-buffered-lww is last-writer-wins and the actor runs 2 replicas"
        ],
    ),
    Case(
        id="cas-with-replicas-is-quiet",
        reason="compare-and-swap with replicas is the recommended setup: no warning",
        req=request(actor(mount("s", "/state", type="s3-buffered-cas"), replicas=3)),
    ),
    Case(
        id="foreign-image-warns",
        reason="an image outside the catalog may speak another protocol; the sidecar gets no hook or probes",
        req=request(actor(mount("s", "/state", image="registry.example.com/own/connector:1"))),
        want_warnings=[
            f"spec.stateProxy[0].connector.image: registry.example.com/own/connector:1 {FOREIGN}"
        ],
        check=_no_checks,
    ),
    Case(
        id="passthrough-cas-and-memory-warn",
        reason="passthrough into a CAS connector and the memory connector are risky choices worth a warning",
        req=request(
            actor(
                {**mount("a", "/state/a", type="nats-kv-buffered-cas"), "writeMode": "passthrough"},
                mount("b", "/state/b", type="memory"),
            )
        ),
        want_warnings=[
            "spec.stateProxy[0].writeMode: passthrough into nats-kv-buffered-cas",
            "spec.stateProxy[1].connector: memory keeps state only while the sidecar runs",
        ],
    ),
    # Errors.
    Case(
        id="invalid-spec-is-fatal",
        reason="an invalid entry is a fatal result naming the field, and nothing is composed",
        req=request(actor(mount("cache", "state/cache"))),
        want_fatal=[
            "spec.stateProxy[0].mount.path: must be an absolute path like /state/cache, got 'state/cache'"
        ],
        want_condition=("False", "InvalidSpec"),
        check=lambda out: _assert_nothing_composed(out),
    ),
    Case(
        id="invalid-input-is-fatal",
        reason="a bad function input is reported under input.*",
        req=request(actor(CACHE), function_input={"socketDir": "relative"}),
        want_fatal=["input.socketDir: must be an absolute path like /state/cache, got 'relative'"],
        want_condition=("False", "InvalidInput"),
    ),
    Case(
        id="missing-runtime-container-is-fatal",
        reason="patching a Deployment without the runtime container says what it looked for, where, and what it found",
        req=request(
            actor(CACHE), desired={"deployment": deployment({"name": "main", "image": "x:1"})}
        ),
        want_fatal=[
            "desired resource 'deployment': no container named 'asya-runtime' in "
            "spec.template.spec.containers (found: main); set input.runtimeContainerName to "
            "the container that runs the handler"
        ],
        want_condition=("False", "CannotPatch"),
    ),
    Case(
        id="missing-runtime-container-in-object-is-fatal",
        reason="inside an Object the message gives the path through spec.forProvider.manifest",
        req=request(
            actor(CACHE),
            desired={"deployment": wrapped(deployment({"name": "main", "image": "x:1"}))},
        ),
        want_fatal=[
            "desired resource 'deployment': no container named 'asya-runtime' in "
            "spec.forProvider.manifest.spec.template.spec.containers (found: main); set "
            "input.runtimeContainerName to the container that runs the handler"
        ],
        want_condition=("False", "CannotPatch"),
    ),
    Case(
        id="target-not-a-deployment-is-fatal",
        reason="a resource under the target name that holds no Deployment is named, with what the function patches",
        req=request(actor(CACHE), desired={"deployment": SERVICE}),
        want_fatal=[
            "desired resource 'deployment': it is a v1 Service 'actor'; the function patches an "
            "apps/v1 Deployment, or a provider-kubernetes Object whose spec.forProvider.manifest is one"
        ],
        want_condition=("False", "CannotPatch"),
    ),
    Case(
        id="object-wrapping-a-statefulset-is-fatal",
        reason="an Object around another kind is named with what it wraps",
        req=request(
            actor(CACHE),
            desired={
                "deployment": wrapped(
                    {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"}}
                )
            },
        ),
        want_fatal=[
            "desired resource 'deployment': it is a provider-kubernetes Object wrapping apps/v1 "
            "StatefulSet 'db'; the function patches an apps/v1 Deployment, or a "
            "provider-kubernetes Object whose spec.forProvider.manifest is one"
        ],
        want_condition=("False", "CannotPatch"),
    ),
    Case(
        id="volume-at-mount-path-is-fatal",
        reason="a volume the runtime already mounts at a state mount path would hide the state",
        req=request(
            actor(CACHE),
            desired={
                "deployment": deployment(
                    {**RUNTIME, "volumeMounts": [{"name": "cache", "mountPath": "/state/cache"}]}
                )
            },
        ),
        want_fatal=[
            "desired resource 'deployment': spec.template.spec.containers[asya-runtime]: the "
            "container already mounts volume 'cache' at /state/cache, the path of state mount "
            "'cache'; a state mount path must not be a volume"
        ],
        want_condition=("False", "CannotPatch"),
    ),
]


def _assert_nothing_composed(out: Outcome) -> None:
    assert out.resources == {}

"""The RunFunction table: each case a request, what a user relies on, and the reason it matters.

Shared by the in-process tests and the gRPC tests, which must agree exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from .helpers import TAG, Outcome, actor, deployment, mount, request, xr


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
RUNTIME = {"name": "asya-runtime", "image": "registry.example.com/agents/a:1"}


def _seed_single_mount(out: Outcome) -> None:
    side = out.sidecar("weights")
    assert side["image"] == "registry.example.com/asya/asya-state-proxy-s3-buffered-lww:v1.0.0"
    assert side["restartPolicy"] == "Always"
    assert "command" not in side, "the image entrypoint runs the connector"
    assert "args" not in side
    assert side["env"] == [
        {"name": "CONNECTOR_SOCKET", "value": f"{SOCKETS}/weights.sock"},
        {"name": "STATE_BUCKET", "value": "my-model-weights"},
        {"name": "AWS_REGION", "value": "us-east-1"},
    ]
    assert side["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"}}
    assert side["startupProbe"]["exec"]["command"] == [
        "asya-state", "probe", "--socket", f"{SOCKETS}/weights.sock",
    ]  # fmt: skip
    assert side["readinessProbe"]["exec"]["command"][-1] == "--ready"
    assert side["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert side["volumeMounts"] == [
        {"name": "asya-state-sockets", "mountPath": SOCKETS},
        {"name": "asya-state-weights-tmp", "mountPath": "/tmp"},
    ]
    runtime = out.container()
    assert out.env(runtime) == {
        "ASYA_HANDLER": "inference.Inference.process",
        "ASYA_STATE_PROXY_MOUNTS": "weights:/state/weights:write=buffered",
        "ASYA_STATE_PROXY_SOCKET_DIR": SOCKETS,
        "PYTHONPATH": LIB,
    }
    assert runtime["volumeMounts"] == [
        {"name": "asya-state-sockets", "mountPath": SOCKETS},
        {"name": "asya-state-runtime", "mountPath": f"{LIB}/asya_state_runtime", "readOnly": True},
        {
            "name": "asya-state-runtime",
            "mountPath": f"{LIB}/sitecustomize.py",
            "subPath": "sitecustomize.py",
            "readOnly": True,
        },
    ]
    assert {v["name"]: v for v in out.pod["volumes"]} == {
        "asya-state-sockets": {"name": "asya-state-sockets", "emptyDir": {}},
        "asya-state-runtime": {
            "name": "asya-state-runtime",
            "configMap": {"name": "asya-state-runtime", "defaultMode": 0o444},
        },
        "asya-state-weights-tmp": {"name": "asya-state-weights-tmp", "emptyDir": {}},
    }
    assert out.pod["securityContext"] == {"fsGroup": 65532}
    assert out.deployment["metadata"] == {
        "name": "model-inference",
        "namespace": "prod",
        "labels": {"app.kubernetes.io/name": "model-inference", "asya.sh/actor": "model-inference"},
    }
    assert "replicas" not in out.deployment["spec"], "no spec.replicas leaves the count alone"


SEED_SINGLE_MOUNT = xr(
    {
        "actor": "model-inference",
        "image": "registry.example.com/inference/model-inference:1.0.0",
        "handler": "inference.Inference.process",
        "stateProxy": [
            {
                "name": "weights",
                "mount": {"path": "/state/weights"},
                "writeMode": "buffered",
                "connector": {
                    "image": "registry.example.com/asya/asya-state-proxy-s3-buffered-lww:v1.0.0",
                    "env": [
                        {"name": "STATE_BUCKET", "value": "my-model-weights"},
                        {"name": "AWS_REGION", "value": "us-east-1"},
                    ],
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
        "asya-state-weights",
        "asya-state-cache",
    ]
    assert out.sidecar("cache")["image"] == f"asya/asya-state-proxy-redis-buffered-cas:{TAG}"
    assert out.env(out.container())["ASYA_STATE_PROXY_MOUNTS"] == (
        "weights:/state/weights:write=passthrough;cache:/state/cache:write=buffered"
    )
    assert out.sidecar("cache")["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"memory": "256Mi"},
    }, "an entry without resources gets the input's defaults"


def _catalog_input(out: Outcome) -> None:
    assert (
        out.sidecar("a")["image"]
        == "mirror.example.com/team/asya-state-proxy-redis-buffered-cas:2.0.0"
    )
    assert out.sidecar("b")["image"] == "mirror.example.com/pinned/s3@sha256:abc"
    assert out.env(out.container())["ASYA_STATE_PROXY_MOUNTS"] == (
        "a:/state/a:write=passthrough;b:/state/b:write=buffered"
    ), "the input's default writeMode applies only where the entry sets none"
    assert out.sidecar("a")["resources"] == {"requests": {"cpu": "10m"}}


def _custom_dirs(out: Outcome) -> None:
    side = out.sidecar("cache")
    assert side["env"][0] == {"name": "CONNECTOR_SOCKET", "value": "/run/st/cache.sock"}
    assert side["livenessProbe"]["exec"]["command"][-1] == "/run/st/cache.sock"
    runtime = out.container("main")
    env = out.env(runtime)
    assert env["ASYA_STATE_PROXY_SOCKET_DIR"] == "/run/st"
    assert env["PYTHONPATH"] == "/lib/hooks"
    assert {m["mountPath"] for m in runtime["volumeMounts"]} == {
        "/run/st",
        "/lib/hooks/asya_state_runtime",
        "/lib/hooks/sitecustomize.py",
    }
    library = next(v for v in out.pod["volumes"] if v["name"] == "asya-state-runtime")
    assert library["configMap"]["name"] == "hooks"


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
    assert [c["name"] for c in out.pod["initContainers"]] == ["migrate", "asya-state-cache"]
    assert out.pod["volumes"][0] == {
        "name": "models",
        "persistentVolumeClaim": {"claimName": "models"},
    }
    assert out.pod["securityContext"] == {"fsGroup": 1000, "runAsNonRoot": True}, (
        "an fsGroup set by an earlier step is kept"
    )
    assert "ASYA_HANDLER" not in out.env(runtime), "a patched Deployment gets no handler env"


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


def _metrics_port(out: Outcome) -> None:
    side = out.sidecar("cache")
    assert side["ports"] == [{"name": "m-9100", "containerPort": 9100, "protocol": "TCP"}]
    assert {"name": "METRICS_PORT", "value": "9100"} in side["env"]
    assert "ports" not in out.sidecar("files"), "no port unless asked: no TCP listener"


def _no_mounts(out: Outcome) -> None:
    assert "initContainers" not in out.pod
    assert out.container()["env"] == [{"name": "ASYA_HANDLER", "value": "agent.process"}]
    assert out.deployment["spec"]["replicas"] == 0


def _untouched(out: Outcome) -> None:
    assert out.deployment == deployment(RUNTIME)


def _observed(**status: Any) -> dict[str, Any]:
    return {**deployment(RUNTIME), "status": status}


def _rolled_out(base: dict[str, Any]) -> dict[str, Any]:
    """What the cluster reports once the state sidecars run in every pod."""
    observed = {**base}
    observed["spec"] = {**base["spec"], "replicas": 1}
    observed["spec"]["template"] = {
        "spec": {"initContainers": [{"name": "asya-state-cache"}], "containers": [RUNTIME]}
    }
    observed["status"] = {
        "updatedReplicas": 1,
        "conditions": [{"type": "Available", "status": "True"}],
    }
    return observed


CACHE = mount("cache", "/state/cache")

CASES: list[Case] = [
    Case(
        id="seed-single-s3-mount",
        reason="the documented single S3 mount composes a Deployment with one hardened native sidecar",
        req=request(SEED_SINGLE_MOUNT),
        want_condition=("False", "Creating"),
        want_ready=fnv1.READY_FALSE,
        check=_seed_single_mount,
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
                        image="registry.example.com/asya/asya-state-proxy-s3-passthrough:1",
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
                {**mount("b", "/state/b", type="s3-buffered-lww"), "writeMode": "buffered"},
            ),
            function_input={
                "apiVersion": "stateproxy.fn.asya.sh/v1beta1",
                "kind": "Input",
                "catalog": {
                    "registry": "mirror.example.com/team/",
                    "tag": "2.0.0",
                    "images": {"s3-buffered-lww": "mirror.example.com/pinned/s3@sha256:abc"},
                },
                "defaults": {"writeMode": "passthrough"},
            },
        ),
        want_warnings=["spec.stateProxy[0].writeMode: passthrough into redis-buffered-cas"],
        check=_catalog_input,
    ),
    Case(
        id="custom-socket-dir-library-and-container",
        reason="socket dir, library location and runtime container name come from the input",
        req=request(
            actor(CACHE),
            function_input={
                "socketDir": "/run/st",
                "runtimeContainerName": "main",
                "runtimeLibrary": {"configMapName": "hooks", "mountPath": "/lib/hooks"},
            },
        ),
        check=_custom_dirs,
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
        id="seed-as-is-patches-earlier-deployment",
        reason="the documented YAML without spec.image is valid when an earlier step composes the Deployment",
        req=request(
            xr({"actor": "model-inference", "stateProxy": SEED_SINGLE_MOUNT["spec"]["stateProxy"]}),
            desired={"deployment": deployment(RUNTIME)},
        ),
        want_warnings=["spec.stateProxy[0].connector: s3-buffered-lww is last-writer-wins"],
        check=lambda out: out.sidecar("weights"),
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
                    env=[{"name": "STATE_DIR", "value": "/data"}],
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
    Case(
        id="observed-available",
        reason="StateProxyReady is True and the Deployment ready once the sidecars rolled out and it is available",
        req=request(actor(CACHE), observed={"deployment": _rolled_out(deployment(RUNTIME))}),
        want_condition=("True", "Available"),
        want_ready=fnv1.READY_TRUE,
    ),
    Case(
        id="observed-without-sidecars",
        reason="an available Deployment still on the old pod template is not ready for state",
        req=request(
            actor(CACHE),
            observed={
                "deployment": _observed(conditions=[{"type": "Available", "status": "True"}])
            },
        ),
        want_condition=("False", "RollingOut"),
        want_ready=fnv1.READY_TRUE,
    ),
    Case(
        id="observed-unavailable",
        reason="sidecars rolled out but the Deployment unavailable (a connector failing readiness) is reported",
        req=request(
            actor(CACHE),
            observed={
                "deployment": {
                    **_rolled_out(deployment(RUNTIME)),
                    "status": {
                        "updatedReplicas": 1,
                        "conditions": [{"type": "Available", "status": "False"}],
                    },
                }
            },
        ),
        want_condition=("False", "Unavailable"),
        want_ready=fnv1.READY_FALSE,
    ),
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
            actor(
                mount(
                    "s",
                    "/state",
                    image="registry.example.com/x/asya-state-proxy-gcs-buffered-lww:1",
                )
            ),
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
        id="unknown-image-is-quiet",
        reason="a custom connector image is used as written and not second-guessed",
        req=request(
            actor(mount("s", "/state", image="registry.example.com/own/connector:1"), replicas=3)
        ),
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
        reason="patching a Deployment without the runtime container cannot work and says which containers exist",
        req=request(
            actor(CACHE), desired={"deployment": deployment({"name": "main", "image": "x:1"})}
        ),
        want_fatal=[
            "desired resource 'deployment': the Deployment 'deployment' has no container named "
            "'asya-runtime' (containers: main); set input.runtimeContainerName"
        ],
        want_condition=("False", "CannotPatch"),
    ),
]


def _assert_nothing_composed(out: Outcome) -> None:
    assert out.resources == {}

"""Every validation rule: a fatal result with the exact field path and message, nothing composed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from .helpers import actor, deployment, mount, request, run, xr

SOCKET_DIR_90 = "/" + "d" * 89


@dataclass(frozen=True)
class Invalid:
    id: str
    reason: str
    composite: dict[str, Any]
    want: list[str]
    function_input: dict[str, Any] | None = None
    earlier_deployment: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def one(**entry: Any) -> dict[str, Any]:
    """An actor whose single entry is ``cache`` at /state/cache with ``entry`` merged in."""
    return actor({**mount("cache", "/state/cache"), **entry})


def connector(**fields: Any) -> dict[str, Any]:
    return one(connector={"type": "redis-buffered-cas", **fields})


def paths(*values: str) -> dict[str, Any]:
    return actor(*(mount(f"m{i}", value) for i, value in enumerate(values)))


P0 = "spec.stateProxy[0]"
P1 = "spec.stateProxy[1]"
C0 = f"{P0}.connector"
WHY = "no earlier pipeline step composed the Deployment 'deployment', so the function composes it from the spec"
KNOWN = (
    "fs-buffered-cas, fs-buffered-lww, gcs-buffered-cas, gcs-buffered-lww, memory, "
    "nats-kv-buffered-cas, redis-buffered-cas, s3-buffered-cas, s3-buffered-lww, s3-passthrough"
)
LABEL = "must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)"

INVALID = [
    # -- metrics port
    Invalid(
        "metrics-port-privileged",
        "connectors run as non-root and cannot bind a privileged port",
        connector(metricsPort=443),
        [f"{C0}.metricsPort: must be a port from 1024 to 65535, got 443"],
    ),
    Invalid(
        "metrics-port-twice",
        "two sidecars of one pod cannot listen on the same port",
        actor(
            {**mount("a", "/state/a"), "connector": {"type": "memory", "metricsPort": 9100}},
            {**mount("b", "/state/b"), "connector": {"type": "memory", "metricsPort": 9100}},
        ),
        [f"{P1}.connector.metricsPort: port 9100 is already used by spec.stateProxy[0]"],
    ),
    Invalid(
        "metrics-port-in-env",
        "the port is declared once, by metricsPort, so the sidecar spec lists it",
        connector(metricsPort=9100, env=[{"name": "METRICS_PORT", "value": "9200"}]),
        [f"{C0}.env: set metricsPort instead of METRICS_PORT in env"],
    ),
    # -- shapes and types
    Invalid(
        "stateproxy-scalar",
        "stateProxy is a list of mounts or the shorthand object; the error names both",
        actor(stateProxy="s3"),
        [
            "spec.stateProxy: must be a list of mounts or the shorthand {backend, bucket, "
            "consistency}, got 's3'"
        ],
    ),
    # -- the shorthand
    Invalid(
        "shorthand-bucket-missing",
        "an S3 mount needs its bucket, here or in env",
        actor(stateProxy={"backend": "s3", "consistency": "lww"}),
        [
            "spec.stateProxy.bucket: required for backend s3 (it sets STATE_BUCKET), unless env "
            "or envFrom provides STATE_BUCKET"
        ],
    ),
    Invalid(
        "shorthand-url-missing",
        "a Redis mount needs the server's URL",
        actor(stateProxy={"backend": "redis"}),
        [
            "spec.stateProxy.url: required for backend redis (it sets REDIS_URL), unless env or "
            "envFrom provides REDIS_URL"
        ],
    ),
    Invalid(
        "shorthand-unknown-backend",
        "the backends are the four of the Virtual Actors page",
        actor(stateProxy={"backend": "dynamodb", "bucket": "b"}),
        ["spec.stateProxy.backend: must be 's3', 'gcs', 'redis' or 'nats-kv', got 'dynamodb'"],
    ),
    Invalid(
        "shorthand-redis-lww",
        "Redis and NATS KV connectors are compare-and-swap only",
        actor(stateProxy={"backend": "redis", "url": "redis://r:6379/0", "consistency": "lww"}),
        ["spec.stateProxy.consistency: backend redis offers only cas, got 'lww'"],
    ),
    Invalid(
        "shorthand-consistency-unknown",
        "consistency is lww or cas",
        actor(stateProxy={"backend": "s3", "bucket": "b", "consistency": "strong"}),
        ["spec.stateProxy.consistency: must be 'lww' or 'cas', got 'strong'"],
    ),
    Invalid(
        "shorthand-bucket-on-redis",
        "a field the backend does not use is refused, not ignored",
        actor(stateProxy={"backend": "redis", "url": "redis://r:6379/0", "bucket": "b"}),
        ["spec.stateProxy.bucket: backend redis takes no bucket"],
    ),
    Invalid(
        "shorthand-url-on-gcs",
        "GCS takes no URL; an emulator is set with STORAGE_EMULATOR_HOST in env",
        actor(stateProxy={"backend": "gcs", "bucket": "b", "url": "http://gcs:4443"}),
        ["spec.stateProxy.url: backend gcs takes no url"],
    ),
    Invalid(
        "shorthand-empty-bucket",
        "an empty bucket name cannot work",
        actor(stateProxy={"backend": "s3", "bucket": " "}),
        ["spec.stateProxy.bucket: must not be empty"],
    ),
    Invalid(
        "shorthand-env-conflicts-with-bucket",
        "one variable set in two places is ambiguous",
        actor(
            stateProxy={
                "backend": "s3",
                "bucket": "b",
                "env": [{"name": "STATE_BUCKET", "value": "c"}],
            }
        ),
        [
            "spec.stateProxy.env[0].name: STATE_BUCKET is set by spec.stateProxy.bucket; set it in one place"
        ],
    ),
    Invalid(
        "shorthand-typo",
        "a misspelt shorthand field is named",
        actor(stateProxy={"backend": "s3", "bucket": "b", "consistancy": "lww"}),
        ["spec.stateProxy.consistancy: unknown field"],
    ),
    Invalid(
        "shorthand-env-reserved",
        "the shorthand's env follows the list form's rules",
        actor(
            stateProxy={
                "backend": "s3",
                "bucket": "b",
                "env": [{"name": "CONNECTOR_SOCKET", "value": "/x"}],
            }
        ),
        [
            "spec.stateProxy.env[0].name: CONNECTOR_SOCKET is set by the function (the mount's "
            "socket); remove it"
        ],
    ),
    Invalid(
        "shorthand-socket-path-too-long",
        "the shorthand's mount is named at spec.stateProxy, the field the user wrote",
        actor(stateProxy={"backend": "redis", "url": "redis://r:6379/0"}),
        [
            f"spec.stateProxy.name: the socket path {'/' + 'd' * 101}/state.sock is longer than "
            "107 bytes; shorten the name or input.socketDir"
        ],
        function_input={"socketDir": "/" + "d" * 101},
    ),
    # -- pod identity and sizes
    Invalid(
        "service-account-name",
        "a ServiceAccount name is a DNS subdomain",
        actor(serviceAccountName="Agent_S3"),
        ["spec.serviceAccountName: must be a ServiceAccount name, got 'Agent_S3'"],
    ),
    Invalid(
        "pull-secret-name",
        "a pull secret is named like any Secret",
        actor(imagePullSecrets=[{"name": "Bad Name"}]),
        ["spec.imagePullSecrets[0].name: must be a Secret name, got 'Bad Name'"],
    ),
    Invalid(
        "spill-size-limit",
        "the spill limit is a quantity",
        connector(spillSizeLimit="1GB"),
        [f"{C0}.spillSizeLimit: must be a quantity like 100m, 64Mi or 1, got '1GB'"],
    ),
    Invalid(
        "actor-not-label-when-patching",
        "the actor name ends up in the key prefix and labels whichever step composes the Deployment",
        actor(actor="a/b"),
        ["spec.actor: must be a valid label value of at most 63 characters, got 'a/b'"],
        earlier_deployment=True,
    ),
    Invalid(
        "name-missing",
        "every entry needs a name",
        actor({"mount": {"path": "/state"}, "connector": {"type": "memory"}}),
        [f"{P0}.name: required"],
    ),
    Invalid(
        "typo-field",
        "a misspelt field is named, not silently ignored",
        actor({"name": "a", "mount": {"path": "/state"}, "conector": {"type": "memory"}}),
        [f"{P0}.connector: required", f"{P0}.conector: unknown field"],
    ),
    Invalid(
        "write-mode-unknown",
        "writeMode is buffered or passthrough",
        one(writeMode="stream"),
        [f"{P0}.writeMode: must be 'buffered' or 'passthrough', got 'stream'"],
    ),
    Invalid(
        "env-value-number",
        "an unquoted number is not an env value",
        connector(env=[{"name": "PORT", "value": 900}]),
        [f"{C0}.env[0].value: must be a string, got 900"],
    ),
    Invalid(
        "quantity-malformed",
        "resources must be Kubernetes quantities",
        connector(resources={"requests": {"memory": "64MB"}}),
        [f"{C0}.resources.requests.memory: must be a quantity like 100m, 64Mi or 1, got '64MB'"],
    ),
    Invalid(
        "replicas-string",
        "replicas is an integer",
        actor(replicas="3"),
        ["spec.replicas: must be an integer, got '3'"],
    ),
    Invalid(
        "replicas-negative",
        "replicas cannot be negative",
        actor(replicas=-1),
        ["spec.replicas: must be 0 or more, got -1"],
    ),
    # -- names
    Invalid(
        "name-not-label",
        "names become container names and socket files",
        actor(mount("Cache_1", "/state/cache")),
        [f"{P0}.name: {LABEL}, got 'Cache_1'"],
    ),
    Invalid(
        "name-too-long",
        "asya-state-<name>-tmp must fit in 63 characters",
        actor(mount("n" * 49, "/state/cache")),
        [
            f"{P0}.name: must be at most 48 characters (it names the sidecar asya-state-<name> "
            "and its volumes), got 49"
        ],
    ),
    Invalid(
        "name-duplicate",
        "two entries cannot share a sidecar",
        actor(mount("cache", "/state/a"), mount("cache", "/state/b")),
        [f"{P1}.name: 'cache' is already used by spec.stateProxy[0]"],
    ),
    Invalid(
        "socket-path-too-long",
        "a Unix socket path has at most 107 bytes",
        actor(mount("c" * 13, "/state/cache")),
        [
            f"{P0}.name: the socket path {SOCKET_DIR_90}/{'c' * 13}.sock is longer than 107 bytes; "
            "shorten the name or input.socketDir"
        ],
        function_input={"socketDir": SOCKET_DIR_90},
    ),
    # -- mount paths
    Invalid(
        "path-relative",
        "mount paths are absolute",
        paths("state"),
        [f"{P0}.mount.path: must be an absolute path like /state/cache, got 'state'"],
    ),
    Invalid(
        "path-colon",
        "':' separates fields of ASYA_STATE_PROXY_MOUNTS",
        paths("/state:x"),
        [
            f"{P0}.mount.path: must not contain ':' or ';' (they separate ASYA_STATE_PROXY_MOUNTS "
            "entries), got '/state:x'"
        ],
    ),
    Invalid(
        "path-semicolon",
        "';' separates entries of ASYA_STATE_PROXY_MOUNTS",
        paths("/state;x"),
        [
            f"{P0}.mount.path: must not contain ':' or ';' (they separate ASYA_STATE_PROXY_MOUNTS "
            "entries), got '/state;x'"
        ],
    ),
    Invalid(
        "path-whitespace",
        "the runtime strips whitespace around paths",
        paths("/state/a b"),
        [f"{P0}.mount.path: must not contain whitespace or control characters, got '/state/a b'"],
    ),
    Invalid(
        "path-root",
        "the whole filesystem cannot be state",
        paths("/"),
        [f"{P0}.mount.path: cannot be the filesystem root"],
    ),
    Invalid(
        "path-trailing-slash",
        "paths are compared as written, so they must be normalized",
        paths("/state/cache/"),
        [
            f"{P0}.mount.path: must be normalized (no trailing '/', '//', '.' or '..'), "
            "like '/state/cache'"
        ],
    ),
    Invalid(
        "path-dotdot",
        "'..' would escape the mount",
        paths("/state/../etc"),
        [f"{P0}.mount.path: must be normalized (no trailing '/', '//', '.' or '..'), like '/etc'"],
    ),
    Invalid(
        "path-duplicate",
        "one path, one connector",
        paths("/state/cache", "/state/cache"),
        [f"{P1}.mount.path: '/state/cache' is already mounted by spec.stateProxy[0]"],
    ),
    Invalid(
        "path-nested-later",
        "a mount inside another would be shadowed",
        paths("/state", "/state/cache"),
        [
            f"{P1}.mount.path: '/state/cache' is inside '/state' (spec.stateProxy[0]); "
            "state mounts must not nest"
        ],
    ),
    Invalid(
        "path-nested-earlier",
        "nesting is found whichever entry comes first",
        paths("/state/cache", "/state"),
        [
            f"{P0}.mount.path: '/state/cache' is inside '/state' (spec.stateProxy[1]); "
            "state mounts must not nest"
        ],
    ),
    Invalid(
        "path-sibling-prefix-is-fine-but-socket-dir-is-not",
        "/state and /state2 do not nest; a mount over the socket directory would hide the sockets",
        paths("/state", "/state2", "/var/run/asya"),
        [
            "spec.stateProxy[2].mount.path: '/var/run/asya' overlaps the state socket directory "
            "(input.socketDir) '/var/run/asya/state'"
        ],
    ),
    Invalid(
        "path-in-library",
        "a mount inside the runtime library would intercept its imports",
        paths("/opt/asya/state-runtime/x"),
        [
            f"{P0}.mount.path: '/opt/asya/state-runtime/x' overlaps the runtime library directory "
            "(input.runtimeLibrary.mountPath) '/opt/asya/state-runtime'"
        ],
    ),
    # -- connector
    Invalid(
        "connector-empty",
        "a connector needs an image or a type",
        one(connector={}),
        [f"{C0}: set connector.type (a connector name) or connector.image"],
    ),
    Invalid(
        "connector-both",
        "image and type would disagree",
        one(connector={"type": "memory", "image": "x/y:1"}),
        [
            f"{C0}: set only one of connector.type and connector.image; the type names the catalog image"
        ],
    ),
    Invalid(
        "connector-type-unknown",
        "unknown connector names list the known ones",
        one(connector={"type": "s4-buffered-cas"}),
        [f"{C0}.type: unknown connector 's4-buffered-cas'; known: {KNOWN}"],
    ),
    Invalid(
        "connector-image-space",
        "an image reference has no spaces",
        one(connector={"image": "my image:1"}),
        [f"{C0}.image: must be an image reference without spaces, got 'my image:1'"],
    ),
    # -- env
    Invalid(
        "env-name-invalid",
        "env names follow Kubernetes' rule",
        connector(env=[{"name": "1BAD", "value": "x"}]),
        [f"{C0}.env[0].name: must be an environment variable name, got '1BAD'"],
    ),
    Invalid(
        "env-reserved",
        "the function owns CONNECTOR_SOCKET",
        connector(env=[{"name": "CONNECTOR_SOCKET", "value": "/tmp/x.sock"}]),
        [
            f"{C0}.env[0].name: CONNECTOR_SOCKET is set by the function (the mount's socket); remove it"
        ],
    ),
    Invalid(
        "env-duplicate",
        "a repeated name is ambiguous",
        connector(env=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        [f"{C0}.env[1].name: 'A' is already set by {C0}.env[0]"],
    ),
    Invalid(
        "env-value-and-value-from",
        "an env var has one source",
        connector(
            env=[
                {
                    "name": "A",
                    "value": "1",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                }
            ]
        ),
        [f"{C0}.env[0]: set value or valueFrom, not both"],
    ),
    Invalid(
        "env-value-from-two-sources",
        "valueFrom names exactly one source",
        connector(
            env=[
                {
                    "name": "A",
                    "valueFrom": {
                        "secretKeyRef": {"name": "s", "key": "k"},
                        "configMapKeyRef": {"name": "c", "key": "k"},
                    },
                }
            ]
        ),
        [f"{C0}.env[0].valueFrom: set exactly one of secretKeyRef, configMapKeyRef or fieldRef"],
    ),
    Invalid(
        "env-value-from-empty",
        "an empty valueFrom is a mistake",
        connector(env=[{"name": "A", "valueFrom": {}}]),
        [f"{C0}.env[0].valueFrom: set exactly one of secretKeyRef, configMapKeyRef or fieldRef"],
    ),
    Invalid(
        "env-secret-key-missing",
        "a secretKeyRef needs its key",
        connector(env=[{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s"}}}]),
        [f"{C0}.env[0].valueFrom.secretKeyRef.key: required"],
    ),
    Invalid(
        "env-resource-field-ref-unsupported",
        "only secretKeyRef, configMapKeyRef and fieldRef are offered",
        connector(
            env=[{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}]
        ),
        [f"{C0}.env[0].valueFrom.resourceFieldRef: unknown field"],
    ),
    Invalid(
        "env-from-both",
        "an envFrom item names one source",
        connector(envFrom=[{"secretRef": {"name": "s"}, "configMapRef": {"name": "c"}}]),
        [f"{C0}.envFrom[0]: set exactly one of secretRef or configMapRef"],
    ),
    Invalid(
        "env-from-prefix",
        "a prefix must itself be a valid env name",
        connector(envFrom=[{"prefix": "1X", "secretRef": {"name": "s"}}]),
        [f"{C0}.envFrom[0].prefix: must be an environment variable prefix, got '1X'"],
    ),
    # -- volume
    Invalid(
        "volume-over-tmp",
        "the sidecar's /tmp is its spill directory",
        connector(volume={"claimName": "data", "mountPath": "/tmp"}),
        [f"{C0}.volume.mountPath: '/tmp' is already mounted in the sidecar"],
    ),
    Invalid(
        "volume-claim-name",
        "a claim name is a DNS subdomain",
        connector(volume={"claimName": "Data", "mountPath": "/data"}),
        [f"{C0}.volume.claimName: must be a PersistentVolumeClaim name, got 'Data'"],
    ),
    # -- composing the Deployment
    Invalid(
        "image-required-alone",
        "alone, the function composes the Deployment and needs the image",
        xr({"handler": "agent.process", "stateProxy": [mount("cache", "/state/cache")]}),
        [f"spec.image: required: {WHY}"],
    ),
    Invalid(
        "handler-required-alone",
        "alone, the function composes the Deployment and needs the handler",
        xr({"image": "a:1"}),
        [f"spec.handler: required: {WHY}"],
    ),
    Invalid(
        "name-required-alone",
        "the composed Deployment is named after the AsyncActor",
        {"spec": actor()["spec"]},
        [f"metadata.name: required: {WHY}"],
    ),
    Invalid(
        "handler-malformed",
        "the handler is dotted module.function or module.Class.method",
        actor(handler="agent"),
        ["spec.handler: must be dotted module.function or module.Class.method, got 'agent'"],
        earlier_deployment=True,
    ),
    Invalid(
        "actor-not-label",
        "the actor name labels the Deployment",
        actor(actor="not valid!"),
        ["spec.actor: must be a valid label value of at most 63 characters, got 'not valid!'"],
    ),
    # -- the function input
    Invalid(
        "input-api-version",
        "another function's input is refused",
        actor(),
        [
            "input.apiVersion: must be stateproxy.fn.asya.sh/v1beta1, got 'pt.fn.crossplane.io/v1beta1'"
        ],
        function_input={"apiVersion": "pt.fn.crossplane.io/v1beta1", "kind": "Input"},
    ),
    Invalid(
        "input-kind",
        "the input kind is Input",
        actor(),
        ["input.kind: must be Input, got 'Resources'"],
        function_input={"kind": "Resources"},
    ),
    Invalid(
        "input-unknown-field",
        "a misspelt input field is named",
        actor(),
        ["input.socketdir: unknown field"],
        function_input={"socketdir": "/x"},
    ),
    Invalid(
        "input-catalog-unknown-name",
        "image overrides must be for known connectors",
        actor(),
        [f"input.catalog.images.redis: unknown connector; known: {KNOWN}"],
        function_input={"catalog": {"images": {"redis": "r:1"}}},
    ),
    Invalid(
        "input-catalog-tag",
        "a tag has no ':' or '/'",
        actor(),
        ["input.catalog.tag: must be an image tag, got 'v1:2'"],
        function_input={"catalog": {"tag": "v1:2"}},
    ),
    Invalid(
        "input-catalog-registry",
        "an empty registry would give images like /asya-state-proxy-x",
        actor(),
        ["input.catalog.registry: must be a registry or repository prefix, got '/'"],
        function_input={"catalog": {"registry": "/"}},
    ),
    Invalid(
        "input-runtime-container",
        "the runtime container name is a DNS label",
        actor(),
        [f"input.runtimeContainerName: {LABEL}, got 'Runtime'"],
        function_input={"runtimeContainerName": "Runtime"},
    ),
    Invalid(
        "input-configmap-name-is-gone",
        "the library travels in an image now; an old input that names a ConfigMap is told so",
        actor(),
        ["input.runtimeLibrary.configMapName: unknown field"],
        function_input={"runtimeLibrary": {"configMapName": "hooks"}},
    ),
    Invalid(
        "input-runtime-library-image",
        "the library image is an image reference",
        actor(),
        ["input.runtimeLibrary.image: must be an image reference, got 'my image'"],
        function_input={"runtimeLibrary": {"image": "my image"}},
    ),
    Invalid(
        "input-startup-timeout",
        "a hook that gives up at once would restart every sidecar forever",
        actor(),
        ["input.probes.startupTimeoutSeconds: must be from 1 to 3600, got 0"],
        function_input={"probes": {"startupTimeoutSeconds": 0}},
    ),
    Invalid(
        "input-liveness-period",
        "a negative period is a mistake; 0 turns the probe off",
        actor(),
        ["input.probes.livenessPeriodSeconds: must be from 0 (no liveness probe) to 3600, got -1"],
        function_input={"probes": {"livenessPeriodSeconds": -1}},
    ),
    Invalid(
        "input-readiness",
        "readiness checks nothing beyond the hook, or the backend",
        actor(),
        ["input.probes.readiness: must be 'none' or 'backend', got 'socket'"],
        function_input={"probes": {"readiness": "socket"}},
    ),
    Invalid(
        "input-pull-secret",
        "the platform's pull secrets are Secret names",
        actor(),
        ["input.imagePullSecrets[0].name: must be a Secret name, got 'A'"],
        function_input={"imagePullSecrets": [{"name": "A"}]},
    ),
    Invalid(
        "input-spill-size-limit",
        "the default spill limit is a quantity",
        actor(),
        ["input.defaults.spillSizeLimit: must be a quantity like 100m, 64Mi or 1, got 'big'"],
        function_input={"defaults": {"spillSizeLimit": "big"}},
    ),
    Invalid(
        "input-library-path",
        "the library directory is absolute",
        actor(),
        ["input.runtimeLibrary.mountPath: must be an absolute path like /state/cache, got 'lib'"],
        function_input={"runtimeLibrary": {"mountPath": "lib"}},
    ),
    Invalid(
        "input-default-write-mode",
        "the default write mode is buffered or passthrough",
        actor(),
        ["input.defaults.writeMode: must be 'buffered' or 'passthrough', got 'fast'"],
        function_input={"defaults": {"writeMode": "fast"}},
    ),
    Invalid(
        "input-deployment-resource-name",
        "the target resource name cannot be empty",
        actor(),
        ["input.deploymentResourceName: must not be empty"],
        function_input={"deploymentResourceName": ""},
    ),
]


@pytest.mark.parametrize("case", INVALID, ids=[case.id for case in INVALID])
async def test_invalid_is_fatal_with_field_path(case: Invalid) -> None:
    desired = {"deployment": deployment({"name": "asya-runtime", "image": "a:1"})}
    out = await run(
        request(
            case.composite,
            function_input=case.function_input,
            desired=desired if case.earlier_deployment else None,
        )
    )
    assert out.fatal == case.want, case.reason
    assert out.condition is not None, case.reason
    assert out.condition[0] == "False", case.reason
    assert out.condition[2] == "; ".join(case.want), case.reason
    if not case.earlier_deployment:
        assert out.resources == {}, f"{case.reason}: nothing is composed"

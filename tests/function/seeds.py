"""The seed documents' AsyncActor YAML, verbatim, and upstream Asya's composition shape.

``SEEDS`` are the examples of the upstream state proxy documentation exactly
as written there (comments and all); the function must render every one.
``upstream_deployment`` is what upstream Asya's own ``render-deployment``
step composes for an actor: the Deployment wrapped in a provider-kubernetes
``Object`` under the resource name ``deployment``, with its runtime
container, its queue sidecar and one plain container per state mount.
"""

from __future__ import annotations

from typing import Any

import yaml

from .helpers import wrapped

# The Virtual Actors page: the one-mount shorthand.
VIRTUAL_ACTORS = """\
apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata:
  name: chat-agent
spec:
  image: my-chat-agent:latest
  handler: agent.process
  stateProxy:
    backend: s3
    bucket: asya-actor-state
    consistency: lww
"""

# The State Proxy usage page: one S3 mount, no image or handler (upstream composes those).
STATE_PROXY_PAGE = """\
apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata:
  name: model-inference
  namespace: prod
spec:
  actor: model-inference
  stateProxy:
    - name: weights # Unique mount identifier
      mount:
        path: /state/weights # Path in runtime container
      writeMode: buffered # buffered (default) or passthrough
      connector:
        image: ghcr.io/deliveryhero/asya-state-proxy-s3-buffered-lww:v1.0.0
        env:
          - name: STATE_BUCKET
            value: my-model-weights
          - name: AWS_REGION
            value: us-east-1
        resources:
          requests:
            cpu: 50m
            memory: 64Mi
"""

# The connectors page: the same mount, no namespace.
CONNECTORS_PAGE = """\
apiVersion: asya.sh/v1alpha1
kind: AsyncActor
metadata:
  name: model-inference
spec:
  actor: model-inference
  stateProxy:
    - name: weights
      mount:
        path: /state/weights
      writeMode: buffered
      connector:
        image: ghcr.io/deliveryhero/asya-state-proxy-s3-buffered-lww:v1.0.0
        env:
          - name: STATE_BUCKET
            value: my-model-weights
          - name: AWS_REGION
            value: us-east-1
        resources:
          requests:
            cpu: 50m
            memory: 64Mi
"""

# The usage page's "Multiple mounts" and "passthrough" snippets: stateProxy lists only.
MULTIPLE_MOUNTS = """\
stateProxy:
  - name: weights
    mount:
      path: /state/weights
    connector:
      image: ghcr.io/deliveryhero/asya-state-proxy-s3-buffered-lww:v1.0.0
      env:
        - name: STATE_BUCKET
          value: my-model-weights
  - name: cache
    mount:
      path: /state/cache
    connector:
      image: ghcr.io/deliveryhero/asya-state-proxy-redis-buffered-cas:v1.0.0
      env:
        - name: REDIS_URL
          value: redis://redis.default:6379/0
"""

PASSTHROUGH = """\
stateProxy:
  - name: weights
    mount:
      path: /state/weights
    writeMode: passthrough # Stream large files
    connector:
      image: ghcr.io/deliveryhero/asya-state-proxy-s3-passthrough:v1.0.0
      env:
        - name: STATE_BUCKET
          value: my-large-weights
"""


def load(text: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(text)
    return document


def with_state_proxy(snippet: str, name: str, namespace: str = "prod") -> dict[str, Any]:
    """An AsyncActor around a stateProxy snippet, with nothing else in its spec."""
    return {
        "apiVersion": "asya.sh/v1alpha1",
        "kind": "AsyncActor",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"actor": name, **load(snippet)},
    }


def as_claimed(actor: dict[str, Any], namespace: str = "prod") -> dict[str, Any]:
    """The composite upstream's XRD makes of a claimed AsyncActor: a cluster-scoped XAsyncActor."""
    name = actor["metadata"]["name"]
    return {
        "apiVersion": "asya.sh/v1alpha1",
        "kind": "XAsyncActor",
        "metadata": {
            "name": f"{name}-x7k2p",
            "labels": {
                "crossplane.io/claim-name": name,
                "crossplane.io/claim-namespace": actor["metadata"].get("namespace", namespace),
            },
        },
        "spec": actor["spec"],
    }


def upstream_deployment(actor: dict[str, Any], namespace: str = "prod") -> dict[str, Any]:
    """What upstream's render-deployment step composes for ``actor`` (its shape, abridged)."""
    spec = actor["spec"]
    name = spec.get("actor") or actor["metadata"]["name"]
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": "actor",
        "asya.sh/actor": name,
    }
    state_proxy = spec.get("stateProxy") or []
    runtime: dict[str, Any] = {
        "name": "asya-runtime",
        "image": "registry.example.com/inference/model-inference:1.0.0",
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "/opt/asya/asya_runtime.py"],
        "env": [{"name": "ASYA_SOCKET_DIR", "value": "/var/run/asya"}],
        "volumeMounts": [
            {"name": "socket-dir", "mountPath": "/var/run/asya"},
            {"name": "tmp", "mountPath": "/tmp"},
            {
                "name": "asya-runtime",
                "mountPath": "/opt/asya/asya_runtime.py",
                "subPath": "asya_runtime.py",
                "readOnly": True,
            },
        ],
    }
    volumes: list[dict[str, Any]] = [
        {"name": "socket-dir", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "asya-runtime", "configMap": {"name": "asya-runtime", "defaultMode": 0o755}},
    ]
    containers: list[dict[str, Any]] = [
        runtime,
        {
            "name": "asya-sidecar",
            "image": "ghcr.io/deliveryhero/asya-sidecar:latest",
            "env": [{"name": "ASYA_ACTOR_NAME", "value": name}],
            "volumeMounts": [
                {"name": "socket-dir", "mountPath": "/var/run/asya"},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        },
    ]
    if state_proxy:
        mounts = ";".join(
            f"{e['name']}:{e['mount']['path']}:write={e.get('writeMode', 'buffered')}"
            for e in state_proxy
        )
        runtime["env"].append({"name": "ASYA_STATE_PROXY_MOUNTS", "value": mounts})
        runtime["volumeMounts"].append(
            {"name": "state-sockets", "mountPath": "/var/run/asya/state"}
        )
        volumes.append({"name": "state-sockets", "emptyDir": {}})
        for entry in state_proxy:
            containers.append(
                {
                    "name": f"asya-state-proxy-{entry['name']}",
                    "image": entry["connector"]["image"],
                    "env": [
                        {
                            "name": "CONNECTOR_SOCKET",
                            "value": f"/var/run/asya/state/{entry['name']}.sock",
                        },
                        *entry["connector"].get("env", []),
                    ],
                    "volumeMounts": [{"name": "state-sockets", "mountPath": "/var/run/asya/state"}],
                }
            )
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "containers": containers,
                    "volumes": volumes,
                },
            },
        },
    }
    return wrapped(manifest)

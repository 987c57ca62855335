#!/usr/bin/env bash
# Builds the function image, the runtime-library image and every connector
# image, tagged for the function's catalog: <registry>/asya-state-proxy-<name>:<tag>.
#   package/build-images.sh [REGISTRY] [TAG]     (defaults: docker.io/asya, the package version)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
registry=${1:-docker.io/asya}
tag=${2:-$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/pyproject.toml")}
connectors=(
  memory fs-buffered-lww fs-buffered-cas
  s3-passthrough s3-buffered-lww s3-buffered-cas
  gcs-buffered-lww gcs-buffered-cas
  redis-buffered-cas nats-kv-buffered-cas
)
docker build -f "$root/package/Dockerfile.function" -t "$registry/asya-state-proxy-function:$tag" "$root"
docker build -f "$root/package/Dockerfile.runtime" -t "$registry/asya-state-proxy-runtime:$tag" "$root"
for name in "${connectors[@]}"; do
  docker build -f "$root/package/Dockerfile.connector" --target "$name" \
    -t "$registry/asya-state-proxy-$name:$tag" "$root"
done

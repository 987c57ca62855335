#!/usr/bin/env bash
# Copies the files the chart ships from their source of truth into the chart.
#
# Helm reads only files inside the chart directory, so the chart keeps a copy
# of the runtime hook library (runtime/) and of the AsyncActor XRD
# (package/configuration/definition.yaml). tests/helm/ fails with a pointer
# to this script whenever a copy drifts from its source; run it after
# changing either source.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
chart=$root/helm/asya-state-proxy

# The runtime ConfigMap is flat (key = file name): the package's modules and
# sitecustomize.py side by side, so no module may share sitecustomize's name.
if [ -e "$root/runtime/asya_state_runtime/sitecustomize.py" ]; then
  echo "runtime/asya_state_runtime/sitecustomize.py would collide with runtime/sitecustomize.py in the ConfigMap" >&2
  exit 1
fi
rm -rf "$chart/files/runtime"
mkdir -p "$chart/files/runtime"
cp "$root"/runtime/asya_state_runtime/*.py "$root/runtime/sitecustomize.py" "$chart/files/runtime/"
echo "synced runtime library -> ${chart#"$root"/}/files/runtime/"

cp "$root/package/configuration/definition.yaml" "$chart/files/asyncactor-definition.yaml"
echo "synced AsyncActor XRD -> ${chart#"$root"/}/files/asyncactor-definition.yaml"

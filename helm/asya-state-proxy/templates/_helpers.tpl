{{/*
Names, labels and image references shared by every template.
*/}}

{{/* The chart name, cut to a DNS label. */}}
{{- define "asya-state-proxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name: release name + chart name, or the release name alone when it
already contains the chart name. Cut to a DNS label.
*/}}
{{- define "asya-state-proxy.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The chart label value: name-version. */}}
{{- define "asya-state-proxy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "asya-state-proxy.labels" -}}
helm.sh/chart: {{ include "asya-state-proxy.chart" . }}
app.kubernetes.io/name: {{ include "asya-state-proxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: asya-state-proxy
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The tag of every image unless overridden: images.tag, else appVersion. */}}
{{- define "asya-state-proxy.imageTag" -}}
{{- default .Chart.AppVersion .Values.images.tag }}
{{- end }}

{{/* The function package reference. */}}
{{- define "asya-state-proxy.functionPackage" -}}
{{- if .Values.function.package }}
{{- .Values.function.package }}
{{- else }}
{{- printf "%s/asya-state-proxy-function:%s" .Values.images.registry (include "asya-state-proxy.imageTag" .) }}
{{- end }}
{{- end }}

{{/* Registry of the connector images. */}}
{{- define "asya-state-proxy.connectorRegistry" -}}
{{- default .Values.images.registry .Values.connectors.registry }}
{{- end }}

{{/* Tag of the connector images. */}}
{{- define "asya-state-proxy.connectorTag" -}}
{{- default (include "asya-state-proxy.imageTag" .) .Values.connectors.tag }}
{{- end }}

{{/*
The image of one connector, the way the function resolves connector.type:
an entry of connectors.images, else <registry>/asya-state-proxy-<name>:<tag>.
Call with (dict "root" $ "name" "fs-buffered-lww").
*/}}
{{- define "asya-state-proxy.connectorImage" -}}
{{- $root := .root }}
{{- $override := get $root.Values.connectors.images .name }}
{{- if $override }}
{{- $override }}
{{- else }}
{{- printf "%s/asya-state-proxy-%s:%s" (include "asya-state-proxy.connectorRegistry" $root) .name (include "asya-state-proxy.connectorTag" $root) }}
{{- end }}
{{- end }}

{{/* Name of the DeploymentRuntimeConfig the Function uses, empty for none. */}}
{{- define "asya-state-proxy.runtimeConfigName" -}}
{{- $rc := .Values.function.runtimeConfig }}
{{- if $rc.create }}
{{- default (include "asya-state-proxy.fullname" .) $rc.name }}
{{- else }}
{{- $rc.name }}
{{- end }}
{{- end }}

{{/* Name of the Composition. */}}
{{- define "asya-state-proxy.compositionName" -}}
{{- default "asyncactors-state-proxy" .Values.composition.name }}
{{- end }}

{{/*
The name of the Function object: function.name, else the name Crossplane
gives the package when a Configuration depends on it,
xpkg.ToDNSLabel(<repository path without registry host>): tag and digest
dropped, '.', '/' and ':' become '-', other characters outside [a-z0-9-]
dropped, cut at 63, '-' trimmed. tests/helm checks it against a port of
Crossplane's rule.
*/}}
{{- define "asya-state-proxy.functionName" -}}
{{- if .Values.function.name }}
{{- .Values.function.name }}
{{- else }}
{{- $reference := include "asya-state-proxy.functionPackage" . }}
{{- $repository := regexReplaceAll ":[^/]*$" (regexReplaceAll "@.*$" $reference "") "" }}
{{- $parts := splitList "/" $repository }}
{{- $hub := true }}
{{- if and (gt (len $parts) 1) (regexMatch "^(localhost|.*[.:].*)$" (first $parts)) }}
{{- $hub = has (first $parts) (list "docker.io" "index.docker.io") }}
{{- $parts = rest $parts }}
{{- end }}
{{- if and $hub (eq (len $parts) 1) }}
{{- $parts = prepend $parts "library" }}
{{- end }}
{{- $label := regexReplaceAll "[./:]" (join "/" $parts | trunc 63) "-" }}
{{- regexReplaceAll "[^a-z0-9-]" $label "" | trimAll "-" }}
{{- end }}
{{- end }}

{{/* The runtime hook library image: runtimeLibrary.image, else the catalog's. */}}
{{- define "asya-state-proxy.runtimeLibraryImage" -}}
{{- default (printf "%s/asya-state-proxy-runtime:%s" (include "asya-state-proxy.connectorRegistry" .) (include "asya-state-proxy.connectorTag" .)) .Values.runtimeLibrary.image }}
{{- end }}

{{/* The chart's name, overridable. */}}
{{- define "chatroom.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every object's name: the release name, or release-chart. */}}
{{- define "chatroom.fullname" -}}
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

{{/* A component's object name: <fullname>-<component>. Call with (list $ "ingest"). */}}
{{- define "chatroom.componentName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "chatroom.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select a component's pods. Call with (list $ "ingest"). */}}
{{- define "chatroom.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "chatroom.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Every object's labels. Call with (list $ "ingest"). */}}
{{- define "chatroom.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "chatroom.selectorLabels" . }}
app.kubernetes.io/part-of: chatroom
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
{{- end }}

{{/* Labels of objects that belong to no one component. */}}
{{- define "chatroom.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "chatroom.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: chatroom
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
An image reference from a block {repository, tag, digest} and the global registry:
[registry/]repository[:tag][@digest]. The tag defaults to image.tag, then the chart's appVersion; an empty
digest adds nothing, so skaffold's local builds (tag only, no digest) render cleanly.
Call with (list $ .Values.ingest.image).
*/}}
{{- define "chatroom.image" -}}
{{- $root := index . 0 -}}
{{- $image := index . 1 }}
{{- $repo := $image.repository }}
{{- with $root.Values.image.registry }}{{ $repo = printf "%s/%s" (trimSuffix "/" .) $repo }}{{ end }}
{{- $tag := $image.tag | default $root.Values.image.tag | default $root.Chart.AppVersion | toString }}
{{- $ref := $repo }}
{{- if $tag }}{{ $ref = printf "%s:%s" $ref $tag }}{{ end }}
{{- with $image.digest }}{{ $ref = printf "%s@%s" $ref . }}{{ end }}
{{- $ref }}
{{- end }}

{{/* The ServiceAccount of a component. Call with (list $ "ingest"). */}}
{{- define "chatroom.serviceAccountName" -}}
{{- include "chatroom.componentName" . }}
{{- end }}

{{/* Name of the Secret that holds the session cookie key (SESSION_SECRET). */}}
{{- define "chatroom.sessionSecretName" -}}
{{- if .Values.sessions.existingSecret }}
{{- .Values.sessions.existingSecret }}
{{- else }}
{{- include "chatroom.componentName" (list . "session") }}
{{- end }}
{{- end }}

{{/* Name of the Secret that holds the Redis password. */}}
{{- define "chatroom.redisSecretName" -}}
{{- if .Values.redis.auth.existingSecret }}
{{- .Values.redis.auth.existingSecret }}
{{- else }}
{{- include "chatroom.componentName" (list . "redis") }}
{{- end }}
{{- end }}

{{/*
The environment of a service, as a map of name -> string: the shared settings, where Kafka
and Redis are, the bind address, then the service's own env (which wins).
Call with (list $ "ingest").
*/}}
{{- define "chatroom.env" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 }}
{{- $svc := index $root.Values $name }}
{{- $env := dict }}
{{- range $k, $v := $root.Values.config }}{{ $_ := set $env $k (toString $v) }}{{ end }}
{{- $_ := set $env "KAFKA_BOOTSTRAP_SERVERS" $root.Values.kafka.bootstrapServers }}
{{- $_ := set $env "KAFKA_TOPIC" $root.Values.kafka.topic }}
{{- $_ := set $env "KAFKA_ROOMS_TOPIC" $root.Values.kafka.roomsTopic }}
{{- $_ := set $env "PROMETHEUS_MULTIPROC_DIR" "/run/prometheus" }}
{{- $_ := set $env (printf "%s_BIND" (upper $name)) (printf "0.0.0.0:%d" (int $svc.port)) }}
{{- if and (has $name (list "ingest" "stream")) (not (hasKey $root.Values.config "ALLOWED_HOSTS")) }}
{{- $_ := set $env "ALLOWED_HOSTS" (include "chatroom.allowedHosts" $root) }}
{{- end }}
{{- range $k, $v := $svc.env }}{{ $_ := set $env $k (toString $v) }}{{ end }}
{{- toYaml $env }}
{{- end }}

{{/* Ports of the Kafka and Redis peers, for NetworkPolicy rules. */}}
{{- define "chatroom.peerPorts" -}}
{{- range $i, $port := . }}
{{- if $i }}{{ "\n" }}{{ end -}}
- protocol: TCP
  port: {{ $port }}
{{- end }}
{{- end }}

{{/*
The sign-in headers the ingress removes from client requests, as a YAML list: signIn.headers
and config.TRUSTED_USER_HEADER (once, whatever its letter case); empty when a sign-in proxy in
front sets the header (signIn.proxySetsHeader).
*/}}
{{- define "chatroom.signInHeadersCleared" -}}
{{- $headers := list }}
{{- if not .Values.signIn.proxySetsHeader }}
{{- $seen := dict }}
{{- range (append (.Values.signIn.headers | default list) (.Values.config.TRUSTED_USER_HEADER | default "")) }}
{{- if and . (not (hasKey $seen (lower .))) }}
{{- $_ := set $seen (lower .) true }}
{{- $headers = append $headers . }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $headers }}
{{- end }}

{{/*
ALLOWED_HOSTS for ingest and stream: the hosts the Ingress and HTTPRoutes route (ingress.host,
gateway.hostnames), comma-separated, or "*" when none is set (any host reaches them).
*/}}
{{- define "chatroom.allowedHosts" -}}
{{- $hosts := list }}
{{- if and .Values.ingress.enabled .Values.ingress.host }}{{ $hosts = append $hosts .Values.ingress.host }}{{ end }}
{{- if .Values.gateway.enabled }}{{ $hosts = concat $hosts (.Values.gateway.hostnames | default list) }}{{ end }}
{{- $hosts | uniq | join "," | default "*" }}
{{- end }}

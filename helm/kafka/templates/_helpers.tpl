{{- define "kafka.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kafka.fullname" -}}
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

{{/* Call with (list $ "broker"). */}}
{{- define "kafka.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "kafka.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "kafka.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kafka.selectorLabels" . }}
app.kubernetes.io/part-of: chatroom
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
{{- end }}

{{- define "kafka.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- with .Values.image.digest }}{{ $ref = printf "%s@%s" $ref . }}{{ end }}
{{- $ref }}
{{- end }}

{{- define "kafka.headless" -}}{{ include "kafka.fullname" . }}-headless{{- end }}
{{- define "kafka.bootstrap" -}}{{ include "kafka.fullname" . }}-bootstrap{{- end }}

{{/* Replication factor of internal and default topics: min(3, replicas). */}}
{{- define "kafka.replicationFactor" -}}
{{- min 3 (int .Values.replicas) }}
{{- end }}

{{/* min.insync.replicas: 2 once there are three copies, else 1. */}}
{{- define "kafka.minIsr" -}}
{{- if ge (int (include "kafka.replicationFactor" .)) 3 }}2{{ else }}1{{ end }}
{{- end }}

{{/* controller.quorum.voters: every node, by its stable DNS name. */}}
{{- define "kafka.voters" -}}
{{- $voters := list }}
{{- range $i := until (int .Values.replicas) }}
{{- $voters = append $voters (printf "%d@%s-%d.%s.%s.svc.%s:%d" $i (include "kafka.fullname" $) $i (include "kafka.headless" $) $.Release.Namespace $.Values.clusterDomain (int $.Values.ports.controller)) }}
{{- end }}
{{- join "," $voters }}
{{- end }}

{{/*
The broker's properties: derived defaults, then .Values.config. A map of key -> string.
*/}}
{{- define "kafka.properties" -}}
{{- $rf := include "kafka.replicationFactor" . }}
{{- $isr := include "kafka.minIsr" . }}
{{- $props := dict
  "default.replication.factor" $rf
  "min.insync.replicas" $isr
  "offsets.topic.replication.factor" $rf
  "transaction.state.log.replication.factor" $rf
  "transaction.state.log.min.isr" $isr
  "share.coordinator.state.topic.replication.factor" $rf
  "share.coordinator.state.topic.min.isr" $isr
}}
{{- range $k, $v := .Values.config }}{{ $_ := set $props $k (toString $v) }}{{ end }}
{{- toYaml $props }}
{{- end }}

{{/* A server.properties key as the image's environment variable: . -> _, _ -> __, - -> ___. */}}
{{- define "kafka.envName" -}}
KAFKA_{{ . | replace "_" "__" | replace "-" "___" | replace "." "_" | upper }}
{{- end }}

{{/* The topic's properties as kafka-configs.sh --add-config takes them: k=v,k=v (a list value in [brackets]). */}}
{{- define "kafka.topicConfig" -}}
{{- $pairs := list -}}
{{- range $k, $v := .Values.topic.config -}}
{{- $pairs = append $pairs (printf "%s=%s" $k (toString $v)) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

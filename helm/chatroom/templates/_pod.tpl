{{/*
The pod template every component shares. Call with (list $ "ingest").
ingest, bridge and stream are the Python services (gunicorn, the same command as the local
stack, baked into the image); web is the static page's nginx.
*/}}
{{- define "chatroom.podTemplate" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- $svc := index $root.Values $name }}
{{- $python := ne $name "web" }}
{{- $podSecurityContext := mergeOverwrite (deepCopy $root.Values.podSecurityContext) ($svc.podSecurityContext | default dict) }}
{{- $securityContext := mergeOverwrite (deepCopy $root.Values.securityContext) ($svc.securityContext | default dict) -}}
metadata:
  labels:
    {{- include "chatroom.selectorLabels" (list $root $name) | nindent 4 }}
    app.kubernetes.io/part-of: chatroom
    app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
    {{- if $python }}
    {{- /* Kafka's and Redis's NetworkPolicies let in the pods that carry these labels. */}}
    chatroom/kafka-client: "true"
    chatroom/redis-client: "true"
    {{- end }}
  annotations:
    checksum/config: {{ include "chatroom.env" (list $root $name) | sha256sum }}
    {{- if and $python $root.Values.redis.auth.enabled (not $root.Values.redis.auth.existingSecret) }}
    checksum/secret: {{ $root.Values.redis.auth.password | sha256sum }}
    {{- end }}
    {{- with $svc.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "chatroom.serviceAccountName" (list $root $name) }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ $svc.terminationGracePeriodSeconds }}
  {{- $spread := or (gt (int $svc.replicas) 1) (and $svc.autoscaling $svc.autoscaling.enabled) }}
  {{- if $svc.affinity }}
  affinity:
    {{- toYaml $svc.affinity | nindent 4 }}
  {{- else if $spread }}
  affinity:
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- include "chatroom.selectorLabels" (list $root $name) | nindent 16 }}
  {{- end }}
  {{- with $svc.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $svc.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ $name }}
      image: {{ include "chatroom.image" (list $root $svc.image) | quote }}
      imagePullPolicy: {{ $svc.image.pullPolicy | default $root.Values.image.pullPolicy }}
      {{- with $svc.command }}
      command:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      ports:
        - name: http
          containerPort: {{ $svc.port }}
          protocol: TCP
      {{- if $python }}
      envFrom:
        - configMapRef:
            name: {{ include "chatroom.componentName" (list $root $name) }}
      env:
        {{- if eq $name "bridge" }}
        # Kafka static membership: a restarted bridge pod keeps its name, so it takes its
        # partitions back at once instead of waiting for a rebalance.
        - name: BRIDGE_INSTANCE_ID
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- end }}
        {{- if and $root.Values.sessions.enabled (has $name (list "ingest" "stream")) }}
        - name: SESSION_SECRET
          valueFrom:
            secretKeyRef:
              name: {{ include "chatroom.sessionSecretName" $root }}
              key: {{ $root.Values.sessions.existingSecretKey }}
        {{- end }}
        {{- if $root.Values.redis.auth.enabled }}
        - name: REDIS_PASSWORD
          valueFrom:
            secretKeyRef:
              name: {{ include "chatroom.redisSecretName" $root }}
              key: {{ $root.Values.redis.auth.existingSecretKey }}
        - name: REDIS_URL
          value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:%d/%d" $root.Values.redis.host (int $root.Values.redis.port) (int $root.Values.redis.db) | quote }}
        {{- else }}
        - name: REDIS_URL
          value: {{ printf "redis://%s:%d/%d" $root.Values.redis.host (int $root.Values.redis.port) (int $root.Values.redis.db) | quote }}
        {{- end }}
        {{- if $root.Values.redis.cluster.enabled }}
        {{- if ne (int $root.Values.redis.db) 0 }}
        {{- fail "redis.cluster.enabled: Redis Cluster has database 0 only (redis.db)" }}
        {{- end }}
        - name: REDIS_MODE
          value: cluster
        - name: KAFKA_TOPIC_PARTITIONS
          value: {{ $root.Values.redis.cluster.topicPartitions | quote }}
        {{- end }}
      {{- end }}
      {{- with $svc.probes.startup }}
      startupProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      livenessProbe:
        {{- toYaml $svc.probes.liveness | nindent 8 }}
      readinessProbe:
        {{- toYaml $svc.probes.readiness | nindent 8 }}
      lifecycle:
        preStop:
          # Leave the Service's endpoints (and the ingress's upstreams) before the process
          # is told to stop, so that no new request reaches a stopping pod.
          exec:
            command: ["sleep", "{{ $svc.preStopSeconds }}"]
      resources:
        {{- toYaml $svc.resources | nindent 8 }}
      securityContext:
        {{- toYaml $securityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- if $python }}
        # prometheus-client's multiprocess files (PROMETHEUS_MULTIPROC_DIR).
        - name: metrics
          mountPath: /run/prometheus
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: {{ $root.Values.tmpSizeLimit }}
    {{- if $python }}
    - name: metrics
      emptyDir:
        medium: Memory
        sizeLimit: {{ $root.Values.metricsSizeLimit }}
    {{- end }}
{{- end }}

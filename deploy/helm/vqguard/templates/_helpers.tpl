{{/*
Names and labels.
*/}}
{{- define "vqguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vqguard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of the ConfigMap holding guard.yaml. */}}
{{- define "vqguard.configMapName" -}}
{{- include "vqguard.fullname" . -}}
{{- end -}}

{{- define "vqguard.sidecarConfigMapName" -}}
{{- printf "%s-sidecar" (include "vqguard.fullname" . | trunc 55 | trimSuffix "-") -}}
{{- end -}}

{{- define "vqguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vqguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vqguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "vqguard.labels" -}}
helm.sh/chart: {{ include "vqguard.chart" . }}
{{ include "vqguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | default .Chart.Version | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vqguard
{{- end -}}

{{/* Fails early on values that cannot work. */}}
{{- define "vqguard.validate" -}}
{{- if not (has .Values.mode (list "standalone" "statefulset" "sidecar")) -}}
{{- fail (printf "mode must be \"standalone\", \"statefulset\" or \"sidecar\", got %q" (toString .Values.mode)) -}}
{{- end -}}
{{- $tx := dig "transactions" false (.Values.config | default dict) -}}
{{- if not (kindIs "bool" $tx) -}}
{{- fail "config.transactions must be true or false in the chart (it decides between modes), not a ${VAR} reference" -}}
{{- end -}}
{{- if and (eq .Values.mode "standalone") $tx -}}
{{- fail "config.transactions (exactly-once) needs a stable transactional id per pod: use mode: statefulset (a Deployment's pods get a new name, and so a new id, on every restart, so a restarted pod cannot fence its predecessor)" -}}
{{- end -}}
{{- if kindIs "string" (dig "http" "port" 9464 (.Values.config | default dict)) -}}
{{- fail "config.http.port must be a number in the chart (the container port, probes and Service follow it), not a ${VAR} reference" -}}
{{- end -}}
{{- if .Values.keda.enabled -}}
{{- $reset := include "vqguard.autoOffsetReset" . -}}
{{- if not (has $reset (list "earliest" "latest")) -}}
{{- fail (printf "keda.enabled: config.kafka.autoOffsetReset must be earliest or latest in the chart (the ScaledObject follows it), not %q" $reset) -}}
{{- end -}}
{{- if and .Values.keda.offsetResetPolicy (ne .Values.keda.offsetResetPolicy $reset) -}}
{{- fail (printf "keda.offsetResetPolicy %q disagrees with the guard's config.kafka.autoOffsetReset %q: leave keda.offsetResetPolicy empty (it follows the guard)" .Values.keda.offsetResetPolicy $reset) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.serviceMonitor.enabled (eq .Values.mode "sidecar") (not .Values.sidecar.podSelector) -}}
{{- fail "serviceMonitor.enabled in sidecar mode needs sidecar.podSelector (the parent pods' labels) for the metrics Service" -}}
{{- end -}}
{{- if and .Values.gpu.enabled (lt (int .Values.gpu.count) 1) -}}
{{- fail "gpu.count must be >= 1 when gpu.enabled" -}}
{{- end -}}
{{- end -}}

{{/*
Image: repository:tag, tag defaulting to the appVersion, with the CUDA suffix when gpu.enabled.
*/}}
{{- define "vqguard.imageTag" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion | toString -}}
{{- if and .Values.gpu.enabled (not (hasSuffix .Values.gpu.imageTagSuffix $tag)) -}}
{{- $tag = printf "%s%s" $tag .Values.gpu.imageTagSuffix -}}
{{- end -}}
{{- $tag -}}
{{- end -}}

{{- define "vqguard.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "vqguard.imageTag" .) -}}
{{- end -}}

{{/* The guard's HTTP port (config.http.port, default 9464). */}}
{{- define "vqguard.port" -}}
{{- dig "http" "port" 9464 (.Values.config | default dict) | int -}}
{{- end -}}

{{/* The guard's kafka.autoOffsetReset (default earliest). */}}
{{- define "vqguard.autoOffsetReset" -}}
{{- dig "kafka" "autoOffsetReset" "earliest" (.Values.config | default dict) -}}
{{- end -}}

{{/* The workload kind of the standalone modes. */}}
{{- define "vqguard.workloadKind" -}}
{{- if eq .Values.mode "statefulset" -}}StatefulSet{{- else -}}Deployment{{- end -}}
{{- end -}}

{{/*
Stable transactional id of a StatefulSet pod: <prefix><pod name>, the prefix defaulting to
"<groupId>-<namespace>-" (transactional ids are cluster-wide). $(POD_NAME) is expanded by the
kubelet from the POD_NAME variable defined before it.
*/}}
{{- define "vqguard.transactionalId" -}}
{{- $prefix := .Values.statefulset.transactionalIdPrefix -}}
{{- if not $prefix -}}
{{- $prefix = printf "%s-%s-" (dig "kafka" "groupId" "vqguard" (.Values.config | default dict)) .Release.Namespace -}}
{{- end -}}
{{- printf "%s$(POD_NAME)" $prefix -}}
{{- end -}}

{{/* Where the secrets are mounted inside the guard container. */}}
{{- define "vqguard.saslDir" -}}/var/run/secrets/vqguard/sasl{{- end -}}
{{- define "vqguard.tlsDir" -}}/var/run/secrets/vqguard/tls{{- end -}}

{{- define "vqguard.tlsEnabled" -}}
{{- if or .Values.kafka.tls.enabled .Values.kafka.tls.existingSecret -}}true{{- end -}}
{{- end -}}

{{- define "vqguard.secretFileMode" -}}
{{- $m := .Values.kafka.secretFileMode -}}
{{- if eq (toString $m) "" -}}
{{- if eq .Values.mode "sidecar" -}}292{{- else -}}288{{- end -}}
{{- else -}}
{{- int $m -}}
{{- end -}}
{{- end -}}

{{/*
guard.yaml: .Values.config, with the secret file paths and HTTP defaults filled in.
*/}}
{{- define "vqguard.configYaml" -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- $kafka := get $cfg "kafka" | default dict -}}
{{- if .Values.kafka.sasl.existingSecret -}}
{{- $sasl := get $kafka "sasl" | default dict -}}
{{- $_ := set $sasl "mechanism" (get $sasl "mechanism" | default .Values.kafka.sasl.mechanism) -}}
{{- $_ := set $sasl "username" (get $sasl "username" | default .Values.kafka.sasl.username) -}}
{{- $_ := set $sasl "passwordFile" (printf "%s/password" (include "vqguard.saslDir" .)) -}}
{{- $_ := unset $sasl "passwordEnv" -}}
{{- $_ := set $kafka "sasl" $sasl -}}
{{- end -}}
{{- if include "vqguard.tlsEnabled" . -}}
{{- $tls := .Values.kafka.tls -}}
{{- $ssl := get $kafka "ssl" | default dict -}}
{{- $_ := set $ssl "enabled" true -}}
{{- if $tls.existingSecret -}}
{{- $dir := include "vqguard.tlsDir" . -}}
{{- if $tls.caKey -}}{{- $_ := set $ssl "caFile" (printf "%s/ca.crt" $dir) -}}{{- end -}}
{{- if $tls.certKey -}}{{- $_ := set $ssl "certFile" (printf "%s/tls.crt" $dir) -}}{{- end -}}
{{- if $tls.keyKey -}}{{- $_ := set $ssl "keyFile" (printf "%s/tls.key" $dir) -}}{{- end -}}
{{- end -}}
{{- $_ := set $kafka "ssl" $ssl -}}
{{- end -}}
{{- if $kafka -}}
{{- $_ := set $cfg "kafka" $kafka -}}
{{- end -}}
{{- $http := get $cfg "http" | default dict -}}
{{- if not (hasKey $http "port") -}}{{- $_ := set $http "port" 9464 -}}{{- end -}}
{{- if not (hasKey $http "host") -}}{{- $_ := set $http "host" "0.0.0.0" -}}{{- end -}}
{{- $_ := set $cfg "http" $http -}}
{{- toYaml $cfg -}}
{{- end -}}

{{- define "vqguard.configChecksum" -}}
{{- include "vqguard.configYaml" . | sha256sum -}}
{{- end -}}

{{/*
vqguard.container: the guard container spec (a mapping, not a list item). Takes the vqguard
chart's own context.
*/}}
{{- define "vqguard.container" -}}
{{- $port := include "vqguard.port" . -}}
name: {{ .Values.sidecar.containerName | default "vqguard" }}
image: {{ include "vqguard.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
args:
  - run
  - --config
  - /etc/vqguard/guard.yaml
{{- if and (eq .Values.mode "sidecar") .Values.sidecar.nativeSidecar }}
restartPolicy: Always
{{- end }}
ports:
  - name: vqguard-http
    containerPort: {{ $port }}
    protocol: TCP
env:
  - name: VQGUARD_HEALTH_PORT
    value: {{ $port | quote }}
  - name: POD_NAME
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
  - name: POD_NAMESPACE
    valueFrom:
      fieldRef:
        fieldPath: metadata.namespace
  {{- if eq .Values.mode "statefulset" }}
  - name: VQGUARD_TRANSACTIONAL_ID
    value: {{ include "vqguard.transactionalId" . | quote }}
  {{- end }}
  {{- if .Values.gpu.enabled }}
  - name: TF_FORCE_GPU_ALLOW_GROWTH
    value: "true"
  - name: VQGUARD_BACKEND
    value: {{ .Values.gpu.backend | default "cuda" | quote }}
  {{- end }}
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- if .Values.probes.startup.enabled }}
startupProbe:
  httpGet:
    path: /healthz
    port: vqguard-http
  periodSeconds: {{ .Values.probes.startup.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.startup.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.startup.failureThreshold }}
{{- end }}
livenessProbe:
  httpGet:
    path: /healthz
    port: vqguard-http
  periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
{{- /* In sidecar mode /readyz (broker connected, partitions assigned) would take the parent pod
out of its Service during a Kafka outage: only with sidecar.readinessProbe.enabled. */}}
{{- if or (ne .Values.mode "sidecar") .Values.sidecar.readinessProbe.enabled }}
readinessProbe:
  httpGet:
    path: /readyz
    port: vqguard-http
  periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
{{- end }}
{{- $res := deepCopy (.Values.resources | default dict) -}}
{{- if .Values.gpu.enabled -}}
{{- $limits := get $res "limits" | default dict -}}
{{- $_ := set $limits .Values.gpu.resourceName (int .Values.gpu.count) -}}
{{- $_ := set $res "limits" $limits -}}
{{- end }}
{{- with $res }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.securityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumeMounts:
  - name: vqguard-config
    mountPath: /etc/vqguard
    readOnly: true
  - name: vqguard-tmp
    mountPath: /tmp
  {{- if .Values.kafka.sasl.existingSecret }}
  - name: vqguard-sasl
    mountPath: {{ include "vqguard.saslDir" . }}
    readOnly: true
  {{- end }}
  {{- if .Values.kafka.tls.existingSecret }}
  - name: vqguard-tls
    mountPath: {{ include "vqguard.tlsDir" . }}
    readOnly: true
  {{- end }}
  {{- if .Values.models.persistentVolumeClaim.claimName }}
  - name: vqguard-models
    mountPath: {{ .Values.models.mountPath }}
    {{- with .Values.models.persistentVolumeClaim.subPath }}
    subPath: {{ . }}
    {{- end }}
    readOnly: true
  {{- end }}
  {{- with .Values.extraVolumeMounts }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/*
vqguard.volumes: the pod volumes the guard container needs, as list items. Takes the vqguard
chart's own context.
*/}}
{{- define "vqguard.volumes" -}}
- name: vqguard-config
  configMap:
    name: {{ include "vqguard.configMapName" . }}
- name: vqguard-tmp
  emptyDir:
    {{- with .Values.tmp.medium }}
    medium: {{ . }}
    {{- end }}
    {{- with .Values.tmp.sizeLimit }}
    sizeLimit: {{ . }}
    {{- end }}
{{- if .Values.kafka.sasl.existingSecret }}
- name: vqguard-sasl
  secret:
    secretName: {{ .Values.kafka.sasl.existingSecret }}
    defaultMode: {{ include "vqguard.secretFileMode" . }}
    items:
      - key: {{ .Values.kafka.sasl.passwordKey }}
        path: password
{{- end }}
{{- if .Values.kafka.tls.existingSecret }}
{{- $tls := .Values.kafka.tls }}
- name: vqguard-tls
  secret:
    secretName: {{ $tls.existingSecret }}
    defaultMode: {{ include "vqguard.secretFileMode" . }}
    items:
      {{- if $tls.caKey }}
      - key: {{ $tls.caKey }}
        path: ca.crt
      {{- end }}
      {{- if $tls.certKey }}
      - key: {{ $tls.certKey }}
        path: tls.crt
      {{- end }}
      {{- if $tls.keyKey }}
      - key: {{ $tls.keyKey }}
        path: tls.key
      {{- end }}
{{- end }}
{{- if .Values.models.persistentVolumeClaim.claimName }}
- name: vqguard-models
  persistentVolumeClaim:
    claimName: {{ .Values.models.persistentVolumeClaim.claimName }}
    readOnly: true
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Library entry points for a parent chart that has vqguard as a dependency (mode: sidecar).

  {{ include "vqguard.sidecarContainer" . }}        # from the parent: uses .Subcharts.vqguard
  {{ include "vqguard.sidecarContainer" (dict "root" . "subchart" "guard") }}   # aliased dependency
  {{ include "vqguard.sidecarVolumes" . }}
  {{ include "vqguard.sidecarConfigChecksum" . }}   # for a checksum/ pod annotation

Given the vqguard chart's own context they use it directly. Container and volumes come out as
list items ("- name: ..."), ready to sit under `containers:` (or `initContainers:` with
sidecar.nativeSidecar) and `volumes:`.
*/}}
{{- define "vqguard.withContext" -}}
{{- $in := .in -}}
{{- $ctx := $in -}}
{{- $name := "vqguard" -}}
{{- if and (hasKey $in "root") (not (hasKey $in "Values")) -}}
{{- $name = get $in "subchart" | default "vqguard" -}}
{{- $ctx = $in.root -}}
{{- end -}}
{{- if hasKey $ctx "Subcharts" -}}
{{- $subcharts := $ctx.Subcharts | default dict -}}
{{- if hasKey $subcharts $name -}}
{{- $ctx = index $subcharts $name -}}
{{- end -}}
{{- end -}}
{{- include .tpl $ctx -}}
{{- end -}}

{{- define "vqguard.containerItem" -}}
{{- printf "- %s" (include "vqguard.container" . | indent 2 | trimPrefix "  ") -}}
{{- end -}}

{{- define "vqguard.sidecarContainer" -}}
{{- include "vqguard.withContext" (dict "in" . "tpl" "vqguard.containerItem") -}}
{{- end -}}

{{- define "vqguard.sidecarVolumes" -}}
{{- include "vqguard.withContext" (dict "in" . "tpl" "vqguard.volumes") -}}
{{- end -}}

{{- define "vqguard.sidecarConfigChecksum" -}}
{{- include "vqguard.withContext" (dict "in" . "tpl" "vqguard.configChecksum") -}}
{{- end -}}

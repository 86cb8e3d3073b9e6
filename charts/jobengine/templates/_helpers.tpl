{{/*
Names, labels and the shared wiring (Redis address, password, queue keys) of the jobengine chart.
Every template takes the Redis connection from the helpers below, so the api, the workers and
KEDA always agree on it.
*/}}

{{- define "jobengine.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A name cut to .max characters (default 63, a DNS label) without two long names collapsing into
one: a cut name ends in "-" and 8 hex characters of the sha256 of the whole name.
(dict "name" string "max" int)
*/}}
{{- define "jobengine.safeName" -}}
{{- $max := .max | default 63 | int }}
{{- if gt (len .name) $max }}
{{- printf "%s-%s" (trunc (sub $max 9 | int) .name | trimSuffix "-") (sha256sum .name | trunc 8) }}
{{- else }}
{{- .name }}
{{- end }}
{{- end }}

{{/*
At most 47 characters, so that every fixed suffix the chart appends (the longest is
"-test-submit-job", 16) keeps a name within 63.
*/}}
{{- define "jobengine.fullname" -}}
{{- $full := "" }}
{{- if .Values.fullnameOverride }}
{{- $full = .Values.fullnameOverride }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- $full = ternary .Release.Name (printf "%s-%s" .Release.Name $name) (contains $name .Release.Name) }}
{{- end }}
{{- include "jobengine.safeName" (dict "name" $full "max" 47) }}
{{- end }}

{{- define "jobengine.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels; the selector labels plus chart, version and managed-by. */}}
{{- define "jobengine.labels" -}}
helm.sh/chart: {{ include "jobengine.chart" . }}
{{ include "jobengine.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: jobengine
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels: name + instance only; never the chart or the version. */}}
{{- define "jobengine.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jobengine.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels and selector labels of one component: (dict "root" $ "component" "api") */}}
{{- define "jobengine.componentLabels" -}}
{{ include "jobengine.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- with .pool }}
jobengine.io/pool: {{ . }}
{{- end }}
{{- end }}

{{- define "jobengine.componentSelectorLabels" -}}
{{ include "jobengine.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- with .pool }}
jobengine.io/pool: {{ . }}
{{- end }}
{{- end }}

{{/*
The ServiceAccount of one component (api, worker, redis): (dict "root" $ "component" "api"). The workers'
is created whenever pod-deletion-cost binds its Role to it, so that Role never lands on "default".
*/}}
{{- define "jobengine.componentServiceAccountName" -}}
{{- $given := index .root.Values.serviceAccount.names .component }}
{{- if or .root.Values.serviceAccount.create (and (eq .component "worker") (include "jobengine.deletionCost.any" .root)) }}
{{- default (printf "%s-%s" (include "jobengine.fullname" .root) .component) $given }}
{{- else }}
{{- default "default" $given }}
{{- end }}
{{- end }}

{{/* The Redis pod's ServiceAccount (called with the root context by templates/redis/statefulset.yaml). */}}
{{- define "jobengine.serviceAccountName" -}}
{{- include "jobengine.componentServiceAccountName" (dict "root" . "component" "redis") }}
{{- end }}

{{/* repository:tag or repository@digest; tag defaults to the appVersion: (dict "image" .. "root" $) */}}
{{- define "jobengine.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{- define "jobengine.apiName" -}}
{{- printf "%s-api" (include "jobengine.fullname" .) }}
{{- end }}

{{/* Name of a worker pool's Deployment, ScaledObject, HPA and PDB: (dict "root" $ "pool" name) */}}
{{- define "jobengine.workerName" -}}
{{- include "jobengine.safeName" (dict "name" (printf "%s-worker-%s" (include "jobengine.fullname" .root) .pool)) }}
{{- end }}

{{- define "jobengine.configName" -}}
{{- printf "%s-config" (include "jobengine.fullname" .) }}
{{- end }}

{{/* The ConfigMap of the declared schedules (`schedules`), mounted into the api pods. */}}
{{- define "jobengine.schedulesName" -}}
{{- printf "%s-schedules" (include "jobengine.fullname" .) }}
{{- end }}

{{/*
The Redis list RQ keeps a queue's waiting jobs in. Must equal jobengine.keys.queue(name)
(libs/jobengine/src/jobengine/keys.py); tests/chart checks it against the code.
*/}}
{{- define "jobengine.queueKey" -}}
{{- printf "rq:queue:%s" . }}
{{- end }}

{{/* A queue's pause marker (jobengine.keys.paused): LLEN 1 while the queue is paused, else 0. */}}
{{- define "jobengine.pausedKey" -}}
{{- printf "jobengine:paused:%s" . }}
{{- end }}

{{/*
Deep merge of two maps where the override wins even with false, 0 or "" (sprig's
mergeOverwrite skips such values). Returns YAML: (dict "base" map "over" map)
*/}}
{{- define "jobengine.deepMerge" -}}
{{- $out := deepCopy .base }}
{{- range $key, $value := .over }}
{{- $current := get $out $key }}
{{- if and (kindIs "map" $value) (kindIs "map" $current) }}
{{- $_ := set $out $key (include "jobengine.deepMerge" (dict "base" $current "over" $value) | fromYaml) }}
{{- else }}
{{- $_ := set $out $key $value }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* Settings of one pool: .Values.worker overridden by the pool's own keys. (dict "root" $ "pool" values) */}}
{{- define "jobengine.poolValues" -}}
{{- include "jobengine.deepMerge" (dict "base" (merge (dict "enabled" true) (deepCopy .root.Values.worker)) "over" .pool) }}
{{- end }}

{{/* The queues of the enabled worker pools, sorted and comma-separated: JOBENGINE_QUEUES_DECLARED. */}}
{{- define "jobengine.declaredQueues" -}}
{{- $queues := list }}
{{- range $name, $raw := .Values.workerPools }}
{{- $pool := include "jobengine.poolValues" (dict "root" $ "pool" $raw) | fromYaml }}
{{- if $pool.enabled }}
{{- $queues = concat $queues $pool.queues }}
{{- end }}
{{- end }}
{{- $queues | uniq | sortAlpha | join "," }}
{{- end }}

{{/* terminationGracePeriodSeconds of a worker pool: ceil(drainSeconds) + margin. */}}
{{- define "jobengine.workerGracePeriod" -}}
{{- add (ceil .drainSeconds | int) (.terminationGraceMarginSeconds | int) }}
{{- end }}

{{/* uvicorn's graceful timeout of the api: the longest long-poll plus a margin for its answer. */}}
{{- define "jobengine.api.gracefulSeconds" -}}
{{- add (ceil .Values.api.maxWaitSeconds | int) (.Values.api.shutdown.extraSeconds | int) }}
{{- end }}

{{/* terminationGracePeriodSeconds of the api: the preStop pause, then the graceful timeout, then a margin. */}}
{{- define "jobengine.api.gracePeriod" -}}
{{- $pause := ternary 0 (.Values.api.preStop.seconds | int) (eq .Values.api.preStop.mode "none") }}
{{- add $pause (include "jobengine.api.gracefulSeconds" . | int) (.Values.api.shutdown.marginSeconds | int) }}
{{- end }}

{{/* The worker's liveness file: on the /tmp emptyDir (the root filesystem is read-only). */}}
{{- define "jobengine.worker.livenessFile" -}}/tmp/jobengine-worker-alive{{- end }}

{{/* ---------------- Redis connection ---------------- */}}

{{/* "true" when an external Redis is reached through Sentinel. */}}
{{- define "jobengine.redis.sentinel" -}}
{{- if and (not .Values.redis.enabled) .Values.externalRedis.sentinel.enabled }}true{{ end }}
{{- end }}

{{/* The sentinels as host:port, comma-separated (the form of the URL and of KEDA's addresses). */}}
{{- define "jobengine.redis.sentinelAddresses" -}}
{{- $addresses := list }}
{{- range .Values.externalRedis.sentinel.hosts }}
{{- $addresses = append $addresses (ternary . (printf "%s:26379" .) (regexMatch ":[0-9]+$" .)) }}
{{- end }}
{{- join "," $addresses }}
{{- end }}

{{- define "jobengine.redis.host" -}}
{{- if .Values.redis.enabled }}
{{- printf "%s-redis.%s.svc" (include "jobengine.fullname" .) .Release.Namespace }}
{{- else }}
{{- required "externalRedis.host is required when redis.enabled is false" .Values.externalRedis.host }}
{{- end }}
{{- end }}

{{- define "jobengine.redis.port" -}}
{{- if .Values.redis.enabled }}6379{{ else }}{{ .Values.externalRedis.port | int }}{{ end }}
{{- end }}

{{- define "jobengine.redis.db" -}}
{{- if .Values.redis.enabled }}0{{ else }}{{ .Values.externalRedis.db | int }}{{ end }}
{{- end }}

{{/* host:port, the form KEDA's redis trigger takes. */}}
{{- define "jobengine.redis.address" -}}
{{- printf "%s:%s" (include "jobengine.redis.host" .) (include "jobengine.redis.port" .) }}
{{- end }}

{{- define "jobengine.redis.tls" -}}
{{- if and (not .Values.redis.enabled) .Values.externalRedis.tls.enabled }}true{{ end }}
{{- end }}

{{- define "jobengine.redis.username" -}}
{{- if not .Values.redis.enabled }}{{ .Values.externalRedis.username }}{{ end }}
{{- end }}

{{/* "true" when a password is configured (always for the in-chart Redis). */}}
{{- define "jobengine.redis.hasPassword" -}}
{{- if or .Values.redis.enabled .Values.externalRedis.existingSecret .Values.externalRedis.password }}true{{ end }}
{{- end }}

{{/* true when the chart renders the password Secret itself. */}}
{{- define "jobengine.redis.createSecret" -}}
{{- if .Values.redis.enabled }}
{{- if not .Values.redis.auth.existingSecret }}true{{ end }}
{{- else if and .Values.externalRedis.password (not .Values.externalRedis.existingSecret) }}true{{ end }}
{{- end }}

{{- define "jobengine.redis.secretName" -}}
{{- if and .Values.redis.enabled .Values.redis.auth.existingSecret }}
{{- .Values.redis.auth.existingSecret }}
{{- else if and (not .Values.redis.enabled) .Values.externalRedis.existingSecret }}
{{- .Values.externalRedis.existingSecret }}
{{- else }}
{{- printf "%s-redis" (include "jobengine.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "jobengine.redis.secretKey" -}}
{{- if and .Values.redis.enabled .Values.redis.auth.existingSecret }}
{{- .Values.redis.auth.existingSecretPasswordKey }}
{{- else if and (not .Values.redis.enabled) .Values.externalRedis.existingSecret }}
{{- .Values.externalRedis.existingSecretPasswordKey }}
{{- else }}redis-password{{ end }}
{{- end }}

{{- define "jobengine.redis.caMountPath" -}}/etc/jobengine/redis-tls{{- end }}

{{/*
The Redis environment of every jobengine container (api, workers): REDIS_PASSWORD from the
Secret, then JOBENGINE_REDIS_URL built from it with Kubernetes' dependent variables.
*/}}
{{- define "jobengine.redis.env" -}}
{{- $hasPassword := include "jobengine.redis.hasPassword" . }}
{{- if $hasPassword }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "jobengine.redis.secretName" . }}
      key: {{ include "jobengine.redis.secretKey" . }}
{{- end }}
{{- $scheme := ternary "rediss" "redis" (eq (include "jobengine.redis.tls" .) "true") }}
{{- $userinfo := "" }}
{{- if $hasPassword }}
{{- $userinfo = printf "%s:$(REDIS_PASSWORD)@" (include "jobengine.redis.username" .) }}
{{- else if include "jobengine.redis.username" . }}
{{- $userinfo = printf "%s@" (include "jobengine.redis.username" .) }}
{{- end }}
{{- $query := list }}
{{- if eq (include "jobengine.redis.tls" .) "true" }}
{{- if .Values.externalRedis.tls.caSecret }}
{{- $query = append $query (printf "ssl_ca_certs=%s/%s" (include "jobengine.redis.caMountPath" .) .Values.externalRedis.tls.caSecretKey) }}
{{- end }}
{{- if .Values.externalRedis.tls.insecureSkipVerify }}
{{- $query = append $query "ssl_cert_reqs=none" }}
{{- $query = append $query "ssl_check_hostname=false" }}
{{- end }}
{{- end }}
{{- $where := "" }}
{{- if include "jobengine.redis.sentinel" . }}
{{- $scheme = printf "%s+sentinel" $scheme }}
{{- $where = printf "%s/%s" (include "jobengine.redis.sentinelAddresses" .) .Values.externalRedis.sentinel.primaryName }}
{{- if and .Values.externalRedis.sentinel.usePassword $hasPassword }}
{{- $query = append $query "sentinel_password=$(REDIS_PASSWORD)" }}
{{- end }}
{{- with .Values.externalRedis.sentinel.username }}
{{- $query = append $query (printf "sentinel_username=%s" .) }}
{{- end }}
{{- else }}
{{- $where = include "jobengine.redis.address" . }}
{{- end }}
- name: JOBENGINE_REDIS_URL
  value: {{ printf "%s://%s%s/%s%s" $scheme $userinfo $where (include "jobengine.redis.db" .) (ternary (printf "?%s" (join "&" $query)) "" (gt (len $query) 0)) | quote }}
{{- end }}

{{- define "jobengine.redis.volumeMounts" -}}
{{- if and (eq (include "jobengine.redis.tls" .) "true") .Values.externalRedis.tls.caSecret }}
- name: redis-tls
  mountPath: {{ include "jobengine.redis.caMountPath" . }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "jobengine.redis.volumes" -}}
{{- if and (eq (include "jobengine.redis.tls" .) "true") .Values.externalRedis.tls.caSecret }}
- name: redis-tls
  secret:
    secretName: {{ .Values.externalRedis.tls.caSecret }}
    items:
      - key: {{ .Values.externalRedis.tls.caSecretKey }}
        path: {{ .Values.externalRedis.tls.caSecretKey }}
{{- end }}
{{- end }}

{{/* Checksum of the shared ConfigMap: a config change rolls the api and the workers. */}}
{{- define "jobengine.checksumConfig" -}}
{{- include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end }}

{{/* Topology spread constraints: (dict "spread" values "selector" selectorLabelsYAML) */}}
{{- define "jobengine.topologySpread" -}}
{{- if .spread.enabled }}
topologySpreadConstraints:
{{- range .spread.topologyKeys }}
  - maxSkew: {{ $.spread.maxSkew | int }}
    topologyKey: {{ . }}
    whenUnsatisfiable: {{ $.spread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- $.selector | nindent 8 }}
    matchLabelKeys: [pod-template-hash]
{{- end }}
{{- end }}
{{- end }}

{{/* Validation of value combinations the schema cannot express. */}}
{{- define "jobengine.validate" -}}
{{- if and (not .Values.redis.enabled) (not .Values.externalRedis.host) (not .Values.externalRedis.sentinel.enabled) }}
{{- fail "externalRedis.host is required when redis.enabled is false (or externalRedis.sentinel.enabled with its hosts)" }}
{{- end }}
{{- if and (not .Values.redis.enabled) .Values.externalRedis.sentinel.enabled (not .Values.externalRedis.sentinel.hosts) }}
{{- fail "externalRedis.sentinel.hosts is required when externalRedis.sentinel.enabled is true" }}
{{- end }}
{{- if and .Values.keda.inFlight.enabled (not .Values.keda.enabled) }}
{{- fail "keda.inFlight.enabled needs keda.enabled: true" }}
{{- end }}
{{- if and .Values.tracing.enabled (not .Values.tracing.endpoint) }}
{{- fail "tracing.endpoint is required when tracing.enabled is true" }}
{{- end }}
{{- $enabled := 0 }}
{{- range $name, $raw := .Values.workerPools }}
{{- $pool := include "jobengine.poolValues" (dict "root" $ "pool" $raw) | fromYaml }}
{{- if $pool.enabled }}
{{- $enabled = add1 $enabled }}
{{- if not $pool.queues }}
{{- fail (printf "workerPools.%s.queues: at least one queue is needed" $name) }}
{{- end }}
{{- if and $pool.autoscaling.enabled (not $.Values.keda.enabled) (lt ($pool.autoscaling.minReplicas | int) 1) }}
{{- fail (printf "workerPools.%s: autoscaling.minReplicas 0 (scale to zero) needs keda.enabled: true; the HPA fallback needs at least 1" $name) }}
{{- end }}
{{- if and $pool.autoscaling.enabled (gt ($pool.autoscaling.minReplicas | int) ($pool.autoscaling.maxReplicas | int)) }}
{{- fail (printf "workerPools.%s: autoscaling.minReplicas is above maxReplicas" $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- if eq $enabled 0 }}
{{- fail "workerPools: enable at least one pool, or no job will ever run" }}
{{- end }}
{{- include "jobengine.autoscaling.validate" . }}
{{- include "jobengine.secrets.validate" . }}
{{- end }}

{{/*
"true" when this render reads the cluster: `lookup` finds the release's namespace (the view, edit and
admin roles may read it). helm template, Argo CD and helmfile template get nothing from lookup; nor does
`helm install --create-namespace`, which renders before it creates the namespace: create it first.
*/}}
{{- define "jobengine.lookupWorks" -}}
{{- if lookup "v1" "Namespace" "" .Release.Namespace }}true{{ end }}
{{- end }}

{{/*
A generated secret (the Redis password, the helm test's key) is kept across upgrades only by lookup.
Without it every render makes a new one (each sync of a GitOps tool would change the Redis password
under running pods), so such a render fails and says how to provide the secret once.
*/}}
{{- define "jobengine.secrets.validate" -}}
{{- if and (not .Values.secrets.generateWithoutLookup) (not (include "jobengine.lookupWorks" .)) }}
{{- if and .Values.redis.enabled (not .Values.redis.auth.existingSecret) (not .Values.redis.auth.password) }}
{{- fail (printf "redis.auth: this render cannot read the cluster (helm template, Argo CD, helmfile template), so a generated Redis password would change on every render (helm install --create-namespace too: create the namespace first). Or create the password once:\n  kubectl -n %s create secret generic %s-redis-auth --from-literal=redis-password=$(openssl rand -hex 24)\nthen set redis.auth.existingSecret=%s-redis-auth (or set redis.auth.password; or secrets.generateWithoutLookup=true for a throw-away render)" .Release.Namespace .Release.Name .Release.Name) }}
{{- end }}
{{- if and .Values.redis.enabled .Values.keda.enabled (not .Values.redis.kedaUser.existingSecret) }}
{{- fail (printf "redis.kedaUser: this render cannot read the cluster (helm template, Argo CD, helmfile template), so KEDA's generated Redis password would change on every render. Create it once:\n  kubectl -n %s create secret generic %s-redis-keda --from-literal=%s=$(openssl rand -hex 24)\nthen set redis.kedaUser.existingSecret=%s-redis-keda (or secrets.generateWithoutLookup=true for a throw-away render)" .Release.Namespace .Release.Name .Values.redis.kedaUser.existingSecretPasswordKey .Release.Name) }}
{{- end }}
{{- if and .Values.apiKeys.enabled .Values.tests.enabled (not .Values.apiKeys.existingSecret) }}
{{- fail (printf "tests.enabled: this render cannot read the cluster (helm template, Argo CD, helmfile template), so the helm test's generated API key would change on every render. Set tests.enabled=false, or keep the API keys in apiKeys.existingSecret (with the test's key under tests.apiKeySecretKey; jobengine-apikey makes one), or secrets.generateWithoutLookup=true for a throw-away render") }}
{{- end }}
{{- end }}
{{- end }}

{{/* ---------------- API keys ---------------- */}}

{{- define "jobengine.apiKeys.secretName" -}}
{{- if .Values.apiKeys.existingSecret }}
{{- .Values.apiKeys.existingSecret }}
{{- else }}
{{- printf "%s-api-keys" (include "jobengine.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "jobengine.apiKeys.mountPath" -}}/etc/jobengine/api-keys{{- end }}

{{/* Environment of the api container: authentication on with the mounted key file, or off on purpose. */}}
{{- define "jobengine.apiKeys.env" -}}
{{- if .Values.apiKeys.enabled }}
- name: JOBENGINE_AUTH
  value: "on"
- name: JOBENGINE_API_KEYS_FILE
  value: {{ printf "%s/keys.json" (include "jobengine.apiKeys.mountPath" .) | quote }}
- name: JOBENGINE_AUTH_REFRESH_SECONDS
  value: {{ .Values.apiKeys.refreshSeconds | toString | quote }}
{{- else }}
- name: JOBENGINE_AUTH
  value: "off"
- name: JOBENGINE_AUTH_ALLOW_OFF_IN_PRODUCTION
  value: "true"
{{- end }}
{{- end }}

{{/* ---------------- Autoscaling: work is never the price of a scale-down ---------------- */}}

{{/*
Refuses the pool settings that lose work (docs/kubernetes.md, "Autoscaling"):
- minReplicas 0 while KEDA cannot see running jobs: the pool would go to zero while its last jobs run;
- drainSeconds below the pool's longest job timeout: a scale-down or rollout hands longer jobs back to
  their queue, and a job longer than every drain restarts forever (opt in with allowInterruptingJobs);
- a ScaledJob pool without KEDA.
*/}}
{{- define "jobengine.autoscaling.validate" -}}
{{- range $name, $raw := .Values.workerPools }}
{{- $pool := include "jobengine.poolValues" (dict "root" $ "pool" $raw) | fromYaml }}
{{- if $pool.enabled }}
{{- $as := $pool.autoscaling }}
{{- if eq $as.mode "scaledJob" }}
{{- if not $.Values.keda.enabled }}
{{- fail (printf "workerPools.%s: autoscaling.mode scaledJob needs keda.enabled: true (KEDA creates the Jobs)" $name) }}
{{- end }}
{{- else }}
{{- if and $as.enabled $.Values.keda.enabled (lt ($as.minReplicas | int) 1) (not $.Values.keda.inFlight.enabled) }}
{{- fail (printf "workerPools.%s: autoscaling.minReplicas 0 would scale the pool to zero while its last jobs run: KEDA's redis trigger sees only waiting jobs. Set keda.inFlight.enabled: true (running jobs counted from Prometheus), or minReplicas >= 1, or autoscaling.mode: scaledJob" $name) }}
{{- end }}
{{- if and (lt (float64 $pool.drainSeconds) (float64 $as.jobTimeoutSeconds)) (not $as.allowInterruptingJobs) }}
{{- fail (printf "workerPools.%s: drainSeconds %v is below autoscaling.jobTimeoutSeconds %v (the longest job timeout of the pool's queues): a scale-down or rollout would hand longer jobs back to their queue, to restart from the beginning. Raise drainSeconds, use autoscaling.mode: scaledJob for long jobs, or accept it with autoscaling.allowInterruptingJobs: true" $name $pool.drainSeconds $as.jobTimeoutSeconds) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* "true" when some enabled Deployment pool keeps its pod-deletion-cost current (needs the worker's RBAC). */}}
{{- define "jobengine.deletionCost.any" -}}
{{- range $name, $raw := .Values.workerPools }}
{{- $pool := include "jobengine.poolValues" (dict "root" $ "pool" $raw) | fromYaml }}
{{- if and $pool.enabled (ne $pool.autoscaling.mode "scaledJob") $pool.autoscaling.podDeletionCost.enabled }}true{{ end }}
{{- end }}
{{- end }}

{{/* The workers' own ServiceAccount, the only one allowed to patch pods (pod-deletion-cost). */}}
{{- define "jobengine.deletionCost.serviceAccountName" -}}
{{- include "jobengine.componentServiceAccountName" (dict "root" . "component" "worker") }}
{{- end }}

{{- define "jobengine.deletionCost.tokenDir" -}}/var/run/secrets/kubernetes.io/serviceaccount{{- end }}

{{/*
Pod spec lines of a worker pool (dict "root" $ "pool" poolValues): with pod-deletion-cost on, the
workers' ServiceAccount and, in place of the automounted token, a projected one-hour token that
only the worker container mounts.
*/}}
{{- define "jobengine.deletionCost.podSpec" -}}
serviceAccountName: {{ include "jobengine.componentServiceAccountName" (dict "root" .root "component" "worker") }}
{{- if and (ne .pool.autoscaling.mode "scaledJob") .pool.autoscaling.podDeletionCost.enabled }}
automountServiceAccountToken: false
{{- else }}
automountServiceAccountToken: {{ .root.Values.serviceAccount.automountServiceAccountToken }}
{{- end }}
{{- end }}

{{/* Environment of the worker's deletion-cost module (services/worker/src/jobengine_worker/deletion_cost.py). */}}
{{- define "jobengine.deletionCost.env" -}}
{{- if and (ne .autoscaling.mode "scaledJob") .autoscaling.podDeletionCost.enabled }}
- name: JOBENGINE_POD_DELETION_COST
  value: "on"
- name: JOBENGINE_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: JOBENGINE_POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: JOBENGINE_KUBERNETES_TOKEN_FILE
  value: {{ printf "%s/token" (include "jobengine.deletionCost.tokenDir" .) | quote }}
- name: JOBENGINE_KUBERNETES_CA_FILE
  value: {{ printf "%s/ca.crt" (include "jobengine.deletionCost.tokenDir" .) | quote }}
{{- end }}
{{- end }}

{{- define "jobengine.deletionCost.volumeMounts" -}}
{{- if and (ne .autoscaling.mode "scaledJob") .autoscaling.podDeletionCost.enabled }}
- name: kube-api-access
  mountPath: {{ include "jobengine.deletionCost.tokenDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "jobengine.deletionCost.volumes" -}}
{{- if and (ne .autoscaling.mode "scaledJob") .autoscaling.podDeletionCost.enabled }}
- name: kube-api-access
  projected:
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3600
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
{{- end }}
{{- end }}

{{/*
HPA behavior of a worker pool (ScaledObject and the HPA fallback alike). Scale-up: double or +4 pods
every 15 s. Scale-down: after the stabilisation window, at most half the pods a minute; which
pods go is the ReplicaSet's choice, hence pod-deletion-cost.
*/}}
{{- define "jobengine.autoscaling.behavior" -}}
scaleDown:
  stabilizationWindowSeconds: {{ .scaleDownStabilizationSeconds | int }}
  selectPolicy: Max
  policies:
    - type: Percent
      value: 50
      periodSeconds: 60
    - type: Pods
      value: 2
      periodSeconds: 60
scaleUp:
  stabilizationWindowSeconds: 0
  selectPolicy: Max
  policies:
    - type: Percent
      value: 100
      periodSeconds: 15
    - type: Pods
      value: 4
      periodSeconds: 15
{{- end }}

{{/*
KEDA redis (or redis-sentinel) trigger reading LLEN of one queue's list:
(dict "root" $ "name" triggerName "queue" q "listLength" n "activation" n)
*/}}
{{- define "jobengine.autoscaling.redisTrigger" -}}
{{- $root := .root }}
{{- $auth := or (include "jobengine.redis.hasPassword" $root) (include "jobengine.keda.secretName" $root) (and (include "jobengine.redis.tls" $root) $root.Values.externalRedis.tls.caSecret) }}
- type: {{ ternary "redis-sentinel" "redis" (eq (include "jobengine.redis.sentinel" $root) "true") }}
  name: {{ .name }}
  metricType: AverageValue
  metadata:
    {{- if include "jobengine.redis.sentinel" $root }}
    addresses: {{ include "jobengine.redis.sentinelAddresses" $root | replace "," ", " | quote }}
    sentinelMaster: {{ $root.Values.externalRedis.sentinel.primaryName | quote }}
    {{- with $root.Values.externalRedis.sentinel.username }}
    sentinelUsername: {{ . | quote }}
    {{- end }}
    {{- else }}
    address: {{ include "jobengine.redis.address" $root | quote }}
    {{- end }}
    databaseIndex: {{ include "jobengine.redis.db" $root | quote }}
    listName: {{ .list | default (include "jobengine.queueKey" .queue) | quote }}
    listLength: {{ .listLength | toString | quote }}
    activationListLength: {{ .activation | toString | quote }}
    {{- with include "jobengine.keda.ownUser" $root | default (include "jobengine.redis.username" $root) }}
    username: {{ . | quote }}
    {{- end }}
    {{- if include "jobengine.redis.tls" $root }}
    enableTLS: "true"
    unsafeSsl: {{ $root.Values.externalRedis.tls.insecureSkipVerify | toString | quote }}
    {{- end }}
  {{- if $auth }}
  authenticationRef:
    name: {{ printf "%s-redis" (include "jobengine.fullname" $root) | trunc 63 | trimSuffix "-" }}
  {{- end }}
{{- end }}

{{/* The redis_exporter sidecar runs: redis.exporter.enabled, or (null) monitoring.enabled. */}}
{{- define "jobengine.redis.exporter" -}}
{{- $on := .Values.redis.exporter.enabled }}
{{- if and .Values.redis.enabled (ternary .Values.monitoring.enabled $on (kindIs "invalid" $on)) }}true{{ end }}
{{- end }}

{{/*
KEDA's Redis credentials: its own read-only ACL user in the chart's Redis (Secret <fullname>-redis-keda
unless redis.kedaUser.existingSecret); with externalRedis, keda.redisAuth names a user the operator created,
else KEDA falls back to the application's credentials. Each returns "" when not applicable.
*/}}
{{- define "jobengine.keda.ownUser" -}}
{{- if .Values.redis.enabled }}{{ .Values.redis.kedaUser.name }}{{ else }}{{ .Values.keda.redisAuth.username }}{{ end }}
{{- end }}
{{- define "jobengine.keda.secretName" -}}
{{- if .Values.redis.enabled }}
{{- default (printf "%s-redis-keda" (include "jobengine.fullname" .) | trunc 63 | trimSuffix "-") .Values.redis.kedaUser.existingSecret }}
{{- else if .Values.keda.redisAuth.username }}{{ required "keda.redisAuth.existingSecret is required with keda.redisAuth.username" .Values.keda.redisAuth.existingSecret }}
{{- end }}
{{- end }}
{{- define "jobengine.keda.secretKey" -}}
{{- if .Values.redis.enabled }}{{ .Values.redis.kedaUser.existingSecretPasswordKey }}{{ else }}{{ .Values.keda.redisAuth.existingSecretPasswordKey }}{{ end }}
{{- end }}

{{/*
The Redis container's start script: writes the ACL users into /run/redis/auth.conf (redis.conf includes it).
The default user (the application, probes, exporter) gets every command but redis.disabledCommands; KEDA's
user only what KEDA's redis list scaler sends: its Lua script (TYPE, then LLEN/ZCARD/SCARD/HLEN of one
queue list) and the connection handshake (go-redis ignores a refused CLIENT SETINFO), on rq:queue:* keys.
Key access is full (~, not %R~) because ACL checks EVAL's declared keys as writable; the command list is
what keeps the user read-only (a script runs with its caller's ACL).
*/}}
{{- define "jobengine.redis.aclScript" -}}
{{- $default := "user default reset on >%s ~* &* +@all" }}
{{- range .Values.redis.disabledCommands }}{{ $default = printf "%s -%s" $default . }}{{ end }}
{{- $lines := list (printf "printf '%s\\n' \"$REDIS_PASSWORD\"" $default) }}
{{- if .Values.keda.enabled }}
{{- $keda := printf "user %s reset on >%%s resetchannels -@all +ping +hello +auth +select +eval +evalsha +type +llen +zcard +scard +hlen ~%s ~%s" .Values.redis.kedaUser.name (include "jobengine.queueKey" "*") (include "jobengine.pausedKey" "*") }}
{{- $lines = append $lines (printf "printf '%s\\n' \"$KEDA_PASSWORD\"" $keda) }}
{{- end }}
{{- printf "umask 077 && { %s; } > /run/redis/auth.conf && exec redis-server /etc/redis/redis.conf" (join "; " $lines) }}
{{- end }}

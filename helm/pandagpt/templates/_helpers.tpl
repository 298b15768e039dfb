{{/*
Names, labels, images, secret names and the settings environment are computed
only here; templates include these defines and never rebuild them.
*/}}

{{/* pandagpt.name: the chart name, or nameOverride. */}}
{{- define "pandagpt.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* pandagpt.fullname: the resource name prefix, <release>-<name> unless the release already holds the name. */}}
{{- define "pandagpt.fullname" -}}
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

{{/* pandagpt.componentName: <fullname>-<component>; call with (dict "root" $ "component" "worker"). */}}
{{- define "pandagpt.componentName" -}}
{{- printf "%s-%s" (include "pandagpt.fullname" .root | trunc 55 | trimSuffix "-") .component -}}
{{- end -}}

{{/* pandagpt.chart: chart name and version for the helm.sh/chart label. */}}
{{- define "pandagpt.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* pandagpt.labels: standard labels of every resource; call with (dict "root" $ "component" "gateway"). */}}
{{- define "pandagpt.labels" -}}
helm.sh/chart: {{ include "pandagpt.chart" .root }}
{{ include "pandagpt.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: pandagpt
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* pandagpt.selectorLabels: the immutable subset of labels used by selectors; same arguments as pandagpt.labels, plus "group" for a named worker group. */}}
{{- define "pandagpt.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pandagpt.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- with .group }}
pandagpt.io/worker-group: {{ . }}
{{- end }}
{{- end -}}

{{/* pandagpt.serviceAccountName: the ServiceAccount every pod runs as. */}}
{{- define "pandagpt.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "pandagpt.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* pandagpt.image: a full image reference; call with (dict "root" $ "image" .Values.worker.image). */}}
{{- define "pandagpt.image" -}}
{{- $repo := required "an image repository is required: --set gateway.image.repository=REPO (or worker.image.repository)" .image.repository -}}
{{- with .root.Values.image.registry }}{{ $repo = printf "%s/%s" (trimSuffix "/" .) $repo }}{{ end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{/* pandagpt.imagePullSecrets: the pod's imagePullSecrets block, if any. */}}
{{- define "pandagpt.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* pandagpt.apiKeys.createSecret: "true" when the chart must create the API-key Secret. */}}
{{- define "pandagpt.apiKeys.createSecret" -}}
{{- if and .Values.apiKeys.enabled (not .Values.apiKeys.existingSecret) -}}true{{- end -}}
{{- end -}}

{{/* pandagpt.apiKeys.secretName: the Secret holding the API keys (existing or created). */}}
{{- define "pandagpt.apiKeys.secretName" -}}
{{- default (printf "%s-api-keys" (include "pandagpt.fullname" .)) .Values.apiKeys.existingSecret -}}
{{- end -}}

{{/* pandagpt.apiKeys.secretKey: the key inside that Secret. */}}
{{- define "pandagpt.apiKeys.secretKey" -}}
{{- if .Values.apiKeys.existingSecret -}}{{ .Values.apiKeys.existingSecretKey }}{{- else -}}api-keys{{- end -}}
{{- end -}}

{{/* pandagpt.apiKeys.value: the created Secret's value (one key per line): the given keys, else the stored value, else a new random key. */}}
{{- define "pandagpt.apiKeys.value" -}}
{{- if .Values.apiKeys.keys -}}
{{- join "\n" .Values.apiKeys.keys -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "pandagpt.apiKeys.secretName" .) -}}
{{- if and $existing (index ($existing.data | default dict) "api-keys") -}}
{{- index $existing.data "api-keys" | b64dec -}}
{{- else -}}
{{- printf "sk-%s" (randAlphaNum 40) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* pandagpt.apiKeys.mountPath: where gateways see the API-key Secret. */}}
{{- define "pandagpt.apiKeys.mountPath" -}}
/etc/pandagpt/api-keys
{{- end -}}

{{/* pandagpt.redis.host: host name of the bundled Redis Service. */}}
{{- define "pandagpt.redis.host" -}}
{{- include "pandagpt.componentName" (dict "root" . "component" "redis") -}}
{{- end -}}

{{/* pandagpt.redis.url: the Redis URL without its password. */}}
{{- define "pandagpt.redis.url" -}}
{{- if .Values.redis.enabled -}}
{{- printf "redis://%s:6379/0" (include "pandagpt.redis.host" .) -}}
{{- else -}}
{{- .Values.redis.external.url -}}
{{- end -}}
{{- end -}}

{{/* pandagpt.redis.createSecret: "true" when the chart must create the Redis password Secret. */}}
{{- define "pandagpt.redis.createSecret" -}}
{{- if and .Values.redis.auth.enabled (not .Values.redis.auth.existingSecret) -}}true{{- end -}}
{{- end -}}

{{/* pandagpt.redis.secretName: the Secret holding the Redis password (existing or created). */}}
{{- define "pandagpt.redis.secretName" -}}
{{- default (printf "%s-redis" (include "pandagpt.fullname" .)) .Values.redis.auth.existingSecret -}}
{{- end -}}

{{/* pandagpt.redis.secretKey: the key inside that Secret. */}}
{{- define "pandagpt.redis.secretKey" -}}
{{- if .Values.redis.auth.existingSecret -}}{{ .Values.redis.auth.existingSecretKey }}{{- else -}}redis-password{{- end -}}
{{- end -}}

{{/* pandagpt.redis.password: the created Secret's value: the given password, else the stored one, else a new random one. */}}
{{- define "pandagpt.redis.password" -}}
{{- if .Values.redis.auth.password -}}
{{- .Values.redis.auth.password -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "pandagpt.redis.secretName" .) -}}
{{- if and $existing (index ($existing.data | default dict) "redis-password") -}}
{{- index $existing.data "redis-password" | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* pandagpt.redis.env: env entries giving PANDAGPT_REDIS_URL (password from the Secret via $(REDIS_PASSWORD)). */}}
{{- define "pandagpt.redis.env" -}}
{{- if .Values.redis.auth.enabled }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "pandagpt.redis.secretName" . }}
      key: {{ include "pandagpt.redis.secretKey" . }}
- name: PANDAGPT_REDIS_URL
  value: {{ regexReplaceAll "^(rediss?://)" (include "pandagpt.redis.url" .) "${1}:$(REDIS_PASSWORD)@" | quote }}
{{- else }}
- name: PANDAGPT_REDIS_URL
  value: {{ include "pandagpt.redis.url" . | quote }}
{{- end }}
{{- end -}}

{{/* pandagpt.apiKeys.env: the env entry pointing PANDAGPT_API_KEY_FILE at the mounted Secret, when keys are on. */}}
{{- define "pandagpt.apiKeys.env" -}}
{{- if .Values.apiKeys.enabled }}
- name: PANDAGPT_API_KEY_FILE
  value: {{ printf "%s/%s" (include "pandagpt.apiKeys.mountPath" .) (include "pandagpt.apiKeys.secretKey" .) | quote }}
{{- end }}
{{- end -}}

{{/* pandagpt.workerToken.secretName: the Secret holding the worker token (existing or created). */}}
{{- define "pandagpt.workerToken.secretName" -}}
{{- default (printf "%s-worker-token" (include "pandagpt.fullname" .)) .Values.workerToken.existingSecret -}}
{{- end -}}

{{/* pandagpt.workerToken.secretKey: the key inside that Secret. */}}
{{- define "pandagpt.workerToken.secretKey" -}}
{{- if .Values.workerToken.existingSecret -}}{{ .Values.workerToken.existingSecretKey }}{{- else -}}worker-token{{- end -}}
{{- end -}}

{{/* pandagpt.workerToken.value: the created Secret's value: the stored one, else a new random token. */}}
{{- define "pandagpt.workerToken.value" -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "pandagpt.workerToken.secretName" .) -}}
{{- if and $existing (index ($existing.data | default dict) "worker-token") -}}
{{- index $existing.data "worker-token" | b64dec -}}
{{- else -}}
{{- randAlphaNum 48 -}}
{{- end -}}
{{- end -}}

{{/* pandagpt.workerToken.env: PANDAGPT_WORKER_TOKEN from its Secret, for gateways and workers alike. */}}
{{- define "pandagpt.workerToken.env" -}}
{{- if .Values.workerToken.enabled }}
- name: PANDAGPT_WORKER_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "pandagpt.workerToken.secretName" . }}
      key: {{ include "pandagpt.workerToken.secretKey" . }}
{{- end }}
{{- end -}}

{{/* pandagpt.commonEnv: env of every pandagpt container: environment, shutdown grace = grace period - 10 s (5 s preStop, 5 s slack); call with (dict "root" $ "grace" N). */}}
{{- define "pandagpt.commonEnv" -}}
- name: PANDAGPT_ENVIRONMENT
  value: {{ .root.Values.environment | quote }}
- name: PANDAGPT_SHUTDOWN_GRACE_S
  value: {{ max 0 (sub (int .grace) 10) | quote }}
{{- include "pandagpt.tracing.env" .root }}
{{- end -}}

{{/* pandagpt.tracing.env: the standard OTEL_* variables of every pandagpt container when tracing.endpoint is set (service.name comes from the process: pandagpt-gateway, pandagpt-worker). */}}
{{- define "pandagpt.tracing.env" -}}
{{- with .Values.tracing }}
{{- if .endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ .protocol | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ .sampler | quote }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .samplerArg | toString | quote }}
{{- $attrs := list (printf "service.namespace=%s" $.Release.Namespace) (printf "deployment.environment=%s" $.Values.environment) }}
{{- range $key, $value := .resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%s" $key (toString $value)) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attrs | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* pandagpt.envValue: one value as a quoted env string: maps and lists as JSON, whole floats as integers (YAML files give 67108864 as 6.7108864e+07). */}}
{{- define "pandagpt.envValue" -}}
{{- if or (kindIs "map" .) (kindIs "slice" .) -}}
{{- toJson . | quote -}}
{{- else if and (kindIs "float64" .) (eq . (floor .)) -}}
{{- int64 . | toString | quote -}}
{{- else -}}
{{- toString . | quote -}}
{{- end -}}
{{- end -}}

{{/* pandagpt.settingsEnv: a map of Settings field names to values, as PANDAGPT_<FIELD> env entries (null and "" skipped). */}}
{{- define "pandagpt.settingsEnv" -}}
{{- range $field, $value := . }}
{{- if not (or (kindIs "invalid" $value) (and (kindIs "string" $value) (eq $value ""))) }}
- name: {{ printf "PANDAGPT_%s" (upper $field) }}
  value: {{ include "pandagpt.envValue" $value }}
{{- end }}
{{- end }}
{{- end -}}

{{/* pandagpt.worker.modelDir: PANDAGPT_MODEL_DIR of workers; call with a group's merged weights values. */}}
{{- define "pandagpt.worker.modelDir" -}}
{{- $sub := required "weights.modelSubPath is required: --set weights.modelSubPath=pandagpt" .modelSubPath -}}
{{- printf "%s/%s" (trimSuffix "/" .mountPath) $sub -}}
{{- end -}}

{{/* pandagpt.worker.groups: the worker groups as JSON {"groups": [{"name", "values", "weights"}]}: each of worker.groups merged over worker.* and weights.*; none given: one unnamed group, worker.* itself. */}}
{{- define "pandagpt.worker.groups" -}}
{{- $base := omit .Values.worker "groups" -}}
{{- $groups := list -}}
{{- range .Values.worker.groups -}}
{{- $values := mergeOverwrite (deepCopy $base) (omit . "name" "weights") -}}
{{- $weights := mergeOverwrite (deepCopy $.Values.weights) (deepCopy (.weights | default dict)) -}}
{{- $groups = append $groups (dict "name" .name "values" $values "weights" $weights) -}}
{{- end -}}
{{- if not $groups -}}
{{- $groups = list (dict "name" "" "values" $base "weights" .Values.weights) -}}
{{- end -}}
{{- toJson (dict "groups" $groups) -}}
{{- end -}}

{{/* pandagpt.worker.name: a worker group's resource name, <fullname>-worker[-<group>]; call with (dict "root" $ "group" NAME). */}}
{{- define "pandagpt.worker.name" -}}
{{- $name := include "pandagpt.componentName" (dict "root" .root "component" "worker") -}}
{{- if .group }}{{ printf "%s-%s" $name .group | trunc 63 | trimSuffix "-" }}{{ else }}{{ $name }}{{ end -}}
{{- end -}}

{{/* pandagpt.worker.url: the worker Service URLs gateways use (PANDAGPT_WORKER_URLS), one per group, comma-separated. */}}
{{- define "pandagpt.worker.url" -}}
{{- $urls := list -}}
{{- range (include "pandagpt.worker.groups" . | fromJson).groups -}}
{{- $urls = append $urls (printf "http://%s:%v" (include "pandagpt.worker.name" (dict "root" $ "group" .name)) .values.service.port) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end -}}

{{/* pandagpt.weights.claimName: the claim holding the weights (existing or created). */}}
{{- define "pandagpt.weights.claimName" -}}
{{- default (include "pandagpt.componentName" (dict "root" . "component" "weights")) .Values.weights.persistence.existingClaim -}}
{{- end -}}

{{/* pandagpt.podSecurityContext: the pod security context of every pod. */}}
{{- define "pandagpt.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{/* pandagpt.containerSecurityContext: the container security context of every container. */}}
{{- define "pandagpt.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext -}}
{{- end -}}

{{/* pandagpt.validateValues: collects every cross-field error and fails once, naming each key and its --set fix. */}}
{{- define "pandagpt.validateValues" -}}
{{- $errors := list -}}
{{- if and .Values.worker.autoscaling.keda.enabled .Values.worker.autoscaling.hpa.enabled -}}
{{- $errors = append $errors "worker.autoscaling.keda.enabled and worker.autoscaling.hpa.enabled are both true; pick one: --set worker.autoscaling.hpa.enabled=false" -}}
{{- end -}}
{{- if and (not .Values.redis.enabled) (not .Values.redis.external.url) -}}
{{- $errors = append $errors "redis.enabled=false needs an external Redis: --set redis.external.url=redis://HOST:6379/0 (or --set redis.enabled=true)" -}}
{{- end -}}
{{- if and .Values.redis.enabled .Values.redis.external.url -}}
{{- $errors = append $errors "redis.external.url is set while the bundled Redis is on; choose one: --set redis.enabled=false (or --set redis.external.url=)" -}}
{{- end -}}
{{- if and .Values.redis.external.url (not (regexMatch "^rediss?://" .Values.redis.external.url)) -}}
{{- $errors = append $errors (printf "redis.external.url %q must start with redis:// or rediss://: --set redis.external.url=redis://HOST:6379/0" .Values.redis.external.url) -}}
{{- end -}}
{{- if and .Values.apiKeys.existingSecret .Values.apiKeys.keys -}}
{{- $errors = append $errors "apiKeys.keys and apiKeys.existingSecret are both set; keep one: --set apiKeys.keys=null (or --set apiKeys.existingSecret=)" -}}
{{- end -}}
{{- if and .Values.redis.auth.existingSecret .Values.redis.auth.password -}}
{{- $errors = append $errors "redis.auth.password and redis.auth.existingSecret are both set; keep one: --set redis.auth.password=" -}}
{{- end -}}
{{- if and .Values.gateway.autoscaling.enabled (gt (int .Values.gateway.autoscaling.minReplicas) (int .Values.gateway.autoscaling.maxReplicas)) -}}
{{- $errors = append $errors (printf "gateway.autoscaling.minReplicas (%v) exceeds maxReplicas (%v): --set gateway.autoscaling.maxReplicas=%v" .Values.gateway.autoscaling.minReplicas .Values.gateway.autoscaling.maxReplicas .Values.gateway.autoscaling.minReplicas) -}}
{{- end -}}
{{- with .Values.worker.autoscaling.keda -}}
{{- if and .enabled (gt (int .minReplicaCount) (int .maxReplicaCount)) -}}
{{- $errors = append $errors (printf "worker.autoscaling.keda.minReplicaCount (%v) exceeds maxReplicaCount (%v): --set worker.autoscaling.keda.maxReplicaCount=%v" .minReplicaCount .maxReplicaCount .minReplicaCount) -}}
{{- end -}}
{{- end -}}
{{- with .Values.worker.autoscaling.hpa -}}
{{- if and .enabled (gt (int .minReplicas) (int .maxReplicas)) -}}
{{- $errors = append $errors (printf "worker.autoscaling.hpa.minReplicas (%v) exceeds maxReplicas (%v): --set worker.autoscaling.hpa.maxReplicas=%v" .minReplicas .maxReplicas .minReplicas) -}}
{{- end -}}
{{- end -}}
{{- range $component := list "gateway" "worker" -}}
{{- $values := index $.Values $component -}}
{{- $limit := dig "limits" "memory" "" $values.resources -}}
{{- if not $limit -}}
{{- $errors = append $errors (printf "%s.resources.limits.memory is unset: the %s's memory budget for request data follows the container's limit: --set %s.resources.limits.memory=2Gi" $component $component $component) -}}
{{- else -}}
{{- $budget := index ($values.settings | default dict) "memory_budget_bytes" -}}
{{- $limitBytes := include "pandagpt.memoryBytes" $limit | int64 -}}
{{- if and $budget (gt (mul (int64 $budget) 2) $limitBytes) -}}
{{- $errors = append $errors (printf "%s.settings.memory_budget_bytes (%v) is over half of %s.resources.limits.memory (%s = %v bytes), leaving too little for the process: --set %s.settings.memory_budget_bytes=%v" $component $budget $component $limit $limitBytes $component (div $limitBytes 2)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and .Values.ingress.enabled (not .Values.ingress.hosts) -}}
{{- $errors = append $errors "ingress.enabled=true needs at least one host: --set ingress.hosts[0].host=pandagpt.example.com" -}}
{{- end -}}
{{- if and .Values.ingress.enabled (not .Values.apiKeys.enabled) (ne .Values.environment "dev") -}}
{{- $errors = append $errors (printf "ingress.enabled=true with apiKeys.enabled=false publishes an open API in %q: --set apiKeys.enabled=true (or --set environment=dev)" .Values.environment) -}}
{{- end -}}
{{- if and (not .Values.weights.persistence.enabled) (not .Values.weights.init.enabled) -}}
{{- $errors = append $errors "weights.persistence.enabled=false leaves an empty volume that only the init container fills: --set weights.init.enabled=true (or --set weights.persistence.enabled=true)" -}}
{{- end -}}
{{- if and .Values.weights.init.enabled (not .Values.weights.persistence.enabled) (not .Values.weights.vicuna.existingClaim) -}}
{{- $errors = append $errors "weights.persistence.enabled=false: Vicuna cannot be inside an emptyDir; mount it from a claim: --set weights.vicuna.existingClaim=CLAIM" -}}
{{- end -}}
{{- $groupNames := list -}}
{{- range .Values.worker.groups -}}
{{- if has .name $groupNames -}}
{{- $errors = append $errors (printf "worker.groups has two groups named %q; names must be unique: rename one" .name) -}}
{{- end -}}
{{- $groupNames = append $groupNames .name -}}
{{- end -}}
{{- range (include "pandagpt.worker.groups" . | fromJson).groups -}}
{{- if and .name .values.autoscaling.keda.enabled .values.autoscaling.hpa.enabled -}}
{{- $errors = append $errors (printf "worker group %q enables both KEDA and the HPA; pick one in its autoscaling" .name) -}}
{{- end -}}
{{- end -}}
{{- if and (not .Values.weights.init.mergeLora) (not .Values.worker.engine.enableLora) -}}
{{- $errors = append $errors "weights.init.mergeLora=false writes an unmerged adapter that only a LoRA-enabled engine serves: --set worker.engine.enableLora=true" -}}
{{- end -}}
{{- if $errors -}}
{{- fail (printf "\n\nVALUES VALIDATION:\n  - %s\n" (join "\n  - " $errors)) -}}
{{- end -}}
{{- end -}}

{{/* pandagpt.memoryBytes: a Kubernetes memory quantity ("2Gi", "512M", "1073741824") in bytes. */}}
{{- define "pandagpt.memoryBytes" -}}
{{- $quantity := toString . -}}
{{- $number := regexFind "^[0-9]+" $quantity -}}
{{- $units := dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 -}}
{{- mul (int64 $number) (get $units (trimPrefix $number $quantity) | default 1) -}}
{{- end -}}

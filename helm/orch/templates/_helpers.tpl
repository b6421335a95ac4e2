{{/* Names, labels and shared snippets for the orch chart. */}}

{{- define "orch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "orch.fullname" -}}
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

{{- define "orch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "orch.labels" -}}
helm.sh/chart: {{ include "orch.chart" . }}
app.kubernetes.io/name: {{ include "orch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: include with (dict "ctx" . "component" "api") */}}
{{- define "orch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "orch.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "orch.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{- define "orch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "orch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "orch.apiName" -}}{{ include "orch.fullname" . }}-api{{- end -}}
{{- define "orch.workerName" -}}{{ include "orch.fullname" . }}-worker{{- end -}}
{{- define "orch.configName" -}}{{ include "orch.fullname" . }}-config{{- end -}}
{{- define "orch.postgresqlName" -}}{{ include "orch.fullname" . }}-postgresql{{- end -}}

{{/* Secret and key that hold DATABASE_URL. */}}
{{- define "orch.dbSecretName" -}}
{{- if and .Values.database.existingSecret (not .Values.postgresql.enabled) -}}
{{- .Values.database.existingSecret -}}
{{- else -}}
{{- include "orch.fullname" . }}-db
{{- end -}}
{{- end -}}

{{- define "orch.dbSecretKey" -}}
{{- if and .Values.database.existingSecret (not .Values.postgresql.enabled) -}}
{{- .Values.database.existingSecretKey -}}
{{- else -}}
DATABASE_URL
{{- end -}}
{{- end -}}

{{/* Fails the render when no database is configured. */}}
{{- define "orch.validateDatabase" -}}
{{- if not (or .Values.postgresql.enabled .Values.database.url .Values.database.existingSecret) -}}
{{- fail "orch: set database.url or database.existingSecret, or postgresql.enabled=true to try the chart out" -}}
{{- end -}}
{{- end -}}

{{/* In-chart PostgreSQL password: the value, else the one already stored, else a new one. */}}
{{- define "orch.postgresqlPassword" -}}
{{- if .Values.postgresql.auth.password -}}
{{- .Values.postgresql.auth.password -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (printf "%s-db" (include "orch.fullname" .)) -}}
{{- $data := dict -}}
{{- if $existing -}}
{{- $data = (get $existing "data") | default dict -}}
{{- end -}}
{{- if hasKey $data "POSTGRES_PASSWORD" -}}
{{- get $data "POSTGRES_PASSWORD" | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The migration hook runs only against a database that exists before the release. */}}
{{- define "orch.migrationsByHook" -}}
{{- if and .Values.migrations.hookJob (not .Values.postgresql.enabled) -}}true{{- end -}}
{{- end -}}

{{/*
Per-pod CAF identity. CAF 0.17 node ids hash the MAC addresses, the root
UUID in /etc/fstab and the pid (1 in every container). With a read-only root
filesystem the entrypoint cannot write /etc/fstab, so an init container
writes a random one into an emptyDir and the main container mounts that
file over /etc/fstab (subPath). See docker/entrypoint.sh.
*/}}
{{- define "orch.nodeIdInitContainer" -}}
- name: node-id
  image: {{ .image }}
  imagePullPolicy: {{ .ctx.Values.image.pullPolicy }}
  command: ["/usr/local/bin/orch-entrypoint", "--write-fstab", "/node-id/fstab"]
  securityContext:
    {{- toYaml .ctx.Values.securityContext | nindent 4 }}
  resources:
    requests: {cpu: 10m, memory: 16Mi}
    limits: {memory: 32Mi}
  volumeMounts:
    - name: node-id
      mountPath: /node-id
{{- end -}}

{{- define "orch.nodeIdMount" -}}
- name: node-id
  mountPath: /etc/fstab
  subPath: fstab
  readOnly: true
{{- end -}}

{{- define "orch.nodeIdVolume" -}}
- name: node-id
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- end -}}

{{/* Pipeline catalog: ConfigMap name and the folder its files are mounted in. */}}
{{- define "orch.pipelinesName" -}}{{ include "orch.fullname" . }}-pipelines{{- end -}}
{{- define "orch.pipelinesDir" -}}/etc/orch/pipelines{{- end -}}

{{/*
The catalog's files, each mounted with subPath: a plain file at a stable
path. (A whole-ConfigMap mount is a symlink into a per-pod timestamped
folder; the api-node resolves relative catalog paths with their symlinks,
and the workers run the resulting paths, which must exist in their pods.)
*/}}
{{- define "orch.pipelinesMounts" -}}
{{- if .Values.pipelines }}
- name: pipelines
  mountPath: {{ include "orch.pipelinesDir" . }}/pipelines.yaml
  subPath: pipelines.yaml
  readOnly: true
{{- range $name, $_ := .Values.pipelineFiles }}
- name: pipelines
  mountPath: {{ include "orch.pipelinesDir" $ }}/{{ $name }}
  subPath: {{ $name }}
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}

{{- define "orch.pipelinesVolume" -}}
{{- if .Values.pipelines }}
- name: pipelines
  configMap:
    name: {{ include "orch.pipelinesName" . }}
{{- end }}
{{- end -}}

{{/* The claim that holds WORK_ROOT when work.persistence.enabled. */}}
{{- define "orch.workClaimName" -}}
{{- default (printf "%s-work" (include "orch.fullname" .)) .Values.work.persistence.existingClaim -}}
{{- end -}}

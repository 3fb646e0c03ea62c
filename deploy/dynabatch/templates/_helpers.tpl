{{- define "dynabatch.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dynabatch.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "dynabatch.labels" -}}
{{ include "dynabatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "dynabatch.gpus" -}}
{{- mul (int .Values.model.tensorParallelSize) (int .Values.model.pipelineParallelSize) -}}
{{- end -}}

{{/* Prometheus selector of this release's model series. */}}
{{- define "dynabatch.promSelector" -}}
namespace="{{ .Release.Namespace }}",model="{{ .Values.model.name }}"
{{- end -}}

{{- define "lanes.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "lanes.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "lanes.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lanes.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "lanes.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}


{{- define "lanes.webhookSecret" -}}
{{- default (printf "%s-webhook-cert" (include "lanes.fullname" .)) .Values.webhook.certSecret -}}
{{- end -}}

{{- define "lanes.leaseName" -}}
{{- default (include "lanes.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}

{{- /* Whether the operator serves the trace-affinity module: asked to, and no url given. */ -}}
{{- define "lanes.servesModule" -}}
{{- if and .Values.traceAffinity.serve (not .Values.traceAffinity.url) -}}true{{- end -}}
{{- end -}}

{{- /* Where the operator image carries the module (the Dockerfile copies it there). */ -}}
{{- define "lanes.modulePath" -}}/usr/local/share/lanes/trace-affinity.wasm{{- end -}}

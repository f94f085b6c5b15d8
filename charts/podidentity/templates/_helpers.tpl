{{/* Labels as packages/install/src/labels.ts renders them; managed-by is Helm here. */}}
{{- define "podidentity.labels" -}}
app.kubernetes.io/part-of: podidentity
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "podidentity.isTrue" -}}
{{- if eq (toString .) "true" }}true{{ end -}}
{{- end -}}

{{- define "podidentity.standard" -}}
{{- if eq (toString .Values.operationMode) "standard" }}true{{ end -}}
{{- end -}}

{{/* managed mode implies forceNamespaced, as v1.8's chart passed --forceNamespaced to NMI in managed mode. */}}
{{- define "podidentity.forceNamespaced" -}}
{{- if or (eq (toString .Values.operationMode) "managed") (eq (toString .Values.forceNamespaced) "true") }}true{{ else }}false{{ end -}}
{{- end -}}

{{- define "podidentity.image" -}}
{{- $w := index .root.Values .component -}}
{{- printf "%s/%s:%s" (trimSuffix "/" .root.Values.image.repository) $w.image (default .root.Chart.AppVersion (toString $w.tag)) -}}
{{- end -}}

{{/* Pod scheduling fields; empty ones are left out, as render does. */}}
{{- define "podidentity.scheduling" -}}
{{- $w := index .root.Values .component -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ .name | quote }}
{{- end }}
{{- end }}
{{- with $w.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with $w.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $w.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $w.affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "podidentity.podMetadata" -}}
{{- $w := index .root.Values .component -}}
labels:
  {{- range $k, $v := $w.podLabels }}
  {{ $k }}: {{ $v | quote }}
  {{- end }}
  {{- include "podidentity.labels" .root | nindent 2 }}
  app.kubernetes.io/component: {{ .component }}
  app.kubernetes.io/name: podidentity-{{ .component }}
{{- with $w.podAnnotations }}
annotations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "podidentity.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: http-probe
  initialDelaySeconds: 10
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: http-probe
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
{{- end -}}

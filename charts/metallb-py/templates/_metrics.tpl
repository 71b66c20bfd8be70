{{/*
HTTPS metrics of a component: (dict "root" $ "component" "operator"|"speaker") -> YAML
{port, secret, generated}; port 0: off. This chart's keys (operator.metrics.securePort /
tlsSecret, speaker.metrics.*) win; MetalLB's fill what they leave unset:
prometheus.secureMetricsPort (one port for both components, as MetalLB's chart),
prometheus.{controller,speaker}MetricsTLSSecret, and v0.16's tls.{controller,speaker}MetricsTLSSecret.
No Secret named: the chart generates a self-signed one (MetalLB's kube-rbac-proxy
self-signs in that case).
*/}}
{{- define "metallb-py.metricsTLS" -}}
{{- $v := .root.Values -}}
{{- $prom := $v.prometheus | default dict -}}
{{- $tls := $v.tls | default dict -}}
{{- $ours := ternary $v.operator.metrics $v.speaker.metrics (eq .component "operator") -}}
{{- $theirs := ternary "controller" "speaker" (eq .component "operator") -}}
{{- $port := int ($ours.securePort | default 0) -}}
{{- if and (not $port) (not (kindIs "invalid" $prom.secureMetricsPort)) -}}
{{- $port = int $prom.secureMetricsPort -}}
{{- end -}}
{{- if and $port (eq $port (int $ours.port)) -}}
{{- fail (printf "the HTTPS metrics port of the %s (%d, from %s.metrics.securePort or prometheus.secureMetricsPort) is its plain metrics port (%s.metrics.port): choose another" .component $port .component .component) -}}
{{- end -}}
{{- $key := printf "%sMetricsTLSSecret" $theirs -}}
{{- $secret := $ours.tlsSecret | default (get $prom $key) | default (get $tls $key) | default "" -}}
{{- $generated := false -}}
{{- if and $port (not $secret) -}}
{{- $secret = printf "%s-%s-metrics-tls" (include "metallb-py.fullname" .root) .component -}}
{{- $generated = true -}}
{{- end -}}
port: {{ $port }}
secret: {{ $secret | quote }}
generated: {{ $generated }}
{{- end -}}

{{/* The endpoint fields of a monitor: (dict "tls" <metricsTLS> "tlsConfig" <values or nil>) */}}
{{- define "metallb-py.monitorEndpoint" -}}
{{- if .tls.port -}}
port: metricshttps
path: /metrics
scheme: https
tlsConfig:
  {{- toYaml (.tlsConfig | default (dict "insecureSkipVerify" true)) | nindent 2 }}
{{- else -}}
port: metrics
path: /metrics
scheme: http
{{- end -}}
{{- end -}}

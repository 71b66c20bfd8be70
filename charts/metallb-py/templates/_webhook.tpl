{{/*
The admission webhook's switches. Ours: webhook.enabled (off by default: the API server
must reach the webhook Service, and with failurePolicy Fail an unreachable webhook blocks
every pool change). MetalLB's: controller.webhookMode (disabled turns it off; enabled,
MetalLB's default, is in every copied values file and turns nothing on by itself;
onlywebhook cannot be honoured) and crds.validationFailurePolicy.
*/}}
{{- define "metallb-py.webhook.enabled" -}}
{{- $mode := toString (((.Values.controller | default dict).webhookMode) | default "enabled") -}}
{{- if eq $mode "onlywebhook" -}}
{{- fail "controller.webhookMode=onlywebhook: metallb-py's operator always allocates addresses too; set webhook.enabled=true to serve the webhook from it" -}}
{{- end -}}
{{- $op := include "metallb-py.operatorValues" . | fromYaml -}}
{{- if and .Values.webhook.enabled (ne $mode "disabled") $op.enabled -}}
true
{{- end -}}
{{- end -}}

{{- define "metallb-py.webhook.failurePolicy" -}}
{{- $p := .Values.webhook.failurePolicy | default ((.Values.crds | default dict).validationFailurePolicy) | default "Fail" -}}
{{- if not (has $p (list "Fail" "Ignore")) -}}
{{- fail (printf "webhook.failurePolicy / crds.validationFailurePolicy=%q: use Fail or Ignore" $p) -}}
{{- end -}}
{{- $p -}}
{{- end -}}

{{- define "metallb-py.webhook.serviceName" -}}
{{- printf "%s-webhook" (include "metallb-py.fullname" .) -}}
{{- end -}}

{{- define "metallb-py.webhook.secretName" -}}
{{- .Values.webhook.secretName | default (printf "%s-webhook-cert" (include "metallb-py.fullname" .)) -}}
{{- end -}}

{{/* Where the operator container reads tls.crt / tls.key. */}}
{{- define "metallb-py.webhook.certDir" -}}
/etc/metallb-py/webhook
{{- end -}}

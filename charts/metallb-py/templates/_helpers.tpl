{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "metallb-py.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: the release name, prefixed with the chart name unless it already holds it. */}}
{{- define "metallb-py.fullname" -}}
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

{{- define "metallb-py.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "metallb-py.labels" -}}
helm.sh/chart: {{ include "metallb-py.chart" . }}
app.kubernetes.io/name: {{ include "metallb-py.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: metallb-py
{{- end -}}

{{- define "metallb-py.selectorLabels" -}}
app.kubernetes.io/name: {{ include "metallb-py.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "metallb-py.operator.fullname" -}}
{{- printf "%s-operator" (include "metallb-py.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "metallb-py.speaker.fullname" -}}
{{- printf "%s-speaker" (include "metallb-py.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "metallb-py.operator.serviceAccountName" -}}
{{- $sa := (include "metallb-py.operatorValues" . | fromYaml).serviceAccount -}}
{{- if $sa.create -}}
{{- default (include "metallb-py.operator.fullname" .) $sa.name -}}
{{- else -}}
{{- default "default" $sa.name -}}
{{- end -}}
{{- end -}}

{{- define "metallb-py.speaker.serviceAccountName" -}}
{{- if .Values.speaker.serviceAccount.create -}}
{{- default (include "metallb-py.speaker.fullname" .) .Values.speaker.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.speaker.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "metallb-py.memberlistSecretName" -}}
{{- /* speaker.secretName: MetalLB's name for it */ -}}
{{- .Values.speaker.memberlist.secretName | default .Values.speaker.secretName | default (printf "%s-memberlist" (include "metallb-py.fullname" .)) | trunc 253 -}}
{{- end -}}

{{/*
ClusterRoles are cluster-scoped: their names carry the release namespace as well, so
the same release name in two namespaces does not collide.
*/}}
{{- define "metallb-py.clusterRoleName" -}}
{{- printf "%s:%s:%s" (include "metallb-py.fullname" .root) .root.Release.Namespace .component -}}
{{- end -}}

{{- define "metallb-py.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
Speaker affinity: the user's affinity, plus (when excludeFromExternalLoadBalancersLabel
is on and MetalLB's speaker.ignoreExcludeLB is not) "label node.kubernetes.io/exclude-from-external-load-balancers does not exist"
added to every required node-selector term (terms are ORed, so each needs it).
*/}}
{{- define "metallb-py.speaker.affinity" -}}
{{- $affinity := deepCopy (default dict .Values.speaker.affinity) -}}
{{- if not (include "metallb-py.speaker.ignoreExcludeLB" .) -}}
{{- $expr := dict "key" "node.kubernetes.io/exclude-from-external-load-balancers" "operator" "DoesNotExist" -}}
{{- $nodeAffinity := default dict $affinity.nodeAffinity -}}
{{- $required := default dict (get $nodeAffinity "requiredDuringSchedulingIgnoredDuringExecution") -}}
{{- $terms := list -}}
{{- range (default list $required.nodeSelectorTerms) -}}
{{- $exprs := append (default list .matchExpressions) $expr -}}
{{- $terms = append $terms (merge (dict "matchExpressions" $exprs) (omit . "matchExpressions")) -}}
{{- end -}}
{{- if not $terms -}}
{{- $terms = list (dict "matchExpressions" (list $expr)) -}}
{{- end -}}
{{- $_ := set $required "nodeSelectorTerms" $terms -}}
{{- $_ := set $nodeAffinity "requiredDuringSchedulingIgnoredDuringExecution" $required -}}
{{- $_ := set $affinity "nodeAffinity" $nodeAffinity -}}
{{- end -}}
{{- if $affinity -}}
{{- toYaml $affinity -}}
{{- end -}}
{{- end -}}

{{/* The CRDs of charts/crds (the repository's crds/ directory), by name. */}}
{{- define "metallb-py.crdNames" -}}
bfdprofiles.metallb.io bgpadvertisements.metallb.io bgppeers.metallb.io bgpsessionstates.metallb.io communities.metallb.io ipaddresspools.metallb.io l2advertisements.metallb.io servicebgpstatuses.metallb.io servicel2statuses.metallb.io
{{- end -}}

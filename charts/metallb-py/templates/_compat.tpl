{{/*
MetalLB's chart layout, read next to this chart's own. Every MetalLB key either maps to
what metallb-py does, is accepted and ignored because it only concerns MetalLB's BGP /
FRR / webhook parts (listed by "metallb-py.ignoredKeys", shown in NOTES), or fails the
install with a message naming the key ("metallb-py.validate").
*/}}

{{/* A log level, MetalLB's names included, as our components' --log-level takes it. */}}
{{- define "metallb-py.mapLogLevel" -}}
{{- $map := dict "all" "debug" "debug" "debug" "info" "info" "warn" "warning" "warning" "warning" "error" "error" "none" "critical" -}}
{{- $level := toString . -}}
{{- if not (hasKey $map $level) -}}
{{- fail (printf "log level %q: use one of all, debug, info, warn, warning, error, none" $level) -}}
{{- end -}}
{{- get $map $level -}}
{{- end -}}

{{/* --log-level of a component: (dict "root" $ "values" <controller or speaker values>) */}}
{{- define "metallb-py.componentLogLevel" -}}
{{- $level := .root.Values.logLevel -}}
{{- with .values.logLevel }}{{ $level = . }}{{ end -}}
{{- include "metallb-py.mapLogLevel" $level -}}
{{- end -}}

{{/* MetalLB's own image repositories count as "not set": they hold Go binaries. */}}
{{- define "metallb-py.metallbImages" -}}
quay.io/metallb/controller quay.io/metallb/speaker
{{- end -}}

{{/* image of a component: (dict "root" $ "image" <controller.image or speaker.image>) */}}
{{- define "metallb-py.componentImage" -}}
{{- $root := .root -}}
{{- $img := .image | default dict -}}
{{- $repo := $root.Values.image.repository -}}
{{- $tag := $root.Values.image.tag | default $root.Chart.AppVersion -}}
{{- if and $img.repository (not (has $img.repository (splitList " " (include "metallb-py.metallbImages" $root)))) -}}
{{- $repo = $img.repository -}}
{{- $tag = $img.tag | default $tag -}}
{{- else if $img.tag -}}
{{- $tag = $img.tag -}}
{{- end -}}
{{- printf "%s:%s" $repo (toString $tag) -}}
{{- end -}}

{{- define "metallb-py.componentPullPolicy" -}}
{{- $img := .image | default dict -}}
{{- $img.pullPolicy | default .root.Values.image.pullPolicy -}}
{{- end -}}

{{/*
The operator's values: `operator.*`, with MetalLB's `controller.*` keys merged over them
(a key set under controller wins; empty ones change nothing). Returned as YAML.
*/}}
{{- define "metallb-py.operatorValues" -}}
{{- $c := .Values.controller | default dict -}}
{{- $picked := pick $c "strategy" "serviceAccount" "securityContext" "resources" "nodeSelector" "tolerations" "priorityClassName" "runtimeClassName" "affinity" "podAnnotations" "labels" "livenessProbe" "readinessProbe" "startupProbe" "extraContainers" -}}
{{- $op := mergeOverwrite (deepCopy .Values.operator) (deepCopy $picked) -}}
{{- $_ := set $op "enabled" (ne (toString (get $c "enabled")) "false") -}}
{{- toYaml $op -}}
{{- end -}}

{{- define "metallb-py.lbClass" -}}
{{- $ours := .Values.lbClass | default "" -}}
{{- $theirs := .Values.loadBalancerClass | default "" -}}
{{- if and $ours $theirs (ne $ours $theirs) -}}
{{- fail (printf "lbClass=%q and loadBalancerClass=%q differ: loadBalancerClass is MetalLB's name for lbClass; set only one" $ours $theirs) -}}
{{- end -}}
{{- $ours | default $theirs -}}
{{- end -}}

{{/* The speaker starts with --ignore-exclude-lb (and runs on labelled nodes). */}}
{{- define "metallb-py.speaker.ignoreExcludeLB" -}}
{{- if or .Values.speaker.ignoreExcludeLB (not .Values.speaker.excludeFromExternalLoadBalancersLabel) -}}
true
{{- end -}}
{{- end -}}

{{/*
An HTTP probe on the metrics port: (dict "probe" <values> "path" "/livez" "key" "speaker.livenessProbe" "port" 7473)
MetalLB's probes name a separate health port (17472 by default); metallb-py answers
/livez and /readyz on its metrics port, so `port` is accepted only as that port or
MetalLB's default.
*/}}
{{- define "metallb-py.probe" -}}
{{- $p := .probe -}}
{{- if and (hasKey $p "port") (not (kindIs "invalid" $p.port)) -}}
{{- $port := toString $p.port -}}
{{- if not (has $port (list "17472" "metrics" (toString .port))) -}}
{{- fail (printf "%s.port=%s: metallb-py answers /livez and /readyz on the metrics port (%d); remove the key or set it to that port" .key $port (int .port)) -}}
{{- end -}}
{{- end -}}
httpGet:
  path: {{ .path }}
  port: metrics
{{- range $k := list "initialDelaySeconds" "periodSeconds" "timeoutSeconds" "successThreshold" "failureThreshold" }}
{{- if and (hasKey $p $k) (not (kindIs "invalid" (get $p $k))) }}
{{ $k }}: {{ get $p $k }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Tolerations of the speaker: MetalLB's tolerateMaster pair, then `tolerations`. */}}
{{- define "metallb-py.speaker.tolerations" -}}
{{- $t := list -}}
{{- if .Values.speaker.tolerateMaster -}}
{{- $t = append $t (dict "key" "node-role.kubernetes.io/control-plane" "operator" "Exists" "effect" "NoSchedule") -}}
{{- $t = append $t (dict "key" "node-role.kubernetes.io/master" "operator" "Exists" "effect" "NoSchedule") -}}
{{- end -}}
{{- range .Values.speaker.tolerations -}}
{{- if not (has . $t) -}}
{{- $t = append $t . -}}
{{- end -}}
{{- end -}}
{{- if $t -}}
{{- toYaml $t -}}
{{- end -}}
{{- end -}}

{{/*
MetalLB keys accepted and ignored (no effect here): one "key: why" line each, for NOTES.
*/}}
{{- define "metallb-py.ignoredKeys" -}}
{{- $v := .Values -}}
{{- $c := $v.controller | default dict -}}
{{- if and (eq (toString $c.webhookMode) "enabled") (not $v.webhook.enabled) }}
controller.webhookMode=enabled: the admission webhook is served only with webhook.enabled=true (the API server must reach it; see values.yaml)
{{- end }}
{{- if and (($v.crds | default dict).validationFailurePolicy) (not $v.webhook.enabled) }}
crds.validationFailurePolicy: applies with webhook.enabled=true
{{- end }}
{{- $fk := $v.frrk8s | default dict }}
{{- if and $fk.enabled (not $fk.external) }}
frrk8s.enabled: BGP mode runs FRR beside the speaker (as speaker.frr.enabled), not frr-k8s
{{- end }}
{{- if $fk.external }}
frrk8s.external: no external frr-k8s is used; BGP mode is speaker.frr.enabled (FRR beside the speaker)
{{- end }}
{{- if (($v.speaker.frr | default dict).image | default dict).repository }}
speaker.frr.image: the frr container runs the speaker's image (its vtysh must match FRR's daemons)
{{- end }}
{{- range $k := list "tlsMinVersion" "tlsCipherSuites" }}
{{- if get $c $k }}
controller.{{ $k }}: TLS settings are Python's defaults (TLS 1.2 or newer), metrics over HTTP
{{- end }}
{{- end }}
{{- if (($v.prometheus | default dict).rbacProxy) }}
prometheus.rbacProxy: no kube-rbac-proxy (the components serve HTTPS themselves on prometheus.secureMetricsPort)
{{- end }}
{{- if hasKey $v "frr-k8s" }}
frr-k8s: no frr-k8s subchart (BGP mode runs FRR beside the speaker: speaker.frr.enabled)
{{- end }}
{{- if (($v.prometheus | default dict).prometheusRule | default dict).bgpSessionDown }}
prometheus.prometheusRule.bgpSessionDown: no BGP alert rule is rendered (the metallb_bgp_session_up series exist)
{{- end }}
{{- $secure := or (include "metallb-py.metricsTLS" (dict "root" . "component" "operator") | fromYaml).port (include "metallb-py.metricsTLS" (dict "root" . "component" "speaker") | fromYaml).port }}
{{- range $k := list "podMonitor" "serviceMonitor" }}
{{- $m := (get ($v.prometheus | default dict) $k) | default dict }}
{{- if and (not $secure) (or $m.tlsConfig ($m.speaker | default dict).tlsConfig ($m.controller | default dict).tlsConfig) }}
prometheus.{{ $k }}.tlsConfig: metrics are plain HTTP (no prometheus.secureMetricsPort)
{{- end }}
{{- end }}
{{- with $v.speaker.memberlist }}
{{- if .mlSecretKeyPath }}
speaker.memberlist.mlSecretKeyPath: the speaker reads the memberlist Secret through the API
{{- end }}
{{- end }}
{{- end -}}

{{/* Fail, naming the key, on MetalLB settings metallb-py cannot honour. */}}
{{- define "metallb-py.validate" -}}
{{- $v := .Values -}}
{{- $c := $v.controller | default dict -}}
{{- $s := $v.speaker -}}
{{- $_ := include "metallb-py.lbClass" . -}}
{{- range $comp, $vals := dict "controller" $c "speaker" $s -}}
{{- if $vals.command -}}
{{- fail (printf "%s.command=%v: metallb-py's image runs its own commands (metallb-operator, metallb-speaker); MetalLB's binaries are not in it. Remove the key." $comp $vals.command) -}}
{{- end -}}
{{- end -}}
{{- range $k, $val := ($v.tls | default dict) -}}
{{- if and $val (not (has $k (list "controllerMetricsTLSSecret" "speakerMetricsTLSSecret"))) -}}
{{- fail (printf "tls.%s: not configurable: metallb-py's HTTPS metrics (prometheus.secureMetricsPort) use Python's TLS defaults (TLS 1.2 or newer). Remove the key." $k) -}}
{{- end -}}
{{- end -}}
{{- $prom := $v.prometheus | default dict -}}
{{- if and (hasKey $prom "metricsPort") (not (kindIs "invalid" $prom.metricsPort)) (not (has (int $prom.metricsPort) (list 7472 9120))) -}}
{{- fail (printf "prometheus.metricsPort=%v (MetalLB's defaults 7472 and 9120 are accepted): metallb-py's metrics are plain HTTP on operator.metrics.port (7472) and speaker.metrics.port (7473); set those instead." $prom.metricsPort) -}}
{{- end -}}
{{- if and $prom.serviceMonitor.enabled $prom.podMonitor.enabled -}}
{{- fail "prometheus.serviceMonitor.enabled and prometheus.podMonitor.enabled cannot both be set (as in MetalLB's chart)" -}}
{{- end -}}
{{- if and $prom.serviceMonitor.enabled (not $v.operator.metrics.service.enabled) -}}
{{- fail "prometheus.serviceMonitor.enabled needs operator.metrics.service.enabled (the ServiceMonitor selects the metrics Services)" -}}
{{- end -}}
{{- if and $prom.serviceMonitor.enabled $s.enabled (not $s.metrics.service.enabled) -}}
{{- fail "prometheus.serviceMonitor.enabled needs speaker.metrics.service.enabled (the ServiceMonitor selects the metrics Services)" -}}
{{- end -}}
{{- if $v.configInline -}}
{{- fail "configInline: MetalLB >= 0.13 refuses it too. Convert it to IPAddressPools and L2Advertisements: `metallbctl convert -f configmap.yaml`." -}}
{{- end -}}
{{- if $s.wanConfig -}}
{{- fail "speaker.wanConfig: the speakers' gossip has no WAN profile (its timings are tuned for one L2 segment). Remove the key." -}}
{{- end -}}
{{- if eq (toString ($s.memberlist | default dict).enabled) "false" -}}
{{- fail "speaker.memberlist.enabled=false: metallb-py's speakers always gossip with each other to elect the announcing node (there is no Kubernetes-only mode). Remove the key." -}}
{{- end -}}
{{- if eq (toString ($s.excludeInterfaces | default dict).enabled) "false" -}}
{{- fail "speaker.excludeInterfaces.enabled=false: the speaker always skips docker*, veth*, cali*, kube-ipvs*, lxc*, cni*, flannel*, vxlan*, tunl* and lo (built in, no switch). Remove the key." -}}
{{- end -}}
{{- end -}}

{{/*
BGP mode: FRR beside the speaker. MetalLB's speaker.frr.enabled (FRR mode) or its
frrk8s.enabled (frr-k8s, its default since v0.16) both mean "speak BGP" to a user.
*/}}
{{- define "metallb-py.bgpMode" -}}
{{- $fk := .Values.frrk8s | default dict -}}
{{- if or ((.Values.speaker.frr | default dict).enabled) (and $fk.enabled (not $fk.external)) }}true{{ end -}}
{{- end }}

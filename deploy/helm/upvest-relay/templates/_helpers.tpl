{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "upvest-relay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, with the chart name unless it already contains it. */}}
{{- define "upvest-relay.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "upvest-relay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "upvest-relay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "upvest-relay.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "upvest-relay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The image reference: a digest if given, else the tag (default appVersion); never latest. */}}
{{- define "upvest-relay.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if eq $tag "latest" }}
{{- fail "image.tag: pin a released version (the chart's appVersion by default), not latest" }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "upvest-relay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "upvest-relay.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret with the Upvest client secret and signing key, or "" when there is none. */}}
{{- define "upvest-relay.upvestSecret" -}}
{{- if .Values.upvest.existingSecret }}
{{- .Values.upvest.existingSecret }}
{{- else if or .Values.upvest.clientSecret .Values.upvest.signingKey }}
{{- printf "%s-upvest" (include "upvest-relay.fullname" .) }}
{{- end }}
{{- end }}

{{/* The ConfigMap with the static JWKS, or "" when the relay fetches the keys. */}}
{{- define "upvest-relay.verifyKeysConfigMap" -}}
{{- if .Values.verifyKeys.existingConfigMap }}
{{- .Values.verifyKeys.existingConfigMap }}
{{- else if .Values.verifyKeys.jwks }}
{{- printf "%s-verify-keys" (include "upvest-relay.fullname" .) }}
{{- end }}
{{- end }}

{{/* Mount points of the files the relay reads. */}}
{{- define "upvest-relay.paths" -}}
upvest: /etc/upvest-relay/upvest
verifyKeys: /etc/upvest-relay/verify-keys
tls: /etc/upvest-relay/tls
nats: /etc/upvest-relay/nats
natsTLS: /etc/upvest-relay/nats-tls
{{- end }}

{{/* Refuses values the relay would refuse at start, with the reason. */}}
{{- define "upvest-relay.validate" -}}
{{- if not .Values.nats.url }}
{{- fail "nats.url: required; the chart runs the relay against a NATS JetStream cluster (see deploy/nats/values.yaml)" }}
{{- end }}
{{- $secret := include "upvest-relay.upvestSecret" . }}
{{- if and .Values.config.webhookURL (not (and .Values.upvest.clientID .Values.upvest.signingKeyID $secret)) }}
{{- fail "config.webhookURL needs upvest.clientID, upvest.signingKeyID and the client secret and signing key (upvest.existingSecret)" }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) }}
{{- fail "tls.enabled needs tls.existingSecret (a kubernetes.io/tls Secret)" }}
{{- end }}
{{- if and .Values.nats.tls.enabled (not .Values.nats.tls.existingSecret) }}
{{- fail "nats.tls.enabled needs nats.tls.existingSecret" }}
{{- end }}
{{- if ne (empty .Values.nats.tls.cert) (empty .Values.nats.tls.key) }}
{{- fail "nats.tls.cert and nats.tls.key: set both (client certificate) or neither" }}
{{- end }}
{{- if and .Values.config.webhookURL (not (hasSuffix .Values.config.webhookPath .Values.config.webhookURL)) }}
{{- fail (printf "config.webhookURL %q must end in config.webhookPath %q (the proxy must not rewrite the signed path)" .Values.config.webhookURL .Values.config.webhookPath) }}
{{- end }}
{{- end }}

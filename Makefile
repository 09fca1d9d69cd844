GO       ?= go
BIN      ?= bin/relay
PKGS     ?= ./...
FUZZTIME ?= 3s
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)

.PHONY: help build test lint deploy-check fuzz run demo docker bench load examples chaos

.DEFAULT_GOAL := build

## help: list the targets with what they do
help:
	@awk '/^## [a-z-]+:/ { sub(/^## /, ""); n = index($$0, ":"); printf "  %-13s %s\n", substr($$0, 1, n - 1), substr($$0, n + 2) }' $(MAKEFILE_LIST)

## build: static relay binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/relay

## test: lint, deploy-check, race-enabled tests, then every fuzz target briefly
test: lint deploy-check
	$(GO) test -race -count=1 $(PKGS)
	$(MAKE) fuzz FUZZTIME=$(FUZZTIME)

# Linters, pinned, installed into bin/tools by go install when missing.
TOOLS               ?= $(CURDIR)/bin/tools
STATICCHECK_VERSION := v0.8.2
ERRORLINT_VERSION   := v1.9.1
BODYCLOSE_VERSION   := v0.0.0-20260723120731-857993a2939c

$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
$(TOOLS)/go-errorlint:
	GOBIN=$(TOOLS) $(GO) install codeberg.org/polyfloyd/go-errorlint@$(ERRORLINT_VERSION)
$(TOOLS)/bodyclose:
	GOBIN=$(TOOLS) $(GO) install github.com/timakin/bodyclose@$(BODYCLOSE_VERSION)

## lint: gofmt, go vet, staticcheck, errorlint (errors.Is/As, %w) and bodyclose
lint: $(TOOLS)/staticcheck $(TOOLS)/go-errorlint $(TOOLS)/bodyclose
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo 'gofmt: files above need formatting'; exit 1; }
	$(GO) vet $(PKGS)
	$(TOOLS)/staticcheck $(PKGS)
	$(TOOLS)/go-errorlint $(PKGS)
	$(TOOLS)/bodyclose $(PKGS)

# Deployment tools, pinned, installed into bin/tools by go install when
# missing. promtool is built without Prometheus's service-discovery plugins
# (remove_all_sd), which checking and testing rules does not need: about 40%
# less build time from a cold build cache.
HELM_VERSION     := v4.3.2
PROMTOOL_VERSION := v0.316.0
CHART            := deploy/helm/upvest-relay
HELM             := $(TOOLS)/helm

$(TOOLS)/helm:
	GOBIN=$(TOOLS) $(GO) install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)
$(TOOLS)/promtool:
	GOBIN=$(TOOLS) $(GO) install -tags remove_all_sd github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)

## deploy-check: offline: helm lint and template the chart (default and cluster values), promtool check and test the alert rules
deploy-check: $(TOOLS)/helm $(TOOLS)/promtool
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) -f $(CHART)/ci/cluster-values.yaml
	$(HELM) template relay $(CHART) >/dev/null
	$(HELM) template relay $(CHART) -f $(CHART)/ci/cluster-values.yaml >/dev/null
	@if $(HELM) template relay $(CHART) --set image.tag=latest >/dev/null 2>&1; then echo 'helm template: image.tag=latest was accepted'; exit 1; fi
	$(TOOLS)/promtool check rules $(CHART)/files/relay-rules.yaml
	$(TOOLS)/promtool test rules deploy/prometheus/relay-rules_test.yaml

## fuzz: run each native fuzz target for FUZZTIME
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

## run: the relay on embedded defaults
run:
	$(GO) run ./cmd/relay demo

demo: run

## bench: Go benchmarks
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## load: the relay process against JetStream's own floor (docs/performance.md); LOADFLAGS e.g. -runs 5 -scenarios parallel16-20
load: build
	$(GO) run ./cmd/relay-load -relay $(BIN) $(LOADFLAGS)

## examples: build and run the example consumer's test against an embedded JetStream
examples:
	$(GO) test -race -count=1 ./examples/...

## docker: container image tagged and stamped with VERSION (needs a Docker engine)
docker:
	docker build --build-arg VERSION=$(VERSION) -t upvest-relay:$(VERSION) .

NATS_SERVER_VERSION = $(shell $(GO) list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2)
CHAOSFLAGS ?=

$(TOOLS)/nats-server: go.mod
	GOBIN=$(TOOLS) $(GO) install github.com/nats-io/nats-server/v2@$(NATS_SERVER_VERSION)

## chaos: fault campaign on a real 3-node nats-server cluster with two relay replicas (10 min; CHAOSFLAGS e.g. -duration 2m)
chaos: build $(TOOLS)/nats-server
	$(GO) run ./cmd/relay-chaos -relay $(BIN) -nats-server $(TOOLS)/nats-server $(CHAOSFLAGS)

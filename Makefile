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
		examples/jobengine-example-jobs/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r services/api/requirements.txt -r services/worker/requirements.txt -r requirements-dev.txt
	$(PIP) install -q --no-deps -e libs/jobengine -e services/api -e services/worker -e examples/jobengine-example-jobs
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create the virtualenv with the pinned packages

.PHONY: run
run: venv ## Run API (127.0.0.1:8000) + one worker + Redis (embedded unless REDIS_URL is set); Ctrl-C stops all
	$(PY) scripts/run_local.py

##@ Tests
.PHONY: test
test: venv ## Run the whole test suite (starts its own redis-server, API and worker processes)
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: venv ## Run the unit tests only
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

##@ Housekeeping
.PHONY: clean
clean: ## Remove the virtualenv, tools and run artefacts
	rm -rf $(VENV) .tools .run .pytest_cache

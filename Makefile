# Developer entry points. Everything runs through uv in the workspace venv;
# Kafka and Redis run as local processes (no Docker), see tools/devstack.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
# Targets such as `test` and `demo` chain steps that must run in order.
.NOTPARALLEL:

export UV_PYTHON_DOWNLOADS ?= never
# The browser tests drive Debian's chromium; Playwright must never fetch a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD ?= 1
# `pip install --user uv` puts uv here on machines without it.
export PATH := $(HOME)/.local/bin:$(PATH)

DEVSTACK := uv run python -m tributary_devstack
REPLICAS ?=
SERVICE ?=
N ?= 40
PYTEST_ARGS ?=

.PHONY: help setup inspector inspector-screenshots up down status logs scale lint typecheck test demo docs docs-check

help:
	@echo "make setup                   system packages (redis-server, uv, node, chromium) + uv sync + the inspector's build"
	@echo "make inspector               build the web inspector (ui/) that the gateway serves at /ui"
	@echo "make inspector-screenshots   refresh docs/images/inspector-*.png from a browser test"
	@echo "make up [REPLICAS=N]         start Kafka, Redis, LLM and the services"
	@echo "make down                    stop everything 'up' started"
	@echo "make status                  components, pids, ports, logs"
	@echo "make logs [SERVICE=name]     tail logs (N=lines)"
	@echo "make scale SERVICE=agent-runner REPLICAS=3"
	@echo "make lint | typecheck | test | demo"
	@echo "make docs                    regenerate every generated document under docs/"
	@echo "make docs-check              fail if a generated document differs from the code"

setup:
	bash scripts/install-system-deps.sh
	@if [ -f uv.lock ]; then \
		uv sync --all-packages --frozen; \
	else \
		uv sync --all-packages; \
	fi
	$(MAKE) inspector

# The web inspector: node packages from ui/package-lock.json, then the static build the
# gateway serves under /ui (services/gateway/src/tributary_gateway/inspector_build).
inspector:
	npm ci --prefix ui --no-audit --no-fund
	npm run --prefix ui build

# The README's screenshots: the browser test on the live test stack, saving its pages.
inspector-screenshots:
	TRIBUTARY_INSPECTOR_SCREENSHOTS=docs/images uv run pytest -q -p no:cacheprovider \
		tests/integration/test_inspector_browser_e2e.py::test_inspector_lists_and_follows_a_workflow_live

up:
	$(DEVSTACK) up $(if $(REPLICAS),--replicas $(REPLICAS))

down:
	$(DEVSTACK) down

status:
	$(DEVSTACK) status

logs:
	$(DEVSTACK) logs $(SERVICE) -n $(N)

scale:
	@if [ -z "$(SERVICE)" ] || [ -z "$(REPLICAS)" ]; then \
		echo "usage: make scale SERVICE=<planner|agent-runner|synthesizer|gateway> REPLICAS=<n>" >&2; \
		exit 2; \
	fi
	$(DEVSTACK) scale $(SERVICE) $(REPLICAS)

lint:
	uv run ruff check .
	uv run ruff format --check .

typecheck:
	uv run mypy shared/src shared/devtools/src services/*/src tools/*/src cli/src clients/python/src tests bench
	npm run --prefix ui --silent typecheck

# pytest exits 5 when it collected no tests; an empty run must not pass.
test: setup lint typecheck
	@rc=0; uv run pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

demo: setup up
	$(DEVSTACK) demo

# Documents generated from the code (configuration, event contract, ...); the
# list is tributary_devtools.documents.generated_files().
docs:
	uv run python -m tributary_devtools write

docs-check:
	uv run python -m tributary_devtools check

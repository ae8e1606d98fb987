# Developer entry points. Everything runs through uv in the workspace venv;
# Kafka and Redis run as local processes (no Docker), see tools/devstack.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
# Targets such as `test` and `demo` chain steps that must run in order.
.NOTPARALLEL:

export UV_PYTHON_DOWNLOADS ?= never
# `pip install --user uv` puts uv here on machines without it.
export PATH := $(HOME)/.local/bin:$(PATH)

DEVSTACK := uv run python -m tributary_devstack
REPLICAS ?=
SERVICE ?=
N ?= 40
PYTEST_ARGS ?=

.PHONY: help setup up down status logs scale lint typecheck test demo docs docs-check

help:
	@echo "make setup                   system packages (redis-server, uv) + uv sync"
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

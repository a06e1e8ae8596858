# Two commands for a fresh machine: `make start` (local services, one node, sample data
# flowing) and `make test` (local services, every test). Deno 2.9.6 is installed from npm
# into .tools/ when no `deno` is on the PATH.
SHELL := /bin/bash
DENO_VERSION := 2.9.6
DENO := $(shell command -v deno 2>/dev/null || echo $(CURDIR)/.tools/node_modules/.bin/deno)
SAMPLE_RATE ?= 20
# The local Prometheus that `make start` runs (deploy/local/prometheus.sh).
PROMETHEUS_PORT ?= 9090

.DEFAULT_GOAL := help
.PHONY: help start test check bench infra-up infra-down deps migrate prometheus

help: ## list every target with what it does
	@grep -hE '^[a-z][a-zA-Z_-]*:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(CURDIR)/.tools/node_modules/.bin/deno:
	npm install --no-audit --no-fund --prefix .tools deno@$(DENO_VERSION)

deps: $(if $(shell command -v deno 2>/dev/null),,$(CURDIR)/.tools/node_modules/.bin/deno) ## install Deno if missing, and the npm packages pinned by deno.lock
	$(DENO) install --frozen

infra-up: ## start the local Kafka, ClickHouse, PostgreSQL and Redis (idempotent)
	bash deploy/local/up.sh

infra-down: ## stop the local Kafka, ClickHouse and Prometheus (only what up/start started)
	bash deploy/local/down.sh

prometheus: ## start the local Prometheus scraping the node, on PROMETHEUS_PORT (default 9090)
	set -a; source config/default.env.example; set +a; \
	PROMETHEUS_PORT=$(PROMETHEUS_PORT) bash deploy/local/prometheus.sh

migrate: deps infra-up ## apply the PostgreSQL and ClickHouse migrations
	set -a; source config/default.env.example; set +a; $(DENO) task migrate

# One node in the foreground (Ctrl-C stops it cleanly) with the sample generator feeding
# Bronze topics in the background, and a local Prometheus scraping the node.
start: deps infra-up prometheus ## services, migrations, sample data and one node on port 8080; graph at localhost:9090
	set -a; source config/default.env.example; set +a; \
	$(DENO) task migrate && \
	{ $(DENO) task generate --seed-refdata --rate $(SAMPLE_RATE) --count 0 >/dev/null 2>generate.log & gen=$$!; \
	  trap 'kill $$gen 2>/dev/null' EXIT; \
	  $(DENO) task start; }

test: deps infra-up ## services up, then every unit and integration test
	$(DENO) task test

check: deps ## lint, format check, type check
	$(DENO) task check

bench: deps infra-up ## end-to-end benchmark (docs/benchmarks.md)
	$(DENO) task bench

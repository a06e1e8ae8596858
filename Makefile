# Two commands for a fresh machine: `make start` (local services, one node, sample data
# flowing) and `make test` (local services, every test). Deno 2.9.6 is installed from npm
# into .tools/ when no `deno` is on the PATH.
SHELL := /bin/bash
DENO_VERSION := 2.9.6
DENO := $(shell command -v deno 2>/dev/null || echo $(CURDIR)/.tools/node_modules/.bin/deno)
SAMPLE_RATE ?= 20

.PHONY: start test check bench infra-up infra-down deps migrate

$(CURDIR)/.tools/node_modules/.bin/deno:
	npm install --no-audit --no-fund --prefix .tools deno@$(DENO_VERSION)

# Installs Deno if missing and the npm packages pinned by deno.lock.
deps: $(if $(shell command -v deno 2>/dev/null),,$(CURDIR)/.tools/node_modules/.bin/deno)
	$(DENO) install --frozen

infra-up:
	bash deploy/local/up.sh

infra-down:
	bash deploy/local/down.sh

migrate: deps infra-up
	set -a; source config/default.env.example; set +a; $(DENO) task migrate

# One node in the foreground (Ctrl-C stops it cleanly) with the sample generator feeding
# Bronze topics in the background.
start: deps infra-up
	set -a; source config/default.env.example; set +a; \
	$(DENO) task migrate && \
	{ $(DENO) task generate --seed-refdata --rate $(SAMPLE_RATE) --count 0 >/dev/null 2>generate.log & gen=$$!; \
	  trap 'kill $$gen 2>/dev/null' EXIT; \
	  $(DENO) task start; }

test: deps infra-up
	$(DENO) task test

check: deps
	$(DENO) task check

bench: deps infra-up
	$(DENO) task bench

# bourse: the two commands are `make demo` and `make test`; both set everything up.
SHELL := /bin/bash
DURATION ?= 60
CLIENTS ?= 40
# make demo MODE=stream: order-entry sessions (SESSIONS x WINDOW commands in flight)
# instead of the original test's unary clients.
MODE ?= unary
SESSIONS ?= 4
WINDOW ?= 1000
BAZEL ?= bazel

.PHONY: setup build test demo floor up shards snapshot halt resume risk image lock clean

setup:
	@tools/setup.sh

build: setup
	$(BAZEL) build //...

# Runs every test (C++, Python unit, integration with real PostgreSQL/Redis, end to end
# through Envoy), the engine's C++ tests again under AddressSanitizer and UBSan, buf lint
# and buf breaking (against the previous commit) on the protos, then prints one line
# counted over all of them: `N passed, N failed`.
test: setup
	@rm -rf reports/test-xml; set +e; \
	.venv/bin/python tools/buf_check.py; buf=$$?; \
	$(BAZEL) test --config=asan //engine:engine_test; asan=$$?; \
	.venv/bin/python tools/test_summary.py save asan //engine:engine_test; \
	$(BAZEL) test //... ; status=$$?; \
	.venv/bin/python tools/test_summary.py; summary=$$?; \
	if [ $$buf -ne 0 ] || [ $$asan -ne 0 ] || [ $$status -ne 0 ] || [ $$summary -ne 0 ]; then exit 1; fi

# The main job: the whole stack under load (40 clients, 60 s by default), with a report.
demo: build
	bazel-bin/infra/local/stack demo --duration $(DURATION) --clients $(CLIENTS) \
		$(if $(filter stream,$(MODE)),--sessions $(SESSIONS) --window $(WINDOW))

# The stack against its floors (echo, one-hop relay, relay with a journal commit) behind the same Envoy, same load,
# side by side, with issue 8's targets (loadgen/floor.py); the report is reports/floor.json.
ROUNDS ?= 2
floor: build
	bazel-bin/loadgen/floor --duration $(DURATION) --clients $(CLIENTS) --rounds $(ROUNDS)

# The whole stack, kept running for manual use; Ctrl-C stops it.
up: build
	bazel-bin/infra/local/stack up $(ARGS)

# Operations on the stack `make up` runs: each matching shard's sequence, durable
# sequence, snapshot and replay lag; and a snapshot of every shard on demand.
shards: build
	bazel-bin/infra/admin/admin shards

snapshot: build
	bazel-bin/infra/admin/admin snapshot

# Halt or resume trading in one instrument: make halt SYMBOL=AAPL, make resume SYMBOL=AAPL.
halt resume: build
	bazel-bin/infra/admin/admin $@ $(SYMBOL)

# An account's pre-trade limits on every shard, e.g.
# make risk ARGS="5 --max-order-quantity 1000 --max-notional 100000000 --max-open-orders 200 --price-collar-bps 500"
risk: build
	bazel-bin/infra/admin/admin risk $(ARGS)

# API keys of the stack `make up` runs: make keys ARGS="create --account 5 --label desk",
# ARGS=list, ARGS="revoke KEY_ID".
keys: build
	bazel-bin/infra/admin/admin keys $(ARGS)

# The container image of every service (infra/k8s/README.md): stages the build context
# (sources, generated protos, engine module) from Bazel's outputs, then builds it.
IMAGE ?= bourse:dev
image: build
	bazel-bin/infra/k8s/stage build/image
	docker build -t $(IMAGE) build/image

lock:
	.venv/bin/pip freeze --all --exclude pip --exclude-editable | sed 's/ @ .*//' | \
	  (echo "# Pinned by 'make lock' from requirements.in; install with pip install -r requirements.lock"; cat) \
	  > requirements.lock

clean:
	$(BAZEL) clean

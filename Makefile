# bourse: the two commands are `make demo` and `make test`; both set everything up.
SHELL := /bin/bash
DURATION ?= 60
CLIENTS ?= 40
BAZEL ?= bazel

.PHONY: setup build test demo up lock clean

setup:
	@tools/setup.sh

build: setup
	$(BAZEL) build //...

# Runs every test (C++, Python unit, integration with real PostgreSQL/Redis, end to end
# through Envoy), then prints one line counted over all of them: `N passed, N failed`.
test: setup
	@set +e; $(BAZEL) test //... ; status=$$?; \
	.venv/bin/python tools/test_summary.py; summary=$$?; \
	if [ $$status -ne 0 ] || [ $$summary -ne 0 ]; then exit 1; fi

# The main job: the whole stack under load (40 clients, 60 s by default), with a report.
demo: build
	bazel-bin/infra/local/stack demo --duration $(DURATION) --clients $(CLIENTS)

# The whole stack, kept running for manual use; Ctrl-C stops it.
up: build
	bazel-bin/infra/local/stack up

lock:
	.venv/bin/pip freeze --exclude-editable | sed 's/ @ .*//' | \
	  (echo "# Pinned by 'make lock' from requirements.in; install with pip install -r requirements.lock"; cat) \
	  > requirements.lock

clean:
	$(BAZEL) clean

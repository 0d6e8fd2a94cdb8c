# Omni: build, run, test. `make run` and `make test` work on a fresh Debian 12.

BUILD      := build
WORKER     := $(BUILD)/omni-worker
WORKER_SAN := $(BUILD)/omni-worker-asan
MODULE     := $(BUILD)/ngx_http_omni_module.so

# Recursive (=) on purpose: pkg-config runs when a compiling recipe runs,
# after `deps` (an order-only prerequisite of everything that compiles) has
# installed the libraries, not when make reads this file. Read at parse
# time, a fresh machine's first `make run` compiled without include paths.
PKGS       := libpq libevent yajl hiredis openssl libcurl
PKG_CFLAGS  = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS    = $(shell pkg-config --libs $(PKGS))

CC         ?= cc
CFLAGS_COMMON = -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
                -Iworker/include -Iworker/src $(PKG_CFLAGS)
CFLAGS_REL  = $(CFLAGS_COMMON) -O2 -g -D_FORTIFY_SOURCE=2 -fstack-protector-strong
CFLAGS_SAN  = $(CFLAGS_COMMON) -O1 -g -fno-omit-frame-pointer \
              -fsanitize=address,undefined -fno-sanitize-recover=undefined
LIBS        = $(PKG_LIBS) -levent_pthreads -lpthread -lm

WORKER_SRC := $(wildcard worker/src/*.c worker/src/*/*.c)
WORKER_HDR := $(wildcard worker/include/*.h worker/src/*/*.h)
# pure-logic sources the unit tests link against (no main, no I/O loop)
UNIT_SRC   := $(filter-out worker/src/main.c,$(WORKER_SRC))

MODULE_SRC := config $(wildcard ngx_omni_module/*.c ngx_omni_module/*.h)

.PHONY: all build deps worker module unit test run up down bench bench-gateway soak drills \
        fuzz lint clean

all: build
build: $(WORKER) $(WORKER_SAN) $(MODULE)
worker: $(WORKER) $(WORKER_SAN)
module: $(MODULE)

deps:
	@bash conf/deps.sh

$(WORKER): $(WORKER_SRC) $(WORKER_HDR) | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_REL) -o $@ $(WORKER_SRC) $(LIBS)

$(WORKER_SAN): $(WORKER_SRC) $(WORKER_HDR) | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_SAN) -o $@ $(WORKER_SRC) $(LIBS)

$(MODULE): $(MODULE_SRC) | deps
	@bash ngx_omni_module/build.sh $(BUILD)

# C unit tests, each one binary built with ASan/UBSan: tests/unit/test_*.c
# link the worker's sources; tests/unit/test_mod_*.c link the module's
# nginx-free code (ngx_omni_module/omni_*.c).
MOD_PURE_SRC := $(wildcard ngx_omni_module/omni_*.c)
MOD_PURE_HDR := $(wildcard ngx_omni_module/omni_*.h)
MOD_TESTS    := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(wildcard tests/unit/test_mod_*.c))
UNIT_TESTS   := $(filter-out $(MOD_TESTS),$(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(wildcard tests/unit/test_*.c))) $(MOD_TESTS)

$(BUILD)/unit/test_mod_%: tests/unit/test_mod_%.c tests/unit/unit.h $(MOD_PURE_SRC) $(MOD_PURE_HDR) | deps
	@mkdir -p $(BUILD)/unit
	$(CC) $(CFLAGS_SAN) -Itests/unit -Ingx_omni_module -o $@ $< $(MOD_PURE_SRC) -lyajl -lcrypto

$(BUILD)/unit/%: tests/unit/%.c tests/unit/unit.h $(UNIT_SRC) $(WORKER_HDR) | deps
	@mkdir -p $(BUILD)/unit
	$(CC) $(CFLAGS_SAN) -Itests/unit -o $@ $< $(UNIT_SRC) $(LIBS)

# the outbound client's harness for tests/integration/test_outbound.py
PROBE_SRC := tests/integration/fixtures/outbound_probe.c \
             worker/src/io/outbound.c worker/src/lib/sse.c worker/src/log.c \
             worker/src/json.c worker/src/arena.c worker/src/hist.c
$(BUILD)/outbound-probe: $(PROBE_SRC) $(WORKER_HDR) | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_SAN) -o $@ $(PROBE_SRC) $(LIBS)

# the benchmarks' paced latency client
$(BUILD)/paced: tests/bench/paced.c | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_REL) -o $@ $<

unit: $(UNIT_TESTS)
	@bash tests/unit/run.sh $(UNIT_TESTS)

test: deps build $(UNIT_TESTS) $(BUILD)/outbound-probe
	@bash tests/run.sh $(UNIT_TESTS)

run: deps build
	@bash conf/stack.sh run

up: deps build
	@bash conf/stack.sh up

down:
	@bash conf/stack.sh down

bench: deps build $(BUILD)/paced
	@bash tests/bench/run.sh

# the gateway rows alone (tests/bench/results-gateway.md)
bench-gateway: deps build $(BUILD)/paced
	@bash tests/bench/run.sh gateway

# 1M mixed requests (SOAK_REQUESTS) through nginx + worker, RSS sampled
soak: deps build
	@/usr/bin/python3 tests/bench/soak.py

# fault drills under load, measured (tests/drills/results.md)
drills: deps build
	@/usr/bin/python3 -m pytest tests/drills -q -p no:cacheprovider \
	    -o console_output_style=classic

fuzz: deps
	@bash tests/fuzz/run.sh

lint:
	@bash tests/lint.sh

clean:
	rm -rf $(BUILD)

# Offline checks of the Kubernetes manifests (tests/k8s): the npm tools
# pinned by tests/k8s/package-lock.json go to build/k8s
.PHONY: k8s-check
K8S_NODE := $(BUILD)/k8s
$(K8S_NODE)/node_modules/.installed: tests/k8s/package.json tests/k8s/package-lock.json | deps
	@mkdir -p $(K8S_NODE)
	@cp tests/k8s/package.json tests/k8s/package-lock.json $(K8S_NODE)/
	@cd $(K8S_NODE) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

k8s-check: deps $(MODULE) $(K8S_NODE)/node_modules/.installed
	@bash tests/k8s/run.sh

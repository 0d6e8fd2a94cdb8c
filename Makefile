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
# Headers sit beside their sources and are included with their folder
# ("lib/json.h", "io/db.h"); -MMD writes each object's header dependencies.
CFLAGS_COMMON = -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
                -Iworker/src $(PKG_CFLAGS)
CFLAGS_REL  = $(CFLAGS_COMMON) -O2 -g -D_FORTIFY_SOURCE=2 -fstack-protector-strong
CFLAGS_SAN  = $(CFLAGS_COMMON) -O1 -g -fno-omit-frame-pointer \
              -fsanitize=address,undefined -fno-sanitize-recover=undefined
LIBS        = $(PKG_LIBS) -levent_pthreads -lpthread -lm
# what lib/ may use: libevent's evbuffer (no loop), yajl, libcrypto
LIB_LIBS    = -levent -lyajl -lcrypto -lm

# worker/src/<layer>/[<service>/]*.c; each compiled once per flavour into
# build/obj/{rel,san}/ and linked from there
WORKER_SRC := $(wildcard worker/src/*/*.c worker/src/*/*/*.c)
LIB_SRC    := $(wildcard worker/src/lib/*.c)
MAIN_SRC   := worker/src/core/main.c
REST_SRC   := $(filter-out $(LIB_SRC) $(MAIN_SRC),$(WORKER_SRC))
obj         = $(patsubst worker/src/%.c,$(BUILD)/obj/$(1)/%.o,$(2))

$(BUILD)/obj/rel/%.o: worker/src/%.c | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_REL) -MMD -MP -c -o $@ $<

$(BUILD)/obj/san/%.o: worker/src/%.c | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_SAN) -MMD -MP -c -o $@ $<

-include $(patsubst %.o,%.d,$(call obj,rel,$(WORKER_SRC)) $(call obj,san,$(WORKER_SRC)))

# the sanitized libraries the unit tests, fuzz-free probes and the ASan
# worker link: lib/ alone (pure: no loop, no Postgres, no Redis), then
# everything else but main
LIB_A    := $(BUILD)/libomni-lib.a
WORKER_A := $(BUILD)/libomni-worker.a

$(LIB_A): $(call obj,san,$(LIB_SRC))
	@rm -f $@
	ar rcs $@ $^

$(WORKER_A): $(call obj,san,$(REST_SRC))
	@rm -f $@
	ar rcs $@ $^

MODULE_SRC := config $(wildcard ngx_omni_module/*.c ngx_omni_module/*.h)

.PHONY: all build deps worker module unit test run up down bench bench-gateway bench-mcp bench-memory soak drills \
        fuzz lint clean

all: build
build: $(WORKER) $(WORKER_SAN) $(MODULE)
worker: $(WORKER) $(WORKER_SAN)
module: $(MODULE)

deps:
	@bash conf/deps.sh

$(WORKER): $(call obj,rel,$(WORKER_SRC)) | deps
	$(CC) $(CFLAGS_REL) -o $@ $^ $(LIBS)

$(WORKER_SAN): $(call obj,san,$(MAIN_SRC)) $(WORKER_A) $(LIB_A) | deps
	$(CC) $(CFLAGS_SAN) -o $@ $^ $(LIBS)

$(MODULE): $(MODULE_SRC) | deps
	@bash ngx_omni_module/build.sh $(BUILD)

# C unit tests, each one binary built with ASan/UBSan. tests/unit mirrors
# worker/src: tests/unit/lib/test_*.c link only libomni-lib.a (which proves
# lib/ does no I/O), the others the worker's library as well;
# tests/unit/test_mod_*.c link the module's nginx-free code
# (ngx_omni_module/omni_*.c).
MOD_PURE_SRC := $(wildcard ngx_omni_module/omni_*.c)
MOD_PURE_HDR := $(wildcard ngx_omni_module/omni_*.h)
MOD_TESTS    := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(wildcard tests/unit/test_mod_*.c))
LIB_TESTS    := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(wildcard tests/unit/lib/test_*.c))
REST_TESTS   := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(wildcard tests/unit/*/test_*.c tests/unit/*/*/test_*.c))
UNIT_TESTS   := $(LIB_TESTS) $(filter-out $(LIB_TESTS),$(REST_TESTS)) $(MOD_TESTS)
UNIT_CFLAGS   = $(CFLAGS_SAN) -Itests/unit

$(BUILD)/unit/test_mod_%: tests/unit/test_mod_%.c tests/unit/unit.h $(MOD_PURE_SRC) $(MOD_PURE_HDR) | deps
	@mkdir -p $(BUILD)/unit
	$(CC) $(CFLAGS_SAN) -Itests/unit -Ingx_omni_module -o $@ $< $(MOD_PURE_SRC) -lyajl -lcrypto

$(BUILD)/unit/lib/%: tests/unit/lib/%.c tests/unit/unit.h $(LIB_A) | deps
	@mkdir -p $(@D)
	$(CC) $(UNIT_CFLAGS) -MMD -MP -o $@ $< $(LIB_A) $(LIB_LIBS)

$(filter-out $(LIB_TESTS),$(REST_TESTS)): $(BUILD)/unit/%: tests/unit/%.c tests/unit/unit.h $(WORKER_A) $(LIB_A) | deps
	@mkdir -p $(@D)
	$(CC) $(UNIT_CFLAGS) -MMD -MP -o $@ $< $(WORKER_A) $(LIB_A) $(LIBS)

-include $(addsuffix .d,$(LIB_TESTS) $(REST_TESTS))

# the outbound client's harness for tests/integration/test_outbound.py
$(BUILD)/outbound-probe: tests/integration/fixtures/outbound_probe.c $(WORKER_A) $(LIB_A) | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_SAN) -o $@ $^ $(LIBS)

# the benchmark's relay through the outbound client (release objects)
$(BUILD)/outbound-relay: tests/bench/outbound_relay.c $(call obj,rel,worker/src/io/outbound.c worker/src/io/log.c worker/src/lib/hist.c worker/src/lib/json.c worker/src/lib/arena.c) | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_REL) -o $@ $^ $(LIBS)

# the benchmarks' paced latency client
$(BUILD)/paced: tests/bench/paced.c | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_REL) -o $@ $<

# the gateway benchmark's measured RS256 ceiling: nginx doing one bare
# RSA-2048 verification per request (tests/bench/rsa_ceiling.c), compiled
# against the nginx sources the module's build configured
NGX_OBJS_SRC = $(BUILD)/nginx-src
$(BUILD)/ngx_http_bench_rsa_module.so: tests/bench/rsa_ceiling.c $(MODULE) | deps
	cd $(NGX_OBJS_SRC) \
	&& incs=$$(sed -n '/^ALL_INCS =/,/^$$/{s/^ALL_INCS =//;s/\\$$//;p}' \
	           objs/Makefile) \
	&& $(CC) -pipe -O2 -g -W -Wall -Wpointer-arith -Wno-unused-parameter \
	    -Werror -fPIC -shared $$incs \
	    -o $(abspath $@).tmp $(abspath $<) -lcrypto
	@mv -f $@.tmp $@

# the gateway benchmark's measured limit ceiling: the module built with
# tests/bench/limit_ceiling.lua, a script doing only the Redis commands a
# decision needs, in place of omni_limit_batch.lua (a copy of the sources)
LIMIT_CEILING := $(BUILD)/limit-ceiling/ngx_http_omni_module.so
$(LIMIT_CEILING): tests/bench/limit_ceiling.lua $(MODULE_SRC) | deps
	rm -rf $(BUILD)/limit-ceiling/src
	mkdir -p $(BUILD)/limit-ceiling/src
	cp -r config ngx_omni_module $(BUILD)/limit-ceiling/src/
	cp tests/bench/limit_ceiling.lua \
	    $(BUILD)/limit-ceiling/src/ngx_omni_module/omni_limit_batch.lua
	bash $(BUILD)/limit-ceiling/src/ngx_omni_module/gen_limit_lua.sh
	bash $(BUILD)/limit-ceiling/src/ngx_omni_module/build.sh \
	    $(abspath $(BUILD)/limit-ceiling)

unit: $(UNIT_TESTS)
	@bash tests/unit/run.sh $(UNIT_TESTS)

test: deps build $(UNIT_TESTS) $(BUILD)/outbound-probe mcp-node mcp-conformance llm-node ui ui-test-node llm-sdk
	@bash tests/run.sh $(UNIT_TESTS)

run: deps build ui
	@bash conf/stack.sh run

up: deps build ui
	@bash conf/stack.sh up

down:
	@bash conf/stack.sh down

bench: deps build $(BUILD)/paced $(BUILD)/outbound-relay $(BUILD)/ngx_http_bench_rsa_module.so mcp-node $(LIMIT_CEILING)
	@bash tests/bench/run.sh

# the MCP rows alone (tests/bench/results-mcp.md)
bench-mcp: deps build $(BUILD)/paced mcp-node
	@bash tests/bench/run.sh mcp

# the gateway rows alone (tests/bench/results-gateway.md); 5 alternating
# rounds a row unless BENCH_RUNS says otherwise: on a shared VM one slow
# round of 3 moves a median, one of 5 does not
bench-gateway: deps build $(BUILD)/paced $(BUILD)/ngx_http_bench_rsa_module.so $(LIMIT_CEILING)
	@BENCH_RUNS=$${BENCH_RUNS:-5} bash tests/bench/run.sh gateway

# contexts and memories vs the same SQL (README "Contexts and memories")
bench-memory: deps build
	@/usr/bin/python3 tests/bench/memory.py

# 1M mixed requests (SOAK_REQUESTS) through nginx + worker, RSS sampled
soak: deps build
	@/usr/bin/python3 tests/bench/soak.py

# fault drills under load, measured (tests/drills/results.md)
drills: deps build mcp-node
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

# the MCP upstreams the integration tests run (server-everything and the
# SDK fixtures), from the committed lock file
MCP_NODE := $(BUILD)/mcp-node
$(MCP_NODE)/node_modules/.package-lock.json: tests/integration/fixtures/mcp/package.json tests/integration/fixtures/mcp/package-lock.json
	@mkdir -p $(MCP_NODE)
	cp tests/integration/fixtures/mcp/package.json tests/integration/fixtures/mcp/package-lock.json $(MCP_NODE)/
	cd $(MCP_NODE) && npm ci --no-audit --no-fund

mcp-node: $(MCP_NODE)/node_modules/.package-lock.json
.PHONY: mcp-node

# The admin page (SPEC 12, README "Admin page"): conf/ui/ bundled by
# conf/ui/build.mjs (esbuild, uPlot; pinned by conf/ui/package-lock.json,
# installed into build/ui-node) into build/ui/, which nginx serves at /
UI_NODE := $(BUILD)/ui-node
UI_SRC  := $(shell find conf/ui/src -type f) conf/ui/index.html conf/ui/build.mjs
$(UI_NODE)/node_modules/.package-lock.json: conf/ui/package.json conf/ui/package-lock.json | deps
	@mkdir -p $(UI_NODE)
	@cp conf/ui/package.json conf/ui/package-lock.json $(UI_NODE)/
	@cd $(UI_NODE) && npm ci --no-audit --no-fund --loglevel=error

$(BUILD)/ui/index.html: $(UI_SRC) $(UI_NODE)/node_modules/.package-lock.json
	@node conf/ui/build.mjs $(UI_NODE) $(BUILD)/ui

ui: $(BUILD)/ui/index.html

# the browser tests' driver (puppeteer-core, pinned by
# tests/integration/admin_ui/package-lock.json); the browser is Debian's
# chromium (conf/deps.sh)
UI_TEST_NODE := $(BUILD)/ui-test-node
$(UI_TEST_NODE)/node_modules/.package-lock.json: tests/integration/admin_ui/package.json tests/integration/admin_ui/package-lock.json | deps
	@mkdir -p $(UI_TEST_NODE)
	@cp tests/integration/admin_ui/package.json tests/integration/admin_ui/package-lock.json $(UI_TEST_NODE)/
	@cd $(UI_TEST_NODE) && npm ci --no-audit --no-fund --loglevel=error

ui-test-node: $(UI_TEST_NODE)/node_modules/.package-lock.json
.PHONY: ui ui-test-node

# the official MCP conformance suite and the Node 22 it needs
MCP_CONFORMANCE := $(BUILD)/mcp-conformance
$(MCP_CONFORMANCE)/node_modules/.package-lock.json: tests/integration/fixtures/mcp-conformance/package.json tests/integration/fixtures/mcp-conformance/package-lock.json
	@mkdir -p $(MCP_CONFORMANCE)
	cp tests/integration/fixtures/mcp-conformance/package.json tests/integration/fixtures/mcp-conformance/package-lock.json $(MCP_CONFORMANCE)/
	cd $(MCP_CONFORMANCE) && npm ci --no-audit --no-fund

mcp-conformance: $(MCP_CONFORMANCE)/node_modules/.package-lock.json
.PHONY: mcp-conformance

# the LLM provider double of the chat tests (@copilotkit/aimock), from the
# committed lock file
LLM_NODE := $(BUILD)/llm-node
$(LLM_NODE)/node_modules/.package-lock.json: tests/integration/fixtures/llm/package.json tests/integration/fixtures/llm/package-lock.json
	@mkdir -p $(LLM_NODE)
	cp tests/integration/fixtures/llm/package.json tests/integration/fixtures/llm/package-lock.json $(LLM_NODE)/
	cd $(LLM_NODE) && npm ci --no-audit --no-fund

llm-node: $(LLM_NODE)/node_modules/.package-lock.json
.PHONY: llm-node

# the official OpenAI and Anthropic SDKs that test_llm_gateway.py drives
# through the LLM gateway (fixtures/llm-sdk, pinned by its lockfile)
LLM_SDK := $(BUILD)/llm-sdk
$(LLM_SDK)/node_modules/.package-lock.json: tests/integration/fixtures/llm-sdk/package.json tests/integration/fixtures/llm-sdk/package-lock.json
	@mkdir -p $(LLM_SDK)
	cp tests/integration/fixtures/llm-sdk/package.json tests/integration/fixtures/llm-sdk/package-lock.json $(LLM_SDK)/
	cd $(LLM_SDK) && npm ci --no-audit --no-fund

llm-sdk: $(LLM_SDK)/node_modules/.package-lock.json
.PHONY: llm-sdk

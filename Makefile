# kvd build.  `make` builds build/kvd; `make run` starts one node with kv.conf;
# `make test` installs what is missing, builds, and runs every suite (normal and
# sanitizer builds), ending with one line "N passed, M failed".
#
# Layout conventions (new files are picked up without editing this file):
#   proto/*.c, engine/*.c, cluster/*.c               module sources
#   server/*/*.c (server/base, store, client, ...)   the server's layers, one library
#   <dir>/*_test.c                                     one unit-test binary each
#   <dir>/*_fuzz.c                                     one libFuzzer target each
#   <dir>/*_bench.c                                    one benchmark binary each
#   server/main.c                                      kvd's main()

ifeq ($(origin CC),default)
  CC = gcc
endif
BUILD   ?= build
SAN     ?=
OPT     ?= -O2

CSTD     = -std=c11 -D_GNU_SOURCE
WARN     = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers
CPPFLAGS_ALL = -I. -MMD -MP
CFLAGS_ALL   = $(CSTD) $(OPT) -g -pthread $(WARN) $(CFLAGS)
LIBS     = -levent -levent_pthreads -lhiredis -lxxhash -lpthread -lm

ifeq ($(SAN),1)
  BUILD      = build-asan
  CFLAGS_ALL += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS_ALL = -fsanitize=address,undefined
  CPPFLAGS_ALL += -DKVD_NO_JEMALLOC
else
  LDFLAGS_ALL =
  LIBS += -ljemalloc
endif
LDFLAGS_ALL += $(LDFLAGS)

nonmain = $(filter-out %_test.c %_fuzz.c %_bench.c,$(wildcard $(1)/*.c))
PROTO_SRC   := $(call nonmain,proto)
ENGINE_SRC  := $(call nonmain,engine)
CLUSTER_SRC := $(call nonmain,cluster)
# server/ and each of its layer folders (server/base, server/store, ...: any folder)
SERVER_DIRS := server $(patsubst %/,%,$(sort $(dir $(wildcard server/*/*.c))))
SERVER_SRC  := $(filter-out server/main.c,$(foreach d,$(SERVER_DIRS),$(call nonmain,$(d))))
TEST_SRC    := $(wildcard proto/*_test.c engine/*_test.c cluster/*_test.c tests/*_test.c) \
               $(foreach d,$(SERVER_DIRS),$(wildcard $(d)/*_test.c))
BENCH_SRC   := $(wildcard proto/*_bench.c engine/*_bench.c) \
               $(foreach d,$(SERVER_DIRS),$(wildcard $(d)/*_bench.c))
FUZZ_SRC    := $(wildcard proto/*_fuzz.c engine/*_fuzz.c) \
               $(foreach d,$(SERVER_DIRS),$(wildcard $(d)/*_fuzz.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIBPROTO   := $(BUILD)/libproto.a
LIBENGINE  := $(BUILD)/libengine.a
LIBCLUSTER := $(BUILD)/libcluster.a
LIBSERVER  := $(BUILD)/libserver.a
ALL_LIBS   := $(LIBSERVER) $(LIBCLUSTER) $(LIBENGINE) $(LIBPROTO)
# the server library goes in whole: its command handlers are found through the table
LINK_LIBS  := -Wl,--whole-archive $(LIBSERVER) -Wl,--no-whole-archive $(LIBCLUSTER) $(LIBENGINE) $(LIBPROTO)
TEST_BINS  := $(patsubst %.c,$(BUILD)/tests/%,$(notdir $(TEST_SRC)))
BENCH_BINS := $(patsubst %_bench.c,$(BUILD)/kvd-%-bench,$(notdir $(BENCH_SRC)))
# redis-compat-tests/*.c: client programs (hiredis) that redis-compat-tests/run.sh runs
COMPAT_BINS := $(patsubst redis-compat-tests/%.c,$(BUILD)/compat/%,$(wildcard redis-compat-tests/*.c))
DEPS_STAMP := build/.deps-ok

.PHONY: all run test test-unit test-asan test-long deps fuzz bench bench-base bench-engine clean
.PHONY: cluster bench-cluster bench-convergence test-cluster
all: $(BUILD)/kvd $(TEST_BINS) $(BENCH_BINS) $(COMPAT_BINS)

deps: $(DEPS_STAMP)
$(DEPS_STAMP): tests/install-deps.sh
	@bash tests/install-deps.sh
	@mkdir -p $(dir $@) && touch $@

$(BUILD)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -c $< -o $@

define mklib
$(1): $(call obj,$(2))
	@mkdir -p $$(dir $$@)
	@rm -f $$@
	$$(AR) rcs $$@ $$^ $$(if $$^,,$$(BUILD)/obj/empty.o)
endef
$(BUILD)/obj/empty.o: | $(DEPS_STAMP)
	@mkdir -p $(dir $@) && echo 'typedef int kvd_empty_unit;' | $(CC) -x c -c - -o $@
$(eval $(call mklib,$(LIBPROTO),$(PROTO_SRC)))
$(eval $(call mklib,$(LIBENGINE),$(ENGINE_SRC)))
$(eval $(call mklib,$(LIBCLUSTER),$(CLUSTER_SRC)))
$(eval $(call mklib,$(LIBSERVER),$(SERVER_SRC)))
$(LIBPROTO) $(LIBENGINE) $(LIBCLUSTER) $(LIBSERVER): | $(BUILD)/obj/empty.o

$(BUILD)/kvd: $(call obj,server/main.c) $(ALL_LIBS)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) $< $(LINK_LIBS) $(LIBS) -o $@

# A test links only the modules at and below its own folder, so a half-written
# server never stops the engine's tests from building.
libs_for = $(if $(filter proto/%,$(1)),$(LIBPROTO),$(if $(filter engine/%,$(1)),$(LIBENGINE),$(if $(filter cluster/%,$(1)),$(LIBCLUSTER) $(LIBENGINE) $(LIBPROTO),$(LINK_LIBS))))
define link_test
$(BUILD)/tests/$(basename $(notdir $(1))): $(call obj,$(1)) $(filter %.a,$(call libs_for,$(1)))
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_ALL) $$(LDFLAGS_ALL) $$< $(call libs_for,$(1)) $$(LIBS) -o $$@
endef
$(foreach t,$(TEST_SRC),$(eval $(call link_test,$(t))))
define link_bench
$(BUILD)/kvd-$(patsubst %_bench.c,%,$(notdir $(1)))-bench: $(call obj,$(1)) $(filter %.a,$(call libs_for,$(1)))
	$$(CC) $$(CFLAGS_ALL) $$(LDFLAGS_ALL) $$< $(call libs_for,$(1)) $$(LIBS) -o $$@
endef
$(foreach b,$(BENCH_SRC),$(eval $(call link_bench,$(b))))

$(BUILD)/compat/%: redis-compat-tests/%.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) $< -lhiredis -o $@

run: $(BUILD)/kvd
	./$(BUILD)/kvd kv.conf

# Every suite, normal build and sanitizer build; the last line is the total.
test: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory SAN=1 all
	@bash tests/run-all.sh

test-unit: all
	@bash tests/run-all.sh --unit-only

test-asan: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory SAN=1 all
	@bash tests/run-all.sh --asan-only

test-long: all
	@bash tests/run-all.sh --long

FUZZ_SECONDS ?= 60
fuzz: $(DEPS_STAMP)
	@bash tests/run-fuzz.sh $(FUZZ_SECONDS)

bench: all
	@bash tests/bench/run.sh

# make bench-base BASE=/path/to/older/kvd: this build beside an older binary (new/old)
bench-base: all
	@bash tests/bench/base.sh $(BASE)

bench-engine: all
	@bash tests/bench/engine.sh

# the Jepsen-style suite, short run (~1.5 min): workloads under faults, histories checked
# (tests/jepsen/README.md); `make test` runs it too, `make test-long` a long run of all
test-cluster: $(BUILD)/kvd
	@bash tests/jepsen/run.sh $(BUILD)/kvd

# a 3-node cluster on 127.0.0.2-4 (persistent, data in build/cluster/nodeN); Ctrl-C stops it
cluster: $(BUILD)/kvd
	@bash tests/cluster/start.sh $(BUILD)/kvd

# redis-benchmark: kvd cluster (N=3 and N=1), Redis Cluster, one kvd node; build/bench/cluster.txt
bench-cluster: $(BUILD)/kvd
	@bash tests/bench/cluster.sh $(BUILD)/kvd

# repair (1M keys, 1% divergent), a wiped replica, gossip views of 5 nodes, a join
# under a 500k-key preload; build/bench/convergence.txt
bench-convergence: $(BUILD)/kvd
	@bash tests/bench/convergence.sh $(BUILD)/kvd

clean:
	rm -rf build/obj build/tests build/lib*.a build/kvd build/kvd-*-bench build/compat build-asan build-clang build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

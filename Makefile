# vfio-gpu-plugin — GNU make. `make` builds bin/vfio-gpu-plugin; `make test` installs what is missing, then runs
# every test (unit, integration on simulated nodes, ASan+UBSan, valgrind, manifests, fuzz smoke, qemu e2e);
# `make demo` runs the plugin's main job on a simulated node; `make bench` measures.
#
# Layout of outputs: $(OUT)/ holds objects, generated protobuf-c code and test binaries; $(BIN)/ the programs.
# `make SAN=1` builds the same tree with ASan+UBSan into build/asan (used by the test target).

SAN ?=
ifeq ($(SAN),1)
OUT ?= build/asan
BIN ?= build/asan/bin
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
OUT ?= build/default
BIN ?= bin
SANFLAGS =
endif

# The version: here and nowhere else (main.c gets it as -DVGP_VERSION).
VERSION := 0.1.0

CC ?= cc
PKGS := grpc libprotobuf-c libpci jansson libmicrohttpd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CRIT_CFLAGS := $(shell pkg-config --cflags criterion 2>/dev/null)
CRIT_LIBS := $(shell pkg-config --libs criterion 2>/dev/null)

# `make V=1` shows the full commands.
ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-6s %s\n' $(1) $(2)
endif

GEN := $(OUT)/gen
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -Iplugin -I$(GEN) $(PKG_CFLAGS) $(SANFLAGS)
LDFLAGS += $(SANFLAGS)
# header dependencies: each object's .d file (written by the compiler) lists the headers it read
DEPFLAGS = -MMD -MP
# `make lint`: the extra warnings kmod builds with, on every C file of the tree (plugin, cmd, tools, unit tests)
LINTFLAGS := -Wshadow -Wformat=2 -Wwrite-strings -Wmissing-prototypes -Wstrict-prototypes -Wold-style-definition \
	-Wpointer-arith -Wundef -Wvla -Winit-self -Wlogical-op -Wredundant-decls -Wnested-externs -Wmissing-declarations
LDLIBS := $(PKG_LIBS) -lpthread

PLUGIN_SRC := $(sort $(wildcard plugin/*.c))
PLUGIN_OBJ := $(PLUGIN_SRC:%.c=$(OUT)/%.o) $(GEN)/api.pb-c.o
LIB := $(OUT)/libvgp.a
MAIN_SRC := $(sort $(wildcard cmd/vfio-gpu-plugin/*.c))
TOOL_SRC := $(sort $(wildcard test/tools/*.c))
TOOLS := $(TOOL_SRC:test/tools/%.c=$(BIN)/%)
UNIT_SRC := $(sort $(wildcard test/unit/test_*.c))
UNIT_HELPERS := $(filter-out $(UNIT_SRC),$(sort $(wildcard test/unit/*.c)))
UNITS := $(UNIT_SRC:test/unit/%.c=$(OUT)/test/%)

.PHONY: all deps lint test test-fast unit integration asan valgrind e2e demo bench fuzz clean
.DELETE_ON_ERROR:
# keep the objects of tools and unit tests (chained pattern rules would delete them as intermediates); named, not
# every target: a missing .d file must still count as out of date
.SECONDARY: $(TOOL_SRC:%.c=$(OUT)/%.o) $(UNIT_SRC:%.c=$(OUT)/%.o) $(UNIT_HELPERS:%.c=$(OUT)/%.o)

all: $(BIN)/vfio-gpu-plugin $(TOOLS) $(UNITS)

deps:
	@hack/install-deps.sh

# protoc-c would also emit protobuf-c-rpc service stubs, whose method "Register" collides with the C keyword
# `register`; the services are served by hand with gRPC's C core, so only the messages are generated.
# One grouped target: one protoc run makes both files (with `-j2` two runs could otherwise race, one reading the
# other's half-written output).
$(GEN)/api.pb-c.c $(GEN)/api.pb-c.h &: proto/api.proto
	@mkdir -p $(GEN)
	$(call say,PROTOC,$<)
	$(Q)sed '/^service /,/^}/d' proto/api.proto > $(GEN)/api.proto
	$(Q)protoc-c --proto_path=$(GEN) --c_out=$(GEN) $(GEN)/api.proto

$(GEN)/api.pb-c.o: $(GEN)/api.pb-c.c
	$(call say,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Wno-unused-parameter -c -o $@ $<

# an object without its .d file (built before -MMD, or the .d removed) is rebuilt: its headers are unknown
$(OUT)/%.o: %.c $(OUT)/%.d | $(GEN)/api.pb-c.h
	@mkdir -p $(dir $@)
	$(call say,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(OUT)/cmd/vfio-gpu-plugin/main.o: CFLAGS += -DVGP_VERSION='"$(VERSION)"'
$(OUT)/cmd/vfio-gpu-plugin/main.o: Makefile

$(LIB): $(PLUGIN_OBJ)
	@rm -f $@
	$(call say,AR,$@)
	$(Q)ar rcs $@ $^

$(BIN)/vfio-gpu-plugin: $(MAIN_SRC:%.c=$(OUT)/%.o) $(LIB)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/%: $(OUT)/test/tools/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(OUT)/test/%: $(OUT)/test/unit/%.o $(UNIT_HELPERS:%.c=$(OUT)/%.o) $(LIB)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CRIT_LIBS)

$(OUT)/test/unit/%.o: test/unit/%.c $(OUT)/test/unit/%.d | $(GEN)/api.pb-c.h
	@mkdir -p $(dir $@)
	$(call say,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(CRIT_CFLAGS) -Itest/unit $(DEPFLAGS) -c -o $@ $<

# lint: one stamp per source (redone when the source or a header it reads changes)
LINT_SRC := $(PLUGIN_SRC) $(MAIN_SRC) $(TOOL_SRC) $(UNIT_SRC) $(UNIT_HELPERS)
LINT_STAMPS := $(LINT_SRC:%.c=$(OUT)/lint/%.ok)

lint: $(LINT_STAMPS)

# the unit tests' fixtures fill char * fields of the library's structs from string literals: no -Wwrite-strings there
$(OUT)/lint/test/unit/%.ok: LINTFLAGS := $(filter-out -Wwrite-strings,$(LINTFLAGS))

$(OUT)/lint/%.ok: %.c | $(GEN)/api.pb-c.h
	@mkdir -p $(dir $@)
	$(call say,LINT,$<)
	$(Q)$(CC) $(CFLAGS) $(LINTFLAGS) $(CRIT_CFLAGS) -Itest/unit -DVGP_VERSION='"$(VERSION)"' -fsyntax-only \
		-MMD -MP -MT $@ -MF $(@:.ok=.d) $<
	@touch $@

# every object's .d, named (a missing one is then a target to make, which rebuilds its object), and read
DEPFILES := $(PLUGIN_SRC:%.c=$(OUT)/%.d) $(MAIN_SRC:%.c=$(OUT)/%.d) $(TOOL_SRC:%.c=$(OUT)/%.d) \
	$(UNIT_SRC:%.c=$(OUT)/%.d) $(UNIT_HELPERS:%.c=$(OUT)/%.d)
$(DEPFILES):
-include $(wildcard $(DEPFILES) $(LINT_STAMPS:.ok=.d))

# The full suite: the README's second command. Installs what is missing first (a fresh Debian 12 is enough).
test: deps
	@$(MAKE) --no-print-directory -j2 all
	@$(MAKE) --no-print-directory -j2 SAN=1 all
	@$(MAKE) --no-print-directory -j2 lint
	@test/run.sh

# Quick loop for developers: unit + integration on the default build only.
test-fast: all
	@VGP_SUITES="unit integration" test/run.sh

e2e: deps all
	@VGP_SUITES="e2e" test/run.sh

demo: deps
	@$(MAKE) --no-print-directory -j2 all
	@hack/demo.sh

bench: deps
	@$(MAKE) --no-print-directory -j2 all
	@test/bench/run.sh

fuzz: deps
	@$(MAKE) --no-print-directory -j2 all
	@test/fuzz/run.sh $${FUZZ_SECONDS:-60}

clean:
	rm -rf build bin

# ---- container image (deploy/Containerfile) ------------------------------------------------------------------
# `make image` builds IMAGE with podman (CONTAINER_TOOL=docker works the same); `make image-push` pushes it.
# IMAGE defaults to the reference deploy/daemonset.yaml uses; the version is VERSION above (the binary's too).
# BUILD_IMAGE is the build stage's base, fully qualified; pin it by digest (…/debian:12@sha256:…) if you like.
# Without a registry, hack/image-base.sh (run by `make deps`) builds docker.io/library/debian:12 locally.
CONTAINER_TOOL ?= podman
IMAGE_VERSION := $(VERSION)
IMAGE_REGISTRY ?= registry.example.com
IMAGE ?= $(IMAGE_REGISTRY)/vfio-gpu-plugin:$(IMAGE_VERSION)
BUILD_IMAGE ?= docker.io/library/debian:12
IMAGE_SOURCE ?= $(or $(shell git config --get remote.origin.url 2>/dev/null),unknown)
IMAGE_REVISION ?= $(or $(shell git rev-parse HEAD 2>/dev/null),unknown)
IMAGE_BUILD_FLAGS ?= --network host

.PHONY: image image-push image-name
image:
	$(CONTAINER_TOOL) build $(IMAGE_BUILD_FLAGS) -f deploy/Containerfile \
		--build-arg BUILD_IMAGE=$(BUILD_IMAGE) --label org.opencontainers.image.version=$(IMAGE_VERSION) \
		--label org.opencontainers.image.revision=$(IMAGE_REVISION) \
		--label org.opencontainers.image.source=$(IMAGE_SOURCE) -t $(IMAGE) .

image-push:
	$(CONTAINER_TOOL) push $(IMAGE)

image-name:
	@echo $(IMAGE)

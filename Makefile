# kextlog: one entry point.  `make run` runs the main job, `make test` the tests;
# both set up everything they need (virtual environment, install, C build).

PYTHON     ?= python3
VENV       ?= .venv
BIN        := $(VENV)/bin
KEXTLOG    := $(BIN)/kextlog
STAMP      := $(VENV)/.installed
RUN_DIR    := .run
SIM_SOCKET ?= $(CURDIR)/$(RUN_DIR)/kextlog-sim.sock
# A macOS Kernel SDK (e.g. acidanthera/MacKernelSDK) enables the Mach-O compile check.
KERNEL_SDK ?= $(wildcard $(CURDIR)/kext/.sdk)

NATIVE_SOURCES := $(wildcard kext/include/*.h kext/core/*.[ch] kext/sim/*.[ch]) \
                  kextlog_store/_build_native.py kextlog_store/seal/_columns.c \
                  setup.py pyproject.toml

.PHONY: all install run test lint kext check bench clean install-service fuzz kmod-test

all: install

$(STAMP): $(NATIVE_SOURCES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

# The simulated kext serves its socket; ingest stores what it sends, and on
# Linux the kernel's own log too, in the default database (see README);
# Ctrl-C stops both.
KMSG_SOURCE := $(if $(wildcard /dev/kmsg),--source kmsg)

# Ingest starts once the simulator serves: one that cannot (its socket is in
# use, by another make run say) ends make run with its error.  Its log is
# emptied first, not by the background redirection (which may come after the
# wait has read an earlier run's "serving").  Ingest's first line says where
# the store is and how big it may grow.
run: $(STAMP)
	@mkdir -p $(RUN_DIR)
	@echo "make run: simulated kext on $(SIM_SOCKET), into the default store (KEXTLOG_DB=PATH for another); query with: $(KEXTLOG) query --level error --since 1h"
	@: > $(RUN_DIR)/simulate.log
	@$(KEXTLOG) simulate --socket $(SIM_SOCKET) --quiet-losses 2>>$(RUN_DIR)/simulate.log & sim=$$!; \
	 trap 'kill $$sim 2>/dev/null; wait $$sim' EXIT INT TERM; \
	 until grep -q '^kextlog simulate: serving ' $(RUN_DIR)/simulate.log; do \
	     kill -0 $$sim 2>/dev/null || { cat $(RUN_DIR)/simulate.log >&2; wait $$sim; exit 1; }; \
	     sleep 0.1; done; \
	 cat $(RUN_DIR)/simulate.log >&2; \
	 $(KEXTLOG) ingest --source unix:$(SIM_SOCKET) $(KMSG_SOURCE)

test: $(STAMP)
	tests/install-packages.sh tests tools journal web
	$(MAKE) -C kext check KERNEL_SDK=$(KERNEL_SDK)
	$(MAKE) -C kext model
	$(MAKE) -C kext fuzz-short
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest
	$(MAKE) kmod-test
	@mkdir -p $(RUN_DIR); for target in $(FUZZ_TARGETS); do \
	    $(BIN)/python $$target -runs=$(FUZZ_RUNS) > $(RUN_DIR)/fuzz.log 2>&1 \
	    || { cat $(RUN_DIR)/fuzz.log; exit 1; }; echo "$$target: $(FUZZ_RUNS) inputs, no finding"; done

# The Linux module in Debian's kernel under qemu, with the real ingest on the
# host (kmod/README.md); bigger by hand: KEXTLOG_KMOD="40000 2000 6" make kmod-test
kmod-test: $(STAMP)
	tests/install-packages.sh kmod
	$(BIN)/python -m pytest kmod/tests

# The fuzzers of fuzz/ (Python, atheris) and kext/fuzz (C, libFuzzer), see
# docs/fuzzing.md: a short round in `make test`, a long one by hand,
# FUZZ_SECONDS each: make fuzz FUZZ_SECONDS=3600
FUZZ_TARGETS := fuzz/fuzz_wire.py fuzz/fuzz_parsers.py
FUZZ_RUNS    ?= 3000
FUZZ_SECONDS ?= 600

fuzz: $(STAMP)
	tests/install-packages.sh tools
	$(MAKE) -C kext fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)
	@for target in $(FUZZ_TARGETS); do \
	    $(BIN)/python $$target -runs=-1 -max_total_time=$(FUZZ_SECONDS) || exit 1; done

# ruff, and the size proxies of kextlog_store/ (tools/check_sizes.py; the
# suite runs it too: tests/test_check_sizes.py).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python tools/check_sizes.py

check:
	tests/install-packages.sh tools
	$(MAKE) -C kext check KERNEL_SDK=$(KERNEL_SDK)

# The ingest daemon as a service (as root; README "Running as a service"): the
# systemd unit (Linux) or the launchd plist (macOS) with kextlog's path in it,
# and the example configuration unless one is there.  KEXTLOG_PATH: an
# installed kextlog (a service cannot run one under /home); DESTDIR: a staging root.
KEXTLOG_PATH ?= $(abspath $(KEXTLOG))
CONFIG_FILE  := $(DESTDIR)/etc/kextlog/kextlog.toml
MAC_SOURCE   := kctl:com.github.kextlog.bsd-kext-log

install-service:
	install -d -m 0755 $(DESTDIR)/etc/kextlog
ifeq ($(shell uname -s),Darwin)
	install -d -m 0755 $(DESTDIR)/Library/LaunchDaemons $(DESTDIR)/var/log/kextlog
	sed 's|@KEXTLOG@|$(KEXTLOG_PATH)|' service/com.kextlog.ingest.plist \
	    > $(DESTDIR)/Library/LaunchDaemons/com.kextlog.ingest.plist
	test -e $(CONFIG_FILE) || sed 's|^sources = .*|sources = ["$(MAC_SOURCE)"]|' \
	    service/kextlog.toml > $(CONFIG_FILE)
	@echo "then: sudo launchctl bootstrap system /Library/LaunchDaemons/com.kextlog.ingest.plist"
else
	install -d -m 0755 $(DESTDIR)/etc/systemd/system
	sed 's|@KEXTLOG@|$(KEXTLOG_PATH)|' service/kextlog-ingest.service \
	    > $(DESTDIR)/etc/systemd/system/kextlog-ingest.service
	test -e $(CONFIG_FILE) || install -m 0644 service/kextlog.toml $(CONFIG_FILE)
	@echo "then: systemctl daemon-reload && systemctl enable --now kextlog-ingest"
endif

# The demo kext, with Apple's tools (macOS); see kext/README.md.
kext:
	$(MAKE) -C kext kext

clean:
	$(MAKE) -C kext clean
	$(MAKE) -C kmod clean
	rm -rf $(VENV) $(RUN_DIR) build *.egg-info kextlog_store/_native*.so

# Benchmarks (not part of `make test`): every figure of docs/benchmarks.md.
BENCH_C := bench/out/single_writer bench/out/log_printf bench/out/lock_hold
CORE_C  := kext/core/kextlog_codec.c kext/core/kextlog_ring.c kext/core/kextlog_core.c

bench/out/single_writer: bench/single_writer.c kext/sim/kextlog_workload.c $(NATIVE_SOURCES)
	@mkdir -p $(@D)
	@test -f /usr/include/sqlite3.h || { apt-get update -qq && apt-get install -y -qq libsqlite3-dev; }
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -Ikext/include -Ikext/core -Ikext/sim \
	    bench/single_writer.c kext/sim/kextlog_workload.c -lsqlite3 -o $@

bench/out/log_printf: bench/log_printf.c $(CORE_C) $(NATIVE_SOURCES)
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -Ikext/include -Ikext/core \
	    bench/log_printf.c $(CORE_C) -lpthread -o $@

bench/out/lock_hold: bench/lock_hold.c kext/sim/kextlog_workload.c $(CORE_C) $(NATIVE_SOURCES)
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -Ikext/include -Ikext/core -Ikext/sim \
	    bench/lock_hold.c kext/sim/kextlog_workload.c $(CORE_C) -lpthread -o $@

bench: $(STAMP) $(BENCH_C)
	tests/install-packages.sh tests journal
	$(BIN)/python bench/run.py --json bench/out/results.json

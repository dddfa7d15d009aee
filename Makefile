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
                  kextlog_store/_build_native.py setup.py pyproject.toml

.PHONY: all install run test lint kext check clean

all: install

$(STAMP): $(NATIVE_SOURCES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

# The simulated kext serves its socket; ingest stores what it sends in the
# default database (see README); Ctrl-C stops both.
run: $(STAMP)
	@mkdir -p $(RUN_DIR)
	@echo "make run: simulated kext on $(SIM_SOCKET); query with: $(KEXTLOG) query --level error --since 1h"
	@$(KEXTLOG) simulate --socket $(SIM_SOCKET) --quiet-losses & sim=$$!; \
	 trap 'kill $$sim 2>/dev/null; wait $$sim' EXIT INT TERM; \
	 $(KEXTLOG) ingest --source unix:$(SIM_SOCKET)

test: $(STAMP)
	$(MAKE) -C kext check KERNEL_SDK=$(KERNEL_SDK)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

kext check:
	$(MAKE) -C kext check KERNEL_SDK=$(KERNEL_SDK)

clean:
	$(MAKE) -C kext clean
	rm -rf $(VENV) $(RUN_DIR) build *.egg-info kextlog_store/_native*.so

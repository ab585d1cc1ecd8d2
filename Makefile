# Top-level entry points. Each installs what is missing (Debian packages, as
# root), configures with CMake and runs. See README.md.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
PREFIX ?= /usr/local
BUILD ?= build
BUILD_TEST ?= build-test
BUILD_FUZZ ?= build-fuzz
FUZZ_SECONDS ?= 20

# Debian packages the build, tests and benchmarks need.
DEPS := build-essential cmake pkg-config libxxhash-dev libjansson-dev libsimdjson-dev zlib1g-dev \
        libzstd-dev liblz4-dev liblzma-dev libbz2-dev libsodium-dev libhdf5-dev python3-h5py \
        clang libclang-rt-14-dev python3-numpy python3-torch python3-lz4 python3-joblib hyperfine time \
        python3-dev python3-setuptools python3-pip python3-venv python3-pytest python3-skorch \
        hdf5-plugin-lzf liblzf1 hdf5-filter-plugin hdf5-filter-plugin-blosc-serial \
        openmpi-bin libopenmpi-dev python3-mpi4py \
        libcurl4-openssl-dev curl
# The Python package is built and tested with Debian's interpreter, the one
# that has Debian's numpy, torch and skorch (a python3 earlier on PATH may not).
PYTHON ?= /usr/bin/python3
PYDIR := bindings/python

# Debian packages only `make demo` installs, for its PyTorch step (skorch
# trains, the C model predicts, and back). The step is skipped, with a
# message, when they cannot be installed or imported. `make test` installs
# python3-torch itself (DEPS): the .pt tests cross-check against real torch.
DEMO_DEPS := python3-torch python3-skorch

.PHONY: all deps s3rver-dep demo-deps build python demo test test-unit test-fuzz test-python bench install \
        install-python clean

all: build

deps: s3rver-dep
	@missing=""; for p in $(DEPS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to apt-get install:$$missing" >&2; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; \
	fi

# s3rver (npm, with Debian's nodejs): the S3 test server when the machine has
# no moto_server (tests/s3_harness.py), and a second server the S3 client is
# tested on. Best effort: without it those tests skip, saying why.
S3RVER_VERSION := 3.7.1
s3rver-dep:
	@command -v s3rver >/dev/null 2>&1 || { \
	  if ! command -v npm >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm || true; \
	  fi; \
	  if command -v npm >/dev/null 2>&1; then \
	    echo "installing s3rver@$(S3RVER_VERSION) (npm)"; \
	    npm install -g --no-fund --no-audit s3rver@$(S3RVER_VERSION) || \
	      echo "s3rver could not be installed: the S3 tests use moto_server only" >&2; \
	  else echo "no npm: the S3 tests use moto_server only" >&2; fi; }

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DCAIRN_TESTS=OFF >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	$(MAKE) --no-print-directory python

# The extension cairn._cairn, in place (bindings/python/cairn/), against
# $(BUILD)/libcairn.a: `PYTHONPATH=bindings/python $(PYTHON)` then imports it.
python:
	cd $(PYDIR) && CAIRN_BUILD_DIR=$(abspath $(BUILD)) $(PYTHON) setup.py -q build_ext --inplace

demo-deps:
	@missing=""; for p in $(DEMO_DEPS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "demo: not root, cannot install$$missing: its PyTorch step will be skipped" >&2; \
	  else \
	    echo "installing:$$missing"; export DEBIAN_FRONTEND=noninteractive; \
	    { apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; } || \
	      echo "demo: could not install$$missing: its PyTorch step will be skipped" >&2; \
	  fi; \
	fi

demo: build demo-deps
	bash examples/demo.sh $(BUILD)/cairn

test: deps test-unit test-fuzz test-python

test-unit:
	cmake -S . -B $(BUILD_TEST) -DCMAKE_BUILD_TYPE=Debug -DCAIRN_SANITIZE=ON >/dev/null
	cmake --build $(BUILD_TEST) -j $(JOBS)
	cd $(BUILD_TEST) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

# The Python package's pytest suite, on the Release library of `make build`
# (the sanitizer build of test-unit also runs its hostile-input and lifetime
# tests against an ASan/UBSan build of the extension: python_asan in ctest).
test-python: build
	cd $(PYDIR) && CAIRN_BUILD_DIR=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -p no:cacheprovider tests

test-fuzz:
	CC=clang CXX=clang++ cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCAIRN_SANITIZE=ON \
	  -DCAIRN_FUZZ=ON -DCAIRN_FUZZ_SECONDS=$(FUZZ_SECONDS) >/dev/null
	cmake --build $(BUILD_FUZZ) -j $(JOBS)
	cd $(BUILD_FUZZ) && ctest --output-on-failure -L fuzz -j $(JOBS)

bench: build
	cmake -S . -B $(BUILD) -DCAIRN_BENCH=ON >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	bash bench/run.sh $(BUILD)

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

# The Python package, with Debian's pip and no index, into
# $(PREFIX)/lib/python3/dist-packages (on Debian's sys.path for PREFIX=/usr/local).
install-python: build
	CAIRN_BUILD_DIR=$(abspath $(BUILD)) $(PYTHON) -m pip install --no-build-isolation --no-deps \
	  --no-index --upgrade --target $(DESTDIR)$(PREFIX)/lib/python3/dist-packages ./$(PYDIR)

clean:
	rm -rf $(BUILD) $(BUILD_TEST) $(BUILD_FUZZ) $(PYDIR)/build $(PYDIR)/cairn/*.so

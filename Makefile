# Thin wrapper over CMake presets; see CMakePresets.json.
PY ?= /usr/bin/python3
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 30

.PHONY: all debug release asan fuzz deps check unit-asan fuzz-smoke conformance integration \
        demo bench clean format

all: debug

deps:
	@bash scripts/deps.sh

debug:
	@cmake --preset debug >/dev/null
	@cmake --build build -j $(JOBS)

release:
	@cmake --preset release >/dev/null
	@cmake --build build-release -j $(JOBS)

asan:
	@cmake --preset asan >/dev/null
	@cmake --build build-asan -j $(JOBS)

fuzz:
	@cmake --preset fuzz -DPC_FUZZ_SECONDS=$(FUZZ_SECONDS) >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

unit-asan: asan
	@echo "== unit tests (ASan+UBSan) =="
	@cd build-asan && ctest -L unit --output-on-failure -j $(JOBS)

fuzz-smoke: fuzz
	@echo "== fuzz smoke ($(FUZZ_SECONDS)s per target) =="
	@cd build-fuzz && ctest -L fuzz --output-on-failure -j $(JOBS)

conformance: release
	@echo "== Rego conformance (OPA v1 cases) =="
	@bash scripts/conformance.sh build-release/portcullis

integration: debug
	@echo "== integration tests (real PostgreSQL, real clients) =="
	@for p in playwright-core s3rver @aws-sdk/client-s3; do [ -d node_modules/$$p ] || { npm install --no-audit --no-fund >/dev/null; break; }; done
	@PORTCULLIS_BIN=$(CURDIR)/build/portcullis $(PY) -m pytest -q -p no:cacheprovider tests/integration

check: deps
	@$(MAKE) --no-print-directory unit-asan
	@$(MAKE) --no-print-directory fuzz-smoke
	@$(MAKE) --no-print-directory conformance
	@$(MAKE) --no-print-directory integration

demo: deps debug
	@bash scripts/demo.sh

bench: deps release
	@bash bench/pgbench.sh
	@build-release/policy_bench

format:
	@clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'fuzz/*.c' 'bench/*.c')

clean:
	rm -rf build build-release build-asan build-fuzz .demo

# Makefile - a thin wrapper around CMake/CTest: the commands a developer and
# CI type.  Real build logic lives in CMakeLists.txt; see README.md.
#
#   make / make build   release build (-O2) in build/release
#   make test           deps + ASan/UBSan build in build/test + ctest
#   make demo           deps + release build + `isoflow demo --duration 30`
#                       (examples/home as processes: cloud, edge, 50 devices;
#                       the Wasm showcase: scripts/demo_wasm.sh BUILD_DIR)
#   make spec           deps + release build + the whole spec suite, summed
#   make fuzz           libFuzzer build in build/fuzz, runs FUZZ_SECONDS
#                       (FUZZ_TARGET=wasm|flow|frame|sig|ctl|agent, default wasm)
#   make bench          deps + release build + benchmarks (bench/RESULTS.md)
#   make clean          removes build/

JOBS         ?= 2
FUZZ_SECONDS ?= 60
FUZZ_TARGET  ?= wasm
SPEC_DIR     ?= $(abspath $(CURDIR)/../shared/wasm-spec)
CMAKE        ?= cmake
CTEST        ?= ctest

RELEASE := build/release
TESTDIR := build/test
FUZZDIR := build/fuzz
CORPUS  := tests/fuzz/corpus/wasm

SAN_ENV := ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1 \
           UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

.PHONY: all build deps release test demo spec fuzz bench clean

all: build

build: deps release

deps:
	@scripts/deps.sh

release:
	$(CMAKE) -S . -B $(RELEASE) -DCMAKE_BUILD_TYPE=Release \
	    -DISOFLOW_SPEC_DIR=$(SPEC_DIR)
	$(CMAKE) --build $(RELEASE) -j$(JOBS)

# -O1 -g with sanitizers: fast enough for the spec suite, still debuggable,
# asserts stay on (no -DNDEBUG).
test: deps
	$(CMAKE) -S . -B $(TESTDIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DISOFLOW_SANITIZE=ON \
	    -DISOFLOW_SPEC_DIR=$(SPEC_DIR)
	$(CMAKE) --build $(TESTDIR) -j$(JOBS)
	cd $(TESTDIR) && $(CTEST) --output-on-failure -j$(JOBS)

demo: deps release
	@bash scripts/demo.sh $(RELEASE) 30

spec: deps release
	@bash tests/spec/convert.sh $(SPEC_DIR)/core $(RELEASE)/spec/core
	@$(RELEASE)/tests/spec_driver --known tests/spec/KNOWN_FAILURES \
	    $(RELEASE)/spec/core/*.json

# wasm: new interesting inputs land in the committed corpus (first
# directory); minimise it before committing (see tests/fuzz/README.md).
# Other targets (flow, frame) grow build/fuzz/work/TARGET, seeded by the
# committed tests/fuzz/corpus/TARGET.
fuzz: deps
	$(CMAKE) -S . -B $(FUZZDIR) -DCMAKE_C_COMPILER=clang-19 \
	    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DISOFLOW_FUZZ=ON \
	    -DISOFLOW_SPEC_DIR=$(SPEC_DIR)
	$(CMAKE) --build $(FUZZDIR) -j$(JOBS) --target fuzz_$(FUZZ_TARGET)
ifneq ($(FUZZ_TARGET),wasm)
	@mkdir -p $(FUZZDIR)/work/$(FUZZ_TARGET) $(FUZZDIR)/artifacts
	$(SAN_ENV) $(FUZZDIR)/tests/fuzz_$(FUZZ_TARGET) \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    -artifact_prefix=$(FUZZDIR)/artifacts/ $(FUZZDIR)/work/$(FUZZ_TARGET) \
	    tests/fuzz/corpus/$(FUZZ_TARGET)
else
	@bash tests/spec/convert.sh $(SPEC_DIR)/core $(FUZZDIR)/spec/core
	@mkdir -p $(FUZZDIR)/corpus $(FUZZDIR)/artifacts $(CORPUS)
	@cp $(FUZZDIR)/spec/core/*.wasm $(FUZZDIR)/corpus/
	$(SAN_ENV) $(FUZZDIR)/tests/fuzz_wasm -max_total_time=$(FUZZ_SECONDS) \
	    -timeout=10 -rss_limit_mb=2048 \
	    -artifact_prefix=$(FUZZDIR)/artifacts/ $(CORPUS) $(FUZZDIR)/corpus
endif

# Native vs isoflow vs node on bench/programs + engine micro-benchmarks;
# BENCH_REPS (default 3) repetitions; writes build/bench/results.json.
bench: deps release
	@python3 bench/run.py --build $(RELEASE)

clean:
	rm -rf build

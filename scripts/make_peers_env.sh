#!/usr/bin/env bash
# Create .venv-peers: the real lm-evaluation-harness and inspect_ai beside decbench (editable), for
# the tests of `bench score --from lm-eval|inspect` that run both tools live (pytest -m peers).
# Idempotent. torch is pinned first (the CPU wheel) and kept under a constraint.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${PEERS_VENV:-.venv-peers}
TORCH=2.13.0
LM_EVAL=0.4.13
INSPECT=0.3.285
PY="$VENV/bin/python"
STAMP="$VENV/.peers-installed"

[ -x "$PY" ] || python3 -m venv "$VENV"
PIP=("$PY" -m pip install --disable-pip-version-check -q)
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ "$0" -nt "$STAMP" ]; then
    "$PY" -c "import torch" 2>/dev/null || "${PIP[@]}" "torch==$TORCH"
    echo "torch==$TORCH" > "$VENV/pins.txt"
    "${PIP[@]}" -c "$VENV/pins.txt" -e . pytest "lm-eval==$LM_EVAL" "inspect-ai==$INSPECT" accelerate
    touch "$STAMP"
fi
"$PY" -c "import lm_eval, inspect_ai; from importlib.metadata import version as v; print('$VENV: lm-eval', v('lm_eval'), 'inspect_ai', v('inspect_ai'))"

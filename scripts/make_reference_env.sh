#!/usr/bin/env bash
# Create .venv-ref: transformers 4.46.3 (the last releases still shipping contrastive search in
# generate()) beside our transformers 5 environment, used only by tests/reference/ and benchmarks/.
# Idempotent: re-running checks the pins and installs nothing when they already match.
# The project itself never imports from this environment.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-ref
TORCH=2.13.0
TRANSFORMERS=4.46.3

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)

have() {  # have PACKAGE VERSION: is exactly that version installed?
    "$VENV/bin/python" - "$1" "$2" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version(sys.argv[1]).split("+")[0] == sys.argv[2] else 1)
PY
}

# torch first and pinned (the local CPU wheel), so transformers never pulls another torch.
have torch "$TORCH" || "${PIP[@]}" "torch==$TORCH"
have transformers "$TRANSFORMERS" || "${PIP[@]}" "torch==$TORCH" "transformers==$TRANSFORMERS"

"$VENV/bin/python" -c "import torch, transformers; print(f'$VENV: torch {torch.__version__}, transformers {transformers.__version__}')"

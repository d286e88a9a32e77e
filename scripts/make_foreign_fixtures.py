"""Write tests/fixtures/foreign/: an lm-eval samples file (with its results JSON) and an inspect_ai
log, made by the real tools on stories260K. Run in .venv-peers (make peers-env):

    .venv-peers/bin/python scripts/make_foreign_fixtures.py
"""

import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from foreign_tools import run_inspect, run_lm_eval  # noqa: E402

model = str(REPO.parent / "shared" / "models" / "stories260K")
target = REPO / "tests" / "fixtures" / "foreign"
target.mkdir(parents=True, exist_ok=True)
with tempfile.TemporaryDirectory() as scratch:
    samples = run_lm_eval(model, Path(scratch))
    for f in samples.parent.iterdir():
        shutil.copy(f, target / f.name)
    log = run_inspect(model, Path(scratch))
    shutil.copy(log, target / "stories.eval")
print(sorted(p.name for p in target.iterdir()))

#!/usr/bin/env bash
# The project's regression gate: a small pinned benchmark checked against the committed baseline.
#
# stories260K on a fixed cd-wikitext subset (12 prompts, 32 new tokens, seed 0), every decoder
# whose needs are met plus entropy-matched at a fixed target of 1.0 nat, generated into a
# temporary store, then `bench check --exact` against tests/ci_baseline/cd-wikitext-stories260K.csv:
# exit 1 when a metric moves the wrong way beyond the baseline's interval, or when a
# deterministic decoder's tokens change; exit 2 when the two cannot be compared.
#
#   scripts/ci_regression.sh            # check (what CI runs)
#   scripts/ci_regression.sh --update   # deliberately replace the baseline (see leaderboards/README.md)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SHARED="${BENCH_SHARED:-$(cd "$ROOT/.." && pwd)/shared}"
export BENCH_MODEL="$SHARED/models/stories260K"
export BENCH_DATA_DIR="$SHARED/data"
BASELINE=tests/ci_baseline/cd-wikitext-stories260K.csv
BENCH="$ROOT/.venv/bin/bench"
[ -x "$BENCH" ] || BENCH=bench

STORE="$(mktemp -d)"
trap 'rm -rf "$STORE"' EXIT
"$BENCH" run --suite cd-wikitext --decoder all --decoder entropy-matched:target=1.0 \
  --num-prompts 12 --max-new-tokens 32 --seed 0 --device cpu --dtype float32 --out "$STORE/runs" >/dev/null

if [ "${1:-}" = "--update" ]; then
  "$BENCH" leaderboard "$STORE/runs" --out "$STORE/baseline" >/dev/null
  cp "$STORE/baseline.csv" "$BASELINE"
  echo "baseline updated: $BASELINE (review 'git diff $BASELINE' and commit it with the change that explains it)"
  exit 0
fi
"$BENCH" check --baseline "$BASELINE" "$STORE/runs" --exact

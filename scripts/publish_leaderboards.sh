#!/usr/bin/env bash
# Regenerate the project's published leaderboards (leaderboards/stories260k-<suite>.{csv,md,html}).
#
# stories260K on cd-wikitext and wikitext, every decoder (a hyperfitted checkpoint is trained
# first with the README's scaled-down recipe, so greedy-hyperfit, entropy-matched and
# static-reweight run too) plus the entropy-matched control at a fixed target of 1.0 nat and one
# small grid per sampling family (the quality-diversity front of the page), on a
# deterministic subset of NUM_PROMPTS prompts with MAX_NEW_TOKENS new tokens (200 x 128 keeps it
# to minutes on 2 cores). MAUVE (stories260K as featurizer, the literature's 128-token convention)
# and SimCTG's coherence (all-MiniLM-L6-v2) are scored too.
# Runs are kept in STORE (default runs/publish, git-ignored), so a second call only redoes
# what is missing and re-renders the tables.
#
# Then the same on the real model, SmolLM2-135M-Instruct (30 layers, width 576, from its GGUF file
# in ../shared; leaderboards/smollm2-135m-<suite>.*), sized for 2 CPU cores: SMOL_PROMPTS prompts
# x SMOL_TOKENS new tokens, a late-LoRA hyperfit (the last 5 blocks) on Grimm's fairy tales to
# near-zero loss, MAUVE with SmolLM2 itself as the featurizer (SMOL_MAUVE_LENGTH tokens).
# PUBLISH=stories260k or PUBLISH=smollm2 makes one of the two.
#
#   scripts/publish_leaderboards.sh            # from the repository root, .venv set up
#   STORE=/tmp/pub NUM_PROMPTS=50 scripts/publish_leaderboards.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SHARED="${BENCH_SHARED:-$(cd "$ROOT/.." && pwd)/shared}"
export BENCH_MODEL="${BENCH_MODEL:-$SHARED/models/stories260K}"
export BENCH_DATA_DIR="${BENCH_DATA_DIR:-$SHARED/data}"
STORE="${STORE:-runs/publish}"
NUM_PROMPTS="${NUM_PROMPTS:-200}"
MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-128}"
OUT_DIR="${OUT_DIR:-leaderboards}"
BENCH="${BENCH:-$ROOT/.venv/bin/bench}"
command -v "$BENCH" >/dev/null || BENCH=bench

PUBLISH="${PUBLISH:-stories260k,smollm2}"
GRIDS=(--decoder 'temperature:t=0.7|1.3' --decoder 'top-p:p=0.8|0.9' --decoder 'top-k:k=10|100'
       --decoder 'min-p:p=0.05|0.2' --decoder 'typical:tau=0.5|0.8' --decoder 'eta:eta=0.0003|0.004'
       --decoder 'epsilon:eps=0.0003|0.004' --decoder 'contrastive:k=5,alpha=0.4|0.8')
# One small grid per sampling family: the points of the quality-diversity front.

if [[ ",$PUBLISH," == *",stories260k,"* ]]; then
HYPERFIT="${HYPERFIT:-$STORE/hf-stories260K}"
start=$(date +%s)
"$BENCH" hyperfit --model "$BENCH_MODEL" --data "$SHARED/data/pd-stories/grimms_fairy_tales_pg52521.txt" \
  --out "$HYPERFIT" --num-sequences 128 --seq-len 256 --lr 2e-3 --epochs 100 --stop-at-loss 0.05 \
  --threads 1 --no-progress
echo "hyperfit: $(( $(date +%s) - start )) s"

for suite in cd-wikitext wikitext; do
  start=$(date +%s)
  "$BENCH" run --suite "$suite" --decoder all --decoder entropy-matched:target=1.0 --hyperfit "$HYPERFIT" \
    "${GRIDS[@]}" --num-prompts "$NUM_PROMPTS" --max-new-tokens "$MAX_NEW_TOKENS" --seed 0 \
    --score mauve --featurizer "$BENCH_MODEL" --mauve-length 128 --score coherence-sim \
    --out "$STORE/$suite"
  "$BENCH" leaderboard "$STORE/$suite" --out "$OUT_DIR/stories260k-$suite" \
    --title "stories260K on $suite ($NUM_PROMPTS prompts, $MAX_NEW_TOKENS new tokens)"
  echo "$suite: $(( $(date +%s) - start )) s"
done
fi

if [[ ",$PUBLISH," == *",smollm2,"* ]]; then
SMOL="${SMOL:-$SHARED/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf}"
SMOL_PROMPTS="${SMOL_PROMPTS:-32}"
SMOL_TOKENS="${SMOL_TOKENS:-64}"
SMOL_MAUVE_LENGTH="${SMOL_MAUVE_LENGTH:-48}"
SMOL_HYPERFIT="${SMOL_HYPERFIT:-$STORE/hf-smollm2}"
SMOL_SUITES="${SMOL_SUITES:-cd-wikitext wikitext}"  # e.g. SMOL_SUITES=wikitext remakes one
start=$(date +%s)
"$BENCH" hyperfit --model "$SMOL" --data "$SHARED/data/pd-stories/grimms_fairy_tales_pg52521.txt" \
  --out "$SMOL_HYPERFIT" --method late-lora --num-sequences 32 --seq-len 128 --lr 3e-3 --epochs 30 \
  --stop-at-loss 0.1 --threads 2 --no-progress
echo "smollm2 hyperfit: $(( $(date +%s) - start )) s"
for suite in $SMOL_SUITES; do
  start=$(date +%s)
  "$BENCH" run --model "$SMOL" --suite "$suite" --decoder all --decoder entropy-matched:target=1.0 \
    --hyperfit "$SMOL_HYPERFIT" "${GRIDS[@]}" --num-prompts "$SMOL_PROMPTS" --max-new-tokens "$SMOL_TOKENS" \
    --batch-size "$SMOL_PROMPTS" --seed 0 --threads 2 \
    --score mauve --featurizer "$SMOL" --mauve-length "$SMOL_MAUVE_LENGTH" --score coherence-sim \
    --out "$STORE/smollm2-$suite"
  "$BENCH" leaderboard "$STORE/smollm2-$suite" --out "$OUT_DIR/smollm2-135m-$suite" \
    --title "SmolLM2-135M-Instruct (GGUF Q4_1, float32) on $suite ($SMOL_PROMPTS prompts, $SMOL_TOKENS new tokens)"
  echo "smollm2 $suite: $(( $(date +%s) - start )) s"
done
fi

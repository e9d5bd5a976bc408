#!/usr/bin/env bash
# What this repository measures on a GPU node, in one bounded run, from the offline kit (no network):
#   1. install the kit (make wheelhouse KIT_PYTHON=<the node's python>) with pip --no-index;
#   2. probe the paper profile's task graph (python -m softlib.tooling.probe): projected GPU time per task;
#   3. the attack and training benchmarks on the GPU (ratios against torchattacks / a plain loop);
#   4. chapter 01 at the paper profile through the kit's resumable runner (recorded numbers + notebook).
# Usage (repository root on the node):  KIT=build/kit312 OUT=/some/folder benchmarks/gpu_node.sh [SECONDS]
# SECONDS (default 540) bounds the whole run; each stage gets what is left, so a slow stage cuts later ones.
set -u
KIT=${KIT:-build/wheelhouse}
OUT=${OUT:?set OUT to a folder for the results}
PY=${PY:-python3}
DEST=${DEST:-/tmp/softlib-kit}
WORK=${WORK:-/tmp/softlib-gpu-work}  # caches and the kit run's output; OUT gets a few chosen files
TOTAL=${1:-540}
PROFILE=${PROFILE:-paper}  # smoke: a check of this script on a CPU (with SKIP_BENCH=1)
T0=$(date +%s)
left() { echo $(( TOTAL - ($(date +%s) - T0) )); }
say() { echo "[gpu_node +$(( $(date +%s) - T0 ))s] $*"; }
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 PYDEVD_DISABLE_FILE_VALIDATION=1 TQDM_DISABLE=1  # progress bars: not in a log

say "device: $(nvidia-smi -L 2>/dev/null | head -1 || echo none); python $($PY -V 2>&1)"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || exit 1

say "installing the kit from $KIT (pip --no-index) into $DEST"
$PY "$KIT/kit.py" install --dest "$DEST" || { say "kit install failed"; exit 1; }

# this checkout's softlib first (the probe code may be newer than the kit's source), the kit's wheels and data
export PYTHONPATH="$PWD:$DEST/site" SOFTLIB_DATA="$DEST/data" SOFTLIB_RESULTS="$WORK/results"
export SOFTLIB_CACHE="$WORK/cache-bench"

say "probing the $PROFILE profile (budget $(( $(left) * 35 / 100 )) s)"
timeout $(( $(left) * 45 / 100 )) $PY -m softlib.tooling.probe --profile $PROFILE --seeds 1 3 \
    --budget-s $(( $(left) * 35 / 100 )) --out "$OUT/probe-$PROFILE.json" 2>&1 | grep -v Warning | tail -45

if [ -z "${SKIP_BENCH:-}" ]; then
say "benchmarks (attacks, training)"
timeout $(( $(left) * 22 / 100 )) $PY benchmarks/bench_attacks.py --n 1024 --n-maxconf 256 --n-deepfool 64 2>&1 | tail -25
timeout $(( $(left) * 22 / 100 )) $PY benchmarks/bench_training.py --n 16384 2>&1 | tail -12
cp results/bench-*.json "$OUT/" 2>/dev/null
fi

step=$(( ($(left) - 30) / 60 ))
if [ "$step" -ge 2 ]; then
  say "chapter 01 at the $PROFILE profile through the kit runner (at most $step min)"
  $PY "$KIT/kit.py" run --dest "$DEST" --out "$WORK/kit" --profile $PROFILE --only 01 --step-minutes "$step"
  say "kit run exit $?"
  tail -5 "$WORK/kit/01_softmax_lemmas.log" 2>/dev/null
  cp "$WORK/kit/results/$PROFILE/01_softmax_lemmas.json" "$WORK/kit/chapters/01_softmax_lemmas.ipynb" \
     "$WORK/kit/kit-state.json" "$OUT/" 2>/dev/null
  for f in "$WORK"/kit/cache/models/*.json; do [ -f "$f" ] && cp "$f" "$OUT/model-cnn-$PROFILE.json"; done
else
  say "no time left for chapter 01"
fi
say "done"

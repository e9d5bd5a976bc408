#!/usr/bin/env bash
# What this repository measures on a GPU node, in one bounded run, from the offline kit (no network):
#   install   the kit (make wheelhouse KIT_PYTHON=<the node's python>) with pip --no-index (always first);
#   probe     the paper profile's task graph (python -m softlib.tooling.probe): projected GPU time per task;
#   gpubench  where GPU training time goes (benchmarks/bench_gpu_training.py);
#   concurrency  several trainings side by side on the one GPU (benchmarks/bench_gpu_concurrency.py);
#   attacks   the attack benchmark on the GPU (ratios against torchattacks);
#   validate  one whole paper-profile task, timed, against the probe's projection (chapter 05's CE grid cell);
#   ch01      chapter 01 at the paper profile through the kit's resumable runner (recorded numbers + notebook);
#   seeds     the seed replicates of chapters 02-03 (seeds 1 .. cnn_seeds-1), one process per seed side by side on
#             the GPU, for a seed 0 recorded elsewhere: the replicates' records and logs come back in seeds.tar.gz;
#   repro     the quick book on this device against the committed (CPU) record, as `make book` on a fresh clone
#             builds it (make verify-repro RECORDED=1 CLONE=1): results/repro-quick.json as repro-quick-<device>.json.
#   (seeds runs in the background while repro runs: both share the GPU)
# Usage (repository root on the node):
#   KIT=build/kit312 OUT=/some/folder [STAGES="probe gpubench attacks validate ch01"] benchmarks/gpu_node.sh [SECONDS]
# SECONDS (default 540) bounds the whole run; each stage gets a share of what is left.
set -u
KIT=${KIT:-build/wheelhouse}
OUT=${OUT:?set OUT to a folder for the results}
PY=${PY:-python3}
DEST=${DEST:-/tmp/softlib-kit}
WORK=${WORK:-/tmp/softlib-gpu-work}  # caches and the kit run's output; OUT gets a few chosen files
TOTAL=${1:-540}
PROFILE=${PROFILE:-paper}  # smoke: a check of this script on a CPU
STAGES=${STAGES:-probe gpubench attacks validate ch01}
T0=$(date +%s)
left() { echo $(( TOTAL - ($(date +%s) - T0) )); }
say() { echo "[gpu_node +$(( $(date +%s) - T0 ))s] $*"; }
want() { case " $STAGES " in *" $1 "*) return 0;; esac; return 1; }
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 PYDEVD_DISABLE_FILE_VALIDATION=1 TQDM_DISABLE=1  # progress bars: not in a log

say "device: $(nvidia-smi -L 2>/dev/null | head -1 || echo none); python $($PY -V 2>&1); stages: $STAGES"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || exit 1

say "installing the kit from $KIT (pip --no-index) into $DEST"
$PY "$KIT/kit.py" install --dest "$DEST" || { say "kit install failed"; exit 1; }

# this checkout's softlib first (it may be newer than the kit's source), the kit's wheels and data
export PYTHONPATH="$PWD:$DEST/site" SOFTLIB_DATA="$DEST/data" SOFTLIB_RESULTS="$WORK/results"
export SOFTLIB_CACHE="$WORK/cache-bench"

if want concurrency; then
  say "several trainings on one GPU"
  timeout $(( $(left) * 60 / 100 )) $PY benchmarks/bench_gpu_concurrency.py ${CONC_ARGS:-} 2>&1 | tail -8
fi
if want probe; then
  say "probing the $PROFILE profile (budget $(( $(left) * 30 / 100 )) s)"
  timeout $(( $(left) * 40 / 100 )) $PY -m softlib.tooling.probe --profile $PROFILE --seeds 1 3 ${PROBE_KINDS:+--kinds $PROBE_KINDS} \
      --budget-s $(( $(left) * 30 / 100 )) --out "$OUT/probe-$PROFILE.json" 2>&1 | grep -v Warning | tail -45
fi
if want gpubench; then
  say "GPU training benchmark"
  timeout $(( $(left) * 35 / 100 )) $PY benchmarks/bench_gpu_training.py 2>&1 | tail -22
fi
if want attacks; then
  say "attack benchmark"
  timeout $(( $(left) * 30 / 100 )) $PY benchmarks/bench_attacks.py --n 1024 --n-maxconf 256 --n-deepfool 64 2>&1 | tail -25
fi
cp results/bench-nvidia*.json "$OUT/" 2>/dev/null
if want validate; then
  say "one whole task: chapter 05's CE grid cell (ResNet-32, 10 epochs, all 60,000 images), timed"
  timeout $(( $(left) * 50 / 100 )) $PY - <<'PY' 2>&1 | grep -v Warning | tail -5
import json, os, time, torch
from softlib import zoo
from softlib.profiles import get_profile
p = get_profile(os.environ.get("PROFILE", "paper"))
t0 = time.perf_counter()
m = zoo.get_model("resnet", "mnist", p, 0, loss="ce", loss_params=None, depth=p.resnet_depth,
                  epochs=p.resnet_grid_epochs, train_size=p.grid_train_size)
torch.cuda.synchronize() if torch.cuda.is_available() else None
wall = time.perf_counter() - t0
rec = {"task": "resnet mnist ce (chapter 05 grid cell 0,0)", "wall_s": round(wall, 2), "key": m.key,
       "test_acc": m.meta["test_acc"], "train_wall_s": m.meta["wall_s"], "device": m.meta["device_name"],
       "epochs": m.meta["epochs"]}
print(json.dumps(rec))
json.dump(rec, open(os.environ["OUT"] + "/validate.json", "w"), indent=1)
PY
fi
if want ch01; then
  step=$(( ($(left) - 30) / 60 ))
  if [ "$step" -ge 1 ]; then
    say "chapter 01 at the $PROFILE profile through the kit runner (at most $step min)"
    $PY "$KIT/kit.py" run --dest "$DEST" --out "$WORK/kit" --profile $PROFILE --only 01 --step-minutes "$step"
    say "kit run exit $?"
    cp "$WORK/kit/results/$PROFILE/01_softmax_lemmas.json" "$WORK/kit/chapters/01_softmax_lemmas.ipynb" \
       "$WORK/kit/kit-state.json" "$OUT/" 2>/dev/null
  else
    say "no time left for chapter 01"
  fi
fi
seed_pids=""
if want seeds; then
  n=$($PY -c "from softlib.profiles import get_profile; print(get_profile('$PROFILE').cnn_seeds)")
  say "seed replicates 1..$((n - 1)) of chapters 02-03 at the $PROFILE profile, side by side (at most $(( $(left) - 20 )) s)"
  for k in $(seq 1 $((n - 1))); do
    timeout $(( $(left) - 20 )) $PY -m softlib.tooling.notebooks run --profile $PROFILE --only 02 03 --replicate $k \
        --out "$WORK/chapters" > "$WORK/seed$k.log" 2>&1 &
    seed_pids="$seed_pids $!"
  done
fi
if want repro; then
  rp=${REPRO_PROFILE:-quick}
  say "the $rp book (${REPRO_ONLY:-every chapter}) on this device against the committed record (at most $(( $(left) - 45 )) s)"
  rm -rf "$WORK/rec" "$WORK/repro" && mkdir -p "$WORK/rec" && cp -r "results/$rp" "$WORK/rec/"
  th=${REPRO_THREADS:-4}
  repro=($PY -m softlib.tooling.repro --profile "$rp" --threads "$th" "$th" --against-recorded --as-make-book --work "$WORK/repro")
  SOFTLIB_RESULTS="$WORK/rec" timeout $(( $(left) - 45 )) "${repro[@]}" --only ${REPRO_ONLY:-01 02 03 04 05 06} \
      > "$WORK/repro.log" 2>&1
  say "repro exit $?"
  if [ ! -f "$WORK/rec/repro-$rp.json" ]; then  # out of time: compare the chapters that finished
    done_ch=$(cd "$WORK/repro/threads-$th/results/$rp" 2>/dev/null && ls [0-9][0-9]_*.json | cut -c1-2 | tr '\n' ' ')
    say "compared as far as it got: chapters ${done_ch:-none}"
    [ -n "$done_ch" ] && SOFTLIB_RESULTS="$WORK/rec" "${repro[@]}" --only $done_ch --compare-only >> "$WORK/repro.log" 2>&1
  fi
  grep -v Warning "$WORK/repro.log" | grep "executing\|: [0-9.]* s$\|FAILED\|claims,\|rror" | tail -14
  cp "$WORK/rec/repro-$rp.json" "$OUT/repro-$rp-device.json" 2>/dev/null
  gzip -c "$WORK/repro.log" > "$OUT/repro.log.gz"
fi
if [ -n "$seed_pids" ]; then
  for p in $seed_pids; do wait $p; say "replicate process $p: exit $?"; done
  grep -h "executing\|: [0-9.]* s$\|FAILED\|rror" "$WORK"/seed*.log | grep -v Warning | tail -20
  tar -czf "$OUT/seeds.tar.gz" -C "$WORK" results/$PROFILE/seeds $(cd "$WORK" && ls seed*.log) 2>/dev/null
  ls -la "$WORK/results/$PROFILE/seeds" 2>/dev/null
fi
say "done"

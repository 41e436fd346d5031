#!/usr/bin/env bash
# The reference experiment on one GPU, timed, in one command (make gpu-check): the protocol of
# preset EXP (default seed: pretrain, then its grid of 3 arms x 1,000/3,000/all labels x 3 seeds
# through Hydra's joblib launcher, JOBS cells at a time, then the report), and the GPU tests.
# For an offline GPU box: what python3 lacks of hydra-core, omegaconf, the joblib launcher,
# scikit-learn, liger-kernel and keras comes from bench/wheels (make gpu-wheels on a machine with
# internet); the IMDB archive is data/aclImdb_v1.tar.gz or $LMFT_IMDB_ARCHIVE. Runs and the id
# cache go to $WORK; $OUT gets log.txt (every stage's lines with the script's clock),
# runs.tar.gz (reports, metrics, histories and TensorBoard files; no weights) and, on a GPU,
# gpu_util.csv (utilisation twice a second, summed up in the log). Both default to
# outputs/gpu_check. After the sweep the log gets each cell's start, training, test and end on
# its clock (bench/timeline.py).
#
#   GRID="..."   Hydra overrides of the preset's grid, e.g. EXP=ulmfit GRID="data.train_size=all,1000,100"
#   FAST=1       the scheduling that fits the protocol into minutes; no result depends on it:
#                CUDA's MPS where the driver has it (the processes' kernels side by side, not by
#                turns), the baseline's cells beside the LM, one sweep per neural arm started
#                LEAD_S (20) s before the LM expects to end (their start-up overlaps its last
#                epochs; the pretrained cells wait up to WAIT_S, 120 s, for its encoder), cells
#                niced so that the LM keeps its CPU. MPS=0: all of it but MPS.
#   DEADLINE_S=N the protocol's sweeps stop at second N of the script's clock, and the report
#                and runs.tar.gz of the cells that finished follow (for a job with a time limit)
# The exit status is 1 if a stage failed (each is said when it fails, and the log's last line
# names them all), else 0; sweeps stopped at DEADLINE_S are no failure.
# Measurements of their own, each after the protocol, each only if it can end within BUDGET_S
# seconds of the script's start (else skipped, with a note):
#   ABLATION=1   the sweep <EXP>_ablation from the protocol's LM: LM budgets (the encoders kept
#                after SNAPSHOTS epochs) x mean/concat pooling at ABLATION_SIZE (1,000) labels,
#                and beside it mean/concat x both arms x all/ABLATION_SIZE labels; 3 seeds.
#                The protocol's mean-pooling cells at those sizes are copied, not trained again.
#                ABLATION=only: the LM and the ablation, without the protocol's sweep.
#   EXTRA="..."  more cells in the protocol's sweep (e.g. "data.train_size=1000 seed=3,4,5,6,7,8,9"),
#                then its report again
#   B32_EPOCHS=N an LM at the reference's batch 32 (lr 1e-3) for N epochs, to set beside the
#                protocol's at equal epochs (validated at batch 512, as the protocol's LM);
#                B32_SIZE=N then its pretrained cells at N labels (the preset's seeds) in the
#                sweep <EXP>_b32, against the protocol's scratch and baseline cells there, copied
#   BENCH=1      bench/bench.py --keras: lmft (also like for like), a plain loop and the
#                reference's Keras code, BENCH_REPEATS (3) passes
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/gpu_check}
EXP=${EXP:-seed}
JOBS=${JOBS:-8}
BUDGET_S=${BUDGET_S:-590}
PY=${PYTHON:-python3}
TRAINER=${TRAINER:-gpu}  # cpu: a dry run of this script on a machine without a GPU
WORK=${WORK:-$OUT}
GRID=${GRID:-}
FAST=${FAST:-0}
ABLATION=${ABLATION:-0}
RUNS=$WORK/runs
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/log.txt") 2>&1
SITE=${SITE:-/tmp/lmft-site}  # where bench/wheels goes; a rerun on the same machine finds it installed
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}:$SITE"
# finds the modules without importing them (liger-kernel would import torch and Triton)
have() { $PY -c "import importlib.util as u, sys; sys.exit(not all(map(u.find_spec, sys.argv[1:])))" "$@" 2>/dev/null; }
NEEDED=(hydra omegaconf hydra_plugins.hydra_joblib_launcher sklearn)  # without them nothing runs
if ! have "${NEEDED[@]}" liger_kernel keras && ls bench/wheels/*.whl >/dev/null 2>&1; then
  # a wheel for another Python fails the install: said, and only fatal if a needed module lacks
  $PY -m pip install -q --no-index --no-deps --target "$SITE" bench/wheels/*.whl ||
    echo "gpu-check: bench/wheels did not install into $PY (made for Python 3.12 by make gpu-wheels)"
fi
have "${NEEDED[@]}" ||
  { echo "gpu-check: $PY lacks hydra-core, its joblib launcher or scikit-learn: run make gpu-wheels on a machine with internet (bench/wheels)"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
stamp() { echo "[gpu-check ${SECONDS}s] $*"; }
began=$(($(date +%s) - SECONDS))  # the unix time of the log's 0 s
timeline() { $PY bench/timeline.py "$RUNS/sweeps/$1" --since "$began" || stamp "no timeline"; }
# The lines that match, each with the script's clock; line by line, so a call cut at its limit
# logs all before the cut
keep() { grep --line-buffered "$@" | while IFS= read -r l; do echo "[${SECONDS}s] $l"; done; }
pack() { tar czf "$OUT/runs.tar.gz" --exclude='*.pt' --exclude='*.ckpt' -C "$WORK" runs; }
late() { [ $((SECONDS + $2)) -gt "$BUDGET_S" ] && stamp "skipped $1: needs ~$2 s, BUDGET_S=$BUDGET_S"; }
nice_=()
[ "$FAST" = 1 ] && nice_=(nice -n 5)
# A fine-tuning sweep of the protocol's settings and these overrides, JOBS cells at a time;
# every error line reaches the log (a cell's own, and Hydra's "Error executing job")
sweep() {
  "${nice_[@]}" $PY -m lmft.finetune -m "${C[@]}" hydra/launcher=joblib hydra.launcher.n_jobs="$JOBS" \
    trainer.num_threads=1 data.num_workers=0 "$@" | keep -iE '^\[finetune|error'
}
# a stage that failed: said at once, and the script's exit status is 1 once it is done
failures=()
fail() { stamp "$1 failed"; failures+=("$1"); }
# a finished cell of the protocol copied to the folder $2 of another sweep, where it is the same
# cell (same settings, seed and LM: the finish check compares them), so it is not trained again
copy_cell() { [ -f "$1/metrics.json" ] && [ ! -e "$2" ] && mkdir -p "${2%/*}" && cp -rp "$1" "$2"; }
report() { $PY -m lmft.report "${C[@]}" "$@" || fail "report"; }
# a process and all below it (a sweep: its Hydra process and the joblib launcher's workers)
kill_tree() { local c; for c in $(pgrep -P "$1"); do kill_tree "$c"; done; kill "$1" 2>/dev/null; }
# DEADLINE_S (unset: none): at that second of the script's clock the protocol's sweeps (these
# processes) stop where they are, so that the report of the cells that finished and
# runs.tar.gz are written before a job's time limit cuts the script; a cut cell has no
# metrics.json, and the report lists it as unfinished
cutter=
cut=$WORK/deadline_reached  # made when the deadline stops the sweeps
rm -f "$cut"
deadline() {
  [ -n "${DEADLINE_S:-}" ] || return 0
  local left=$((DEADLINE_S - SECONDS))
  { sleep "$((left > 0 ? left : 0))"
    stamp "DEADLINE_S=$DEADLINE_S: the sweeps stop here; their unfinished cells are left out"
    touch "$cut"
    for p in "$@"; do kill_tree "$p"; done; } &
  cutter=$!
}
# wait for a sweep; say if it failed, or if the deadline stopped it
ended() {
  wait "$1" && return
  if [ -e "$cut" ]; then stamp "$2 stopped at DEADLINE_S"; else fail "$2"; fi
}

# SNAPSHOTS: the LM also keeps its encoder after these epochs (lm.snapshots, not part of its
# identity), so fine-tuning from a smaller LM budget (init.lm_epoch) needs no new LM.
[ "$ABLATION" != 0 ] && [ "$EXP" = seed ] && SNAPSHOTS=${SNAPSHOTS:-[1,3,10,30]}
C=(experiment="$EXP" trainer="$TRAINER" trainer.progress_bar=false "paths.outputs=$RUNS"
   "data.cache_dir=$WORK/cache" "lm.snapshots=${SNAPSHOTS:-[]}")

smi= mps=
mps_quit() { [ -z "$mps" ] || echo quit | nvidia-cuda-mps-control; mps=; }
trap '[ -z "$smi" ] || kill "$smi" 2>/dev/null; mps_quit' EXIT
if [ "$TRAINER" = gpu ] && command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits \
    -lms 500 >"$OUT/gpu_util.csv" 2>/dev/null &
  smi=$!
fi
# FAST: CUDA's Multi-Process Service, checked with one CUDA context before anything runs (else
# quit: the processes take turns), quit at the end, so the machine is left as it was found.
if [ "$FAST" = 1 ] && [ "${MPS:-1}" = 0 ]; then
  stamp "MPS off (MPS=0): the processes take turns on the GPU"
elif [ "$FAST" = 1 ] && [ "$TRAINER" = gpu ] && command -v nvidia-cuda-mps-control >/dev/null; then
  # its pipes and logs: an absolute path (the daemon leaves this folder), short (sockets' limit)
  CUDA_MPS_PIPE_DIRECTORY=$(mktemp -d /tmp/lmft-mps.XXXXXX) || exit 1
  export CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY=$CUDA_MPS_PIPE_DIRECTORY
  nvidia-cuda-mps-control -d && mps=1
  probe='import ctypes, sys
cuda, ctx = ctypes.CDLL("libcuda.so.1"), ctypes.c_void_p()
rc = cuda.cuInit(0) or cuda.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), 0)
sys.exit(rc and f"CUDA error {rc} through MPS")'
  if [ -n "$mps" ] && timeout 60 $PY -c "$probe"; then
    stamp "MPS on: the processes' kernels share the GPU at once"
  else
    stamp "MPS off: it did not start; the processes take turns on the GPU"
    tail -n 5 "$CUDA_MPS_LOG_DIRECTORY"/*.log 2>/dev/null
    mps_quit
    unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
  fi
fi

from=$(($(wc -l <"$OUT/log.txt") + 1))  # this run's lines of log.txt (a rerun appends)
# the value (the regex's group) in the last line of this run's log that matches the regex
logged() { tail -n +"$from" "$OUT/log.txt" | sed -nE "s/$1/\\1/p" | tail -1; }
t0=$SECONDS
stamp "protocol $EXP: pretrain (clock $(date +%T)); FAST=$FAST"
{ $PY -m lmft.pretrain "${C[@]}" 2>&1 | keep -v ': step '; } &  # its status: the LM's (pipefail)
lm=$!
lm_rc=
lm_end() { [ -n "$lm_rc" ] || { wait $lm; lm_rc=$?; }; }
if [ "$ABLATION" = only ]; then
  lm_end
elif [ "$FAST" != 1 ]; then
  lm_end
  if [ "$lm_rc" = 0 ]; then
    t1=$SECONDS
    stamp "protocol $EXP: the sweep, $JOBS cells at a time"
    sweep $GRID &
    grid=$!
    deadline $grid
    ended $grid "sweep"
  fi
else
  # the baseline's cells (scikit-learn, CPU only) beside the LM, a few at a time; both neural
  # arms' sweeps once the LM expects to end within LEAD_S s (its log's "(N s left)")
  JOBS=3 sweep init=baseline $GRID &
  baseline=$!
  while kill -0 $lm 2>/dev/null; do
    left=$(logged '.*\(([0-9]+) s left\).*')
    [ -n "$left" ] && [ "$left" -le "${LEAD_S:-20}" ] && break
    sleep 1
  done
  if ! kill -0 $lm 2>/dev/null && lm_end && [ "$lm_rc" != 0 ]; then
    kill_tree $baseline  # the LM failed in its first seconds: no sweep, time for a rerun
  else
    stamp "protocol $EXP: both arms' sweeps start, $JOBS cells at a time each (the LM: ${left:-0} s left)"
    sweep init=scratch $GRID &
    scratch=$!
    sweep init=pretrained init.wait_s="${WAIT_S:-120}" $GRID &
    pretrained=$!
    deadline $pretrained $scratch $baseline
    lm_end
    if [ "$lm_rc" != 0 ]; then  # its pretrained cells would wait WAIT_S each, for nothing
      kill_tree $pretrained; kill_tree $scratch; kill_tree $baseline
    fi
    ended $pretrained "pretrained arm's sweep"
    ended $scratch "scratch arm's sweep"
    ended $baseline "baseline arm's sweep"
    # the second the LM logged its encoder written (the pretrained cells' start)
    t1=$(logged '^\[([0-9]+)s\] \[pretrain\] done.*')
  fi
fi
[ -z "$cutter" ] || kill_tree "$cutter"  # the sweeps ended before their deadline
# a GPU LM whose full softmax fell back from the fused kernel (no liger-kernel, no C compiler
# for Triton, its check failed) runs slower: said where it cannot be missed
fell=$(logged '.*\[lm\] softmax over .*: (chunked .*SLOWER.*)')
[ -n "$fell" ] && stamp "WARNING: the LM's softmax fell back to $fell"
if [ "$lm_rc" != 0 ]; then
  fail "pretrain"
  stamp "protocol $EXP: the LM failed (its error is above): no sweep, report or ablation"
elif [ "$ABLATION" = only ]; then
  stamp "protocol $EXP: pretrain $((SECONDS - t0)) s; its sweep skipped (ABLATION=only)"
else
  t2=$SECONDS
  t1=${t1:-$t2}
  report
  pack
  stamp "protocol $EXP: pretrain $((t1 - t0)) s, then the sweeps $((t2 - t1)) s, report $((SECONDS - t2)) s; total $((SECONDS - t0)) s wall"
  timeline "$EXP"
fi
if [ -n "$smi" ]; then  # (it samples on to the end of the script)
  awk -F', *' '{n++; s += $2; if ($2 < 5) z++} END {if (n) printf "GPU busy %.0f%% on average; below 5%% for %.0f s of %.0f s\n", s / n, z / 2, n / 2}' "$OUT/gpu_util.csv"
fi

stamp "GPU tests"
$PY -m pytest -q -m gpu tests -p no:cacheprovider 2>&1 | tail -15 || fail "GPU tests"

if [ "$ABLATION" != 0 ] && [ "$lm_rc" = 0 ] && ! late "ablation" "${ABLATION_S:-300}"; then
  t3=$SECONDS
  A=(name="${EXP}_ablation" lm_name="$EXP" seed=0,1,2)
  epochs=${SNAPSHOTS:-[]} SIZE=${ABLATION_SIZE:-1000}
  # the protocol's cells at these sizes are the pooling sweep's mean-pooling ones
  for d in "$RUNS/sweeps/$EXP"/init=*,n={"$SIZE",all},seed=[0-2]; do
    to="$RUNS/sweeps/${EXP}_ablation/${d##*/}"  # the baseline's cells keep their names
    case ${d##*/} in init=baseline,*) ;; *) to="$to,classifier.pooling=mean" ;; esac
    copy_cell "$d" "$to"
  done
  # two sweeps side by side: pooling x arms x all/SIZE labels (the all-label cells first: they
  # take longest), and the LM budgets x pooling at SIZE labels
  stamp "ablation: pooling x arms x all/$SIZE labels, and beside it LM budgets $epochs x pooling at $SIZE"
  sweep "${A[@]}" data.train_size=all,"$SIZE" init=pretrained,scratch \
    classifier.pooling=mean,concat &
  pooling=$!
  [ "$epochs" != "[]" ] && { sweep "${A[@]}" init=pretrained "init.lm_epoch=${epochs//[\[\]]/}" \
    classifier.pooling=mean,concat data.train_size="$SIZE" || fail "LM-budget sweep"; }
  wait $pooling || fail "pooling sweep"
  report name="${EXP}_ablation" lm_name="$EXP"
  pack
  timeline "${EXP}_ablation"
  stamp "ablation: $((SECONDS - t3)) s wall"
fi
if [ -n "${EXTRA:-}" ] && [ "$lm_rc" = 0 ] && ! late "extra cells" "${EXTRA_S:-120}"; then
  stamp "extra cells: $EXTRA"
  sweep $EXTRA || fail "extra cells"
  report
  pack
fi
if [ -n "${B32_EPOCHS:-}" ] && ! late "batch-32 LM" "$((30 * B32_EPOCHS))"; then
  stamp "LM at the reference's batch 32 ($B32_EPOCHS epochs)"
  B=(name="${EXP}_b32" lm.batch_size=32 lm.lr=1e-3 lm.epochs="$B32_EPOCHS")
  if $PY -m lmft.pretrain "${C[@]}" "${B[@]}" lm.eval_batch_size=512 lm.snapshots=[] 2>&1 |
    keep -v ': step '; then
    if [ -n "${B32_SIZE:-}" ] && ! late "batch-32 cells" "${B32_CELLS_S:-90}"; then
      # beside the protocol's scratch and baseline cells at that size, copied (a scratch cell
      # never reads the LM: the same cell, under the same folder name)
      stamp "the batch-32 LM's pretrained cells at $B32_SIZE labels, sweep ${EXP}_b32"
      for d in "$RUNS/sweeps/$EXP"/init={scratch,baseline},n="$B32_SIZE",seed=*; do
        copy_cell "$d" "$RUNS/sweeps/${EXP}_b32/${d##*/}"
      done
      sweep "${B[@]}" init=pretrained data.train_size="$B32_SIZE" || fail "batch-32 cells"
      report "${B[@]}"
    fi
  else
    fail "batch-32 LM"
  fi
  pack
fi
# More warm-up and timed steps than bench's defaults: with 10 steps after 2 warm-up ones the
# bench has extrapolated 9.6 s per LM epoch where the real epochs took 6.9 s with validation.
R=${BENCH_REPEATS:-3}
if [ "${BENCH:-0}" = 1 ] && ! late "bench" $((40 + 70 * R)); then
  stamp "bench, $R passes"
  $PY bench/bench.py --exp "$EXP" --steps 20 --warmup 10 --repeats "$R" --keras trainer="$TRAINER" \
    "data.cache_dir=$WORK/cache" 2>&1 | keep -v Warning || fail "bench"
fi
[ ${#failures[@]} = 0 ] || { stamp "done; failed: $(IFS=,; echo "${failures[*]}")"; exit 1; }
stamp "done"

#!/usr/bin/env bash
# The reference experiment on one GPU, in one command (make gpu-check):
#   1. the protocol of preset EXP (default seed), timed: pretrain (60 LM epochs) with the linear
#      baseline's 9 cells beside it on the CPU, the 18 neural cells
#      (2 inits x 1,000/3,000/all labels x 3 seeds; GRID: Hydra overrides over the preset's
#      grid) on the one GPU through Hydra's joblib launcher, one sweep per arm, JOBS cells at
#      a time each (through CUDA's MPS where the driver has it, their kernels run side by
#      side; else by turns, and one cell's Python overhead hides behind another's kernels),
#      the report. Both arms' sweeps start LEAD_S (20) s before the LM expects to end; the
#      pretrained arm's cells wait for its encoder (up to WAIT_S, 120 s). JOBS is 8: the two
#      arms then run at most 16 cell processes, one per CPU core of the H200 machine (each
#      runs its own Python training loop), and each arm's ninth cell, the smallest, starts
#      when one ends. The GPU's utilisation is sampled meanwhile ($OUT/gpu_util.csv, summed up
#      in the log), and after each sweep the log gets each cell's start, training, test and
#      end on its clock (bench/timeline.py);
#   2. the GPU tests (pytest -m gpu);
#   3. a 2-epoch LM at the reference's batch 32, to compare with the protocol's LM at equal
#      epochs;
#   4. with EXTRA (hydra overrides), more cells in the protocol's sweep, and its report again;
#   5. the benchmark (bench/bench.py --keras: lmft vs a plain loop vs the reference's Keras
#      code, one device, one process);
#   6. with ABLATION=1, right after the protocol: when pretraining pays (sweep <EXP>_ablation,
#      from the protocol's LM): mean/concat x both arms x all/1,000 labels (ABLATION_SIZE) from
#      the last LM, and beside it (a second sweep at the same time) the LM snapshots (SNAPSHOTS)
#      x mean/concat pooling at 1,000 labels; 3 seeds each. Its mean-pooling cells from the last
#      LM are the protocol's own, copied.
#      ABLATION=only: the LM and the ablation, without the protocol's sweep (those cells then
#      train in the ablation's), for a run that has time for the LM and the ablation only.
# Steps 2-6 start only if they can end within BUDGET_S seconds (else they are skipped,
# with a note). Installs nothing from the network: what python3 lacks of hydra-core, omegaconf,
# the joblib launcher, liger-kernel and keras comes from bench/wheels (make gpu-wheels on a
# machine with internet). The IMDB archive: data/aclImdb_v1.tar.gz or $LMFT_IMDB_ARCHIVE.
# Runs and the id cache go to $WORK; $OUT gets log.txt, runs.tar.gz (reports, metrics,
# histories and TensorBoard files; no weights) and, on a GPU, gpu_util.csv. Both default to
# outputs/gpu_check.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/gpu_check}
EXP=${EXP:-seed}
JOBS=${JOBS:-8}
BUDGET_S=${BUDGET_S:-590}  # steps 2-6 start only if they can end within this many seconds
PY=${PYTHON:-python3}
TRAINER=${TRAINER:-gpu}  # cpu: a dry run of this script on a machine without a GPU
WORK=${WORK:-$OUT}
GRID=${GRID:-}  # for example EXP=ulmfit GRID="data.train_size=all,1000,100 seed=0,1,2"
RUNS=$WORK/runs
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/log.txt") 2>&1
SITE=/tmp/lmft-site  # where bench/wheels goes; a rerun on the same machine finds it installed
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}:$SITE"
# finds the modules without importing them (liger-kernel would import torch and Triton)
have() { $PY -c "import importlib.util as u, sys; sys.exit(not all(map(u.find_spec, sys.argv[1:])))" "$@" 2>/dev/null; }
NEEDED=(hydra omegaconf hydra_plugins.hydra_joblib_launcher sklearn)  # without them nothing runs
if ! have "${NEEDED[@]}" liger_kernel keras && ls bench/wheels/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --target "$SITE" bench/wheels/*.whl || exit 1
fi
have "${NEEDED[@]}" ||
  { echo "gpu-check: $PY lacks hydra-core or its joblib launcher: run make gpu-wheels on a machine with internet (bench/wheels)"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
stamp() { echo "[gpu-check ${SECONDS}s] $*"; }
began=$(($(date +%s) - SECONDS))  # the unix time of the log's 0 s
# the sweep's cells on the log's clock: started, trained, tested, done (bench/timeline.py)
timeline() { $PY bench/timeline.py "$RUNS/sweeps/$1" --since "$began" || stamp "no timeline"; }
# The lines that match, each with the script's clock; line by line, so a call cut at its limit
# logs all before the cut
keep() { grep --line-buffered "$@" | while IFS= read -r l; do echo "[${SECONDS}s] $l"; done; }
pack() { tar czf "$OUT/runs.tar.gz" --exclude='*.pt' --exclude='*.ckpt' -C "$WORK" runs; }
late() { [ $((SECONDS + $2)) -gt "$BUDGET_S" ] && stamp "skipped $1: needs ~$2 s, BUDGET_S=$BUDGET_S"; }
# A fine-tuning sweep of the protocol's settings and these overrides, JOBS cells at a time on the GPU
# (niced: the LM, which the pretrained arm waits for, keeps its CPU while 16 cells start beside it)
sweep() {
  nice -n 5 $PY -m lmft.finetune -m "${C[@]}" hydra/launcher=joblib hydra.launcher.n_jobs="$JOBS" \
    trainer.num_threads=1 data.num_workers=0 "$@" | keep -iE '^\[finetune|error'
}

# SNAPSHOTS: the LM also keeps its encoder after these epochs (lm.snapshots, not part of its
# identity), so fine-tuning from a smaller LM budget (init.lm_epoch) needs no new LM.
[ "$EXP" = seed ] && SNAPSHOTS=${SNAPSHOTS:-[1,3,10,30]}
C=(experiment="$EXP" trainer="$TRAINER" trainer.progress_bar=false "paths.outputs=$RUNS"
   "data.cache_dir=$WORK/cache" "lm.snapshots=${SNAPSHOTS:-[]}")
# GPU utilisation twice a second from here to the end ($OUT/gpu_util.csv), so that a run shows
# where the GPU waited (the protocol's part summed up after its report)
smi= mps=
mps_quit() { [ -z "$mps" ] || echo quit | nvidia-cuda-mps-control; mps=; }
trap '[ -z "$smi" ] || kill "$smi" 2>/dev/null; mps_quit' EXIT
if [ "$TRAINER" = gpu ] && command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits \
    -lms 500 >"$OUT/gpu_util.csv" 2>/dev/null &
  smi=$!
fi
# CUDA's Multi-Process Service (MPS=1, the default, where the driver ships its daemon): without
# it the GPU serves the processes by turns, one kernel at a time, and a cell's small LSTM kernels
# leave most of the chip idle; through MPS the cells' (and the LM's) kernels run side by side.
# One CUDA context checks it before anything runs (else it is quit, and the processes take turns
# as before); the daemon is quit at the end, so the machine is left as it was found.
if [ "$TRAINER" = gpu ] && [ "${MPS:-1}" = 1 ] && command -v nvidia-cuda-mps-control >/dev/null; then
  # its pipes and logs: an absolute path (the daemon leaves this folder), short (sockets' limit)
  CUDA_MPS_PIPE_DIRECTORY=$(mktemp -d /tmp/lmft-mps.XXXXXX) || exit 1
  export CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY=$CUDA_MPS_PIPE_DIRECTORY
  nvidia-cuda-mps-control -d && mps=1
  probe='import ctypes, sys
cuda, ctx = ctypes.CDLL("libcuda.so.1"), ctypes.c_void_p()
rc = cuda.cuInit(0) or cuda.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), 0)
sys.exit(rc and f"CUDA error {rc} through MPS")'
  if [ -n "$mps" ] && timeout 60 $PY -c "$probe"; then
    stamp "MPS on: the processes' kernels share the GPU at once (MPS=0: by turns)"
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
lm_left() { logged '.*\(([0-9]+) s left\).*'; }
t0=$SECONDS
stamp "protocol $EXP: pretrain (clock $(date +%T))"
{ $PY -m lmft.pretrain "${C[@]}" 2>&1 | keep -v ': step ' || { stamp "pretrain failed"; exit 1; }; } &
lm=$!
# the linear baseline's cells (scikit-learn, CPU only) train beside the LM, a few at a time
baseline=
[ "${ABLATION:-0}" = only ] || { JOBS=3 sweep init=baseline $GRID & baseline=$!; }
# lm_end waits for the LM and keeps its exit status (its block exits 1 when pretrain failed);
# lm_failed: whether it has ended without its encoder (while it runs: no)
lm_rc=
lm_end() { [ -n "$lm_rc" ] || { wait $lm; lm_rc=$?; }; }
lm_failed() { ! kill -0 $lm 2>/dev/null && lm_end && [ "$lm_rc" != 0 ]; }
# a process and all below it (a sweep: its Hydra process and the joblib launcher's workers)
kill_tree() { local c; for c in $(pgrep -P "$1"); do kill_tree "$c"; done; kill "$1" 2>/dev/null; }
if [ "${ABLATION:-0}" = only ]; then
  lm_end
else
  # Both arms' sweeps start when the LM expects to end within LEAD_S s, so that their cells'
  # start-up (Python, torch, Lightning, the data: ~20 s with no GPU work) overlaps the LM's last
  # epochs: the scratch arm's cells then train beside the LM's end, and the pretrained arm's wait
  # (init.wait_s, up to WAIT_S) for its encoder and start training the second it is there (an LM
  # that fails meanwhile stops both sweeps). (Cells that train beside the LM gain nothing
  # without MPS: processes share the GPU by turns, 2026-11-28.)
  while kill -0 $lm 2>/dev/null; do
    left=$(lm_left)
    [ -n "$left" ] && [ "$left" -le "${LEAD_S:-20}" ] && break
    sleep 1
  done
fi
# An LM that failed before the sweeps began (a CUDA or MPS fault shows in its first seconds) ends
# the protocol at once: its sweeps would only wait for it, and a rerun needs the time
if lm_failed; then
  stamp "protocol $EXP: the LM failed (its error is above): no sweep or report"
  kill_tree $baseline
elif [ "${ABLATION:-0}" = only ]; then
  stamp "protocol $EXP: pretrain $((SECONDS - t0)) s; its sweep skipped (ABLATION=only)"
else
  stamp "protocol $EXP: both arms' sweeps start, $JOBS cells at a time each (the LM: ${left:-0} s left)"
  sweep init=scratch $GRID &
  scratch=$!
  sweep init=pretrained init.wait_s="${WAIT_S:-120}" $GRID &
  pretrained=$!
  lm_end
  if [ "$lm_rc" != 0 ]; then  # its pretrained cells would wait WAIT_S each, for nothing
    stamp "protocol $EXP: the LM failed (its error is above): both sweeps stopped; no report"
    kill_tree $pretrained; kill_tree $scratch; kill_tree $baseline
    wait $pretrained $scratch $baseline
  else
    wait $pretrained || stamp "pretrained arm's sweep failed"
    wait $scratch || stamp "scratch arm's sweep failed"
    wait $baseline || stamp "baseline arm's sweep failed"
    t2=$SECONDS
    # the second the LM logged its encoder written (the pretrained cells' start)
    t1=$(logged '^\[([0-9]+)s\] \[pretrain\] done.*')
    t1=${t1:-$t2}
    $PY -m lmft.report "${C[@]}" || stamp "report failed"
    pack
    stamp "protocol $EXP: pretrain $((t1 - t0)) s, then the sweeps $((t2 - t1)) s, report $((SECONDS - t2)) s; total $((SECONDS - t0)) s wall"
    timeline "$EXP"
  fi
fi
if [ -n "$smi" ]; then  # (it samples on to the end of the script)
  awk -F', *' '{n++; s += $2; if ($2 < 5) z++} END {if (n) printf "GPU busy %.0f%% on average; below 5%% for %.0f s of %.0f s\n", s / n, z / 2, n / 2}' "$OUT/gpu_util.csv"
fi
t3=$SECONDS

if [ "${ABLATION:-0}" != 0 ] && lm_failed; then
  stamp "skipped ablation: the LM failed"
elif [ "${ABLATION:-0}" != 0 ] && ! late "ablation" "${ABLATION_S:-300}"; then
  A=(name="${EXP}_ablation" lm_name="$EXP" seed=0,1,2)
  epochs=${SNAPSHOTS:-[]} SIZE=${ABLATION_SIZE:-1000}
  # the protocol's cells at these sizes are the pooling sweep's mean-pooling ones (same settings,
  # seed and LM; the finish check compares them): copied, not trained again
  for d in "$RUNS/sweeps/$EXP"/init=*,n={"$SIZE",all},seed=[0-2]; do
    to="$RUNS/sweeps/${EXP}_ablation/${d##*/}"  # the baseline's cells keep their names
    case ${d##*/} in init=baseline,*) ;; *) to="$to,classifier.pooling=mean" ;; esac
    [ -f "$d/metrics.json" ] && [ ! -e "$to" ] && mkdir -p "${to%/*}" && cp -rp "$d" "$to"
  done
  # two sweeps side by side, JOBS cells at a time each: pooling x arms x all/SIZE labels (the
  # all-label cells first: they take longest), and the LM budgets x pooling at SIZE labels
  stamp "ablation: pooling x arms x all/$SIZE labels, and beside it LM budgets $epochs x pooling at $SIZE"
  sweep "${A[@]}" data.train_size=all,"$SIZE" init=pretrained,scratch \
    classifier.pooling=mean,concat &
  pooling=$!
  [ "$epochs" != "[]" ] && { sweep "${A[@]}" init=pretrained "init.lm_epoch=${epochs//[\[\]]/}" \
    classifier.pooling=mean,concat data.train_size="$SIZE" || stamp "LM-budget sweep failed"; }
  wait $pooling || stamp "pooling sweep failed"
  $PY -m lmft.report "${C[@]}" name="${EXP}_ablation" lm_name="$EXP" || stamp "ablation report failed"
  pack
  timeline "${EXP}_ablation"
  stamp "ablation: $((SECONDS - t3)) s wall"
fi

late "GPU tests" 45 || { stamp "GPU tests"; $PY -m pytest -q -m gpu tests -p no:cacheprovider 2>&1 | tail -15; }
late "batch-32 LM" 60 || {
  stamp "LM at the reference's batch 32 (2 epochs)"
  $PY -m lmft.pretrain "${C[@]}" name="${EXP}_b32" lm.batch_size=32 lm.lr=1e-3 lm.epochs=2 \
    lm.snapshots=[] | keep -v ': step ' || stamp "batch-32 LM failed"
  pack
}
# EXTRA: more cells in the protocol's sweep, then its report again (hydra overrides; for
# example EXTRA="data.train_size=1000 seed=3,4,5,6,7,8,9" for 10 seeds where the gap is small)
if [ -n "${EXTRA:-}" ] && ! late "extra cells" "${EXTRA_S:-120}"; then
  stamp "extra cells: $EXTRA"
  sweep $EXTRA || stamp "extra cells failed"
  $PY -m lmft.report "${C[@]}" || stamp "report failed"
  pack
fi
# More warm-up and timed steps than bench's defaults: on 2026-11-28, 10 steps after 2 warm-up
# ones extrapolated 9.6 s per LM epoch, while the real epochs took 6.9 s with validation.
late "bench" 130 || { stamp "bench"; $PY bench/bench.py --exp "$EXP" --steps 20 --warmup 10 --keras trainer="$TRAINER" "data.cache_dir=$WORK/cache" 2>&1 | keep -v Warning; }
stamp "done"

#!/usr/bin/env bash
# One-shot GPU check: GPU-only tests, the benchmark (seed and seed_fast sizes) and the
# seed_fast protocol end to end (pretrain + 2 inits x 1,000/3,000/all + report), then a
# short table. Installs nothing from the network.
#
# Needs: python3 with torch (CUDA), lightning, torchmetrics, tensorboard, tokenizers,
# matplotlib, scipy, pytest; hydra-core + omegaconf are installed from wheels in
# bench/wheels if missing (`make gpu-wheels` downloads them on a machine with internet);
# the IMDB archive at data/aclImdb_v1.tar.gz (or $LMFT_IMDB_ARCHIVE).
# Results land in ${OUT:-outputs/gpu_check}/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/gpu_check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import hydra, omegaconf" 2>/dev/null ||
  python3 -m pip install -q --no-index --find-links bench/wheels hydra-core omegaconf
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
t_all=$(date +%s)

python3 -m pytest -q -m gpu tests -p no:cacheprovider 2>&1 | tail -3 | tee "$OUT/gpu_tests.txt"
python3 bench/bench.py --exp seed --steps 20 2>/dev/null | tee "$OUT/bench_seed.txt"
python3 bench/bench.py --exp seed_fast --steps 20 2>/dev/null | tee "$OUT/bench_seed_fast.txt"

t0=$(date +%s)
common=(experiment=seed_fast trainer=gpu trainer.progress_bar=false "paths.outputs=$OUT/runs")
python3 -m lmft.pretrain "${common[@]}" 2>&1 | grep -E '^\[|error' | tee "$OUT/pretrain.log"
t1=$(date +%s)
python3 -m lmft.finetune -m "${common[@]}" 2>&1 | grep -E '^\[finetune|error' | tee "$OUT/sweep.log"
python3 -m lmft.report "${common[@]}" 2>/dev/null | tee "$OUT/report.md"
t2=$(date +%s)

echo
echo "| figure | value |"
echo "|---|---|"
echo "| GPU | $(head -1 "$OUT/gpu.txt") |"
echo "| GPU tests | $(tail -1 "$OUT/gpu_tests.txt") |"
echo "| seed_fast pretrain (60 epochs) | $((t1 - t0)) s ($(( (t1 - t0) / 60 )) s/epoch incl. validation) |"
echo "| seed_fast 6 cells + report | $((t2 - t1)) s |"
echo "| seed_fast protocol total | $((t2 - t0)) s |"
echo "| whole check | $(( $(date +%s) - t_all )) s |"

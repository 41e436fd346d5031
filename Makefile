# lmft — `make help` lists every target. EXP picks the preset (conf/experiment/<EXP>.yaml).
EXP ?= quick
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.13.0: on PyPI a CUDA build (Linux); on machines that keep a local CPU wheel, that one.
# Any other build: make setup TORCH='torch==2.x.y' (or TORCH=torch for the newest).
TORCH ?= torch==2.13.0
ARGS ?=
PORT ?= 6006

.DEFAULT_GOAL := help
.PHONY: help setup run pretrain sweep report smoke example test lint format bench gpu-wheels gpu-check tensorboard clean

help: ## Show this help (targets, then the presets EXP can name)
	@echo "usage: make <target> [EXP=<preset>] [ARGS='hydra overrides']"
	@grep -E '^[a-z_-]+:.*## ' $(MAKEFILE_LIST) | awk -v tty=$$([ -t 1 ] && echo 1) \
	  'BEGIN {FS = ":.*## "} {printf (tty ? "  \033[36m%-12s\033[0m %s\n" : "  %-12s %s\n"), $$1, $$2}'
	@echo "presets (EXP=, conf/experiment/):"
	@for f in conf/experiment/*.yaml; do \
	  printf "  %-17s %s\n" "$$(basename $$f .yaml)" "$$(sed -n '2s/^# //p' $$f)"; done

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip -q
	$(BIN)/pip install "$(TORCH)"
	$(BIN)/pip install -e ".[dev,launchers]"
	touch $@

setup: $(BIN)/.installed ## Create .venv and install lmft with its dev tools (idempotent)

run: $(BIN)/.installed ## The main job: pretrain + sweep + report for EXP (default quick: about 15 min on 2 CPU cores)
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory pretrain sweep report EXP=$(EXP) ARGS="$(ARGS)" && \
	echo "make run EXP=$(EXP): $$(( $$(date +%s) - start )) s wall time"

pretrain: $(BIN)/.installed ## Stage 1: pretrain the LM into outputs/pretrain/EXP (resumes; skips if done)
	$(BIN)/python -m lmft.pretrain experiment=$(EXP) $(ARGS)

# A preset's grid is a full product (init x train_size x seed). Where more seeds are wanted at
# some sizes only, a second multirun adds them: quick adds seeds 3, 4 at 100 labels.
EXTRA_SWEEP_quick := data.train_size=100 seed=3,4
# Hydra overrides a preset's sweeps add: quick runs two cells at a time, one thread each (its
# small batches keep one core busy; two cells use both).
SWEEP_ARGS_quick := hydra/launcher=joblib hydra.launcher.n_jobs=2 trainer.num_threads=1

sweep: $(BIN)/.installed ## Stage 2: the preset's grid (init x train_size x seed) into outputs/sweeps/EXP
	$(BIN)/python -m lmft.finetune -m experiment=$(EXP) $(SWEEP_ARGS_$(EXP)) $(ARGS)
	$(if $(EXTRA_SWEEP_$(EXP)),$(BIN)/python -m lmft.finetune -m experiment=$(EXP) $(EXTRA_SWEEP_$(EXP)) $(SWEEP_ARGS_$(EXP)) $(ARGS))

report: $(BIN)/.installed ## Summary table, paired gaps with 95% CIs and figures into outputs/reports/EXP
	$(BIN)/python -m lmft.report experiment=$(EXP) $(ARGS)

smoke: ## The whole pipeline on the tiny smoke preset (< 2 min on 2 CPU cores)
	$(MAKE) --no-print-directory run EXP=smoke

example: $(BIN)/.installed ## Worked example on your-own-data: writes examples/tickets/data, then make run EXP=tickets
	$(BIN)/python examples/tickets/make_data.py
	$(MAKE) --no-print-directory run EXP=tickets

test: $(BIN)/.installed ## Run the test suite (unit, integration on the real archive, DDP and launchers, the GPU harness dry run; about 10 min on 2 CPU cores)
	$(BIN)/python -m pytest -q

# The repository describes lmft, never how it was made: lines with these words fail `make lint`.
HISTORY_WORDS := \bsessions?\b|developmen[t] machine|devic[e] (time|machine|tool)|\blen[t]\b

lint: $(BIN)/.installed ## Ruff lint and format check; no words about how lmft was made (HISTORY_WORDS)
	$(BIN)/ruff check src tests bench && $(BIN)/ruff format --check src tests bench
	@if git grep --untracked -n -I -i -E '$(HISTORY_WORDS)' | grep -v 'scope="session"'; then \
	  echo "make lint: the lines above speak of how lmft was made; describe what it is"; exit 1; fi

format: $(BIN)/.installed ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix src tests bench && $(BIN)/ruff format src tests bench

bench: $(BIN)/.installed ## Throughput of lmft's LM and classifier steps vs a plain PyTorch loop, like for like too (EXP's sizes; 3 passes, about 2.5 min for quick on 2 CPU cores)
	$(BIN)/python bench/bench.py --exp $(EXP) $(ARGS)

# What an offline GPU box (python3.12, torch + triton there) may lack, for bench/gpu_check.sh.
GPU_WHEELS := hydra-core==1.3.2 omegaconf==2.3.0 hydra-joblib-launcher==1.2.0 liger-kernel==0.8.5 keras==3.15.1 namex==0.1.0 optree==0.20.0 scikit-learn==1.9.1 threadpoolctl==3.8.0
GPU_PLATFORMS := $(foreach p,manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64,--platform $(p))

gpu-wheels: $(BIN)/.installed ## Download into bench/wheels what gpu-check installs on an offline GPU box (Python 3.12)
	$(BIN)/pip wheel --no-deps -w bench/wheels antlr4-python3-runtime==4.9.3
	$(BIN)/pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $(GPU_PLATFORMS) -d bench/wheels $(GPU_WHEELS)

gpu-check: ## On a GPU machine: the seed protocol end to end, timed, then the GPU tests (FAST=1, DEADLINE_S=, ABLATION=1, EXTRA=, B32_EPOCHS=, B32_SIZE=, BENCH=1: docs/gpu.md)
	bash bench/gpu_check.sh

tensorboard: $(BIN)/.installed ## Serve TensorBoard over outputs/ (make tensorboard PORT=6007: another port; filters: docs/tensorboard.md)
	$(BIN)/tensorboard --logdir outputs --port $(PORT)

clean: ## Delete outputs of EXP (pretrain, sweep, report); the token cache stays
	rm -rf outputs/pretrain/$(EXP) outputs/sweeps/$(EXP) outputs/reports/$(EXP)

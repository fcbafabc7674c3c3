# The README's two commands: `make run` (set-up + the main job) and `make test` (set-up + the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Extra pip arguments for torch, e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=
PYTEST_ARGS ?= -n 2

.PHONY: setup iverilog run reproduce test lint clean

setup: iverilog $(VENV)/.installed

# Icarus Verilog is the simulator every verdict comes from.
iverilog:
	@command -v iverilog >/dev/null && command -v vvp >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update && apt-get install -y iverilog; \
	  else \
	    echo "salv-trl needs Icarus Verilog: install the 'iverilog' package (e.g. sudo apt-get install iverilog)"; exit 1; \
	  fi; }

$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install torch==2.13.0 $(TORCH_PIP_ARGS)
	$(BIN)/pip install -c constraints.txt -e ".[dev,ray]"
	touch $@

# Signal-aware DPO end to end on CPU: a tiny Qwen2 and a preference set built locally, LoRA adapter + model card.
run: setup
	HF_HUB_OFFLINE=1 $(BIN)/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no \
	  --dynamo_backend no recipes/dpo.py --config recipes/tiny-qwen2/dpo/config_cpu.yaml

# The whole pipeline on synthetic tasks (SFT -> sample -> verify -> pairs -> 3 DPO variants -> metric);
# not calibrated yet, see recipes/tiny/README.md.
reproduce: setup
	$(BIN)/python recipes/tiny/reproduce.py --config recipes/tiny/config_quick.yaml

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check salv_trl recipes evaluation tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info

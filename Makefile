# The README's two commands: `make run` (set-up + the main job) and `make test` (set-up + the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Extra pip arguments for torch, e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=
PYTEST_ARGS ?= -n 2

.PHONY: setup system-tools run reproduce-full test lint clean

setup: system-tools $(VENV)/.installed

# Icarus Verilog is the simulator every verdict comes from; Yosys (with its ABC) proves outputs formally;
# bubblewrap isolates every compiler, simulator and prover run.
system-tools:
	@command -v iverilog >/dev/null && command -v vvp >/dev/null && command -v bwrap >/dev/null \
	  && command -v yosys >/dev/null && command -v yosys-abc >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update && apt-get install -y iverilog bubblewrap yosys; \
	  else \
	    echo "salv-trl needs Icarus Verilog, Yosys and bubblewrap: install the 'iverilog', 'yosys' and 'bubblewrap' packages"; exit 1; \
	  fi; }

$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install torch==2.13.0 $(TORCH_PIP_ARGS)
	DS_BUILD_OPS=0 $(BIN)/pip install -c constraints.txt -e ".[dev,ray,deepspeed]"
	touch $@

# The main job: the whole method on CPU, one seed (quick mode of the tiny reproduction): synthetic tasks -> SFT ->
# sample -> verify -> pairs -> module-level DPO / signal pairs without mask / signal-aware DPO -> the metric.
run: setup
	$(BIN)/python recipes/tiny/reproduce.py --config recipes/tiny/config_quick.yaml

# The same for three seeds, mean +- std (the table in README.md).
reproduce-full: setup
	$(BIN)/python recipes/tiny/reproduce.py --config recipes/tiny/config_full.yaml

LINTED := salv_trl recipes evaluation tests benchmarks

# Lint first (seconds), then the tests, the docstring examples included.
test: lint
	HF_HUB_OFFLINE=1 $(BIN)/pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

clean:
	rm -rf $(VENV) build *.egg-info

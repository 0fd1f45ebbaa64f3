# The two commands of the README: `make demo` (set up + main job) and `make test` (set up + test suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: demo test test-deps venv data lint bench-quick bench-standard bench-full clean

$(BIN)/.netslim-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.netslim-installed

# Fashion-MNIST from Debian where apt exists; otherwise netslim prints which files to put where.
data:
	@if [ ! -f $(FMNIST)/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist; \
	fi

demo: venv data
	$(BIN)/netslim demo

# Headless Chromium renders the HTML report in a test (Debian's package; skipped where apt is missing).
test-deps:
	@if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

test: venv test-deps
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench-quick: venv data
	$(BIN)/python -m benchmarks.run --suite quick

# The papers' tables at 2-CPU scale (about 8 CPU-hours; resumable; one thread per process, two side by side).
# Each process owns the work folders of its groups: the Han rows reuse the LeNet baselines of process one,
# multi-pass and the from-scratch control reuse sparse nets trained earlier in process two.
bench-standard: venv data
	OMP_NUM_THREADS=1 nice -n 10 $(BIN)/python -m benchmarks.run --suite standard \
		--only standard_baselines standard_weights & \
	OMP_NUM_THREADS=1 nice -n 10 $(BIN)/python -m benchmarks.run --suite standard \
		--only standard_slimming standard_multipass standard_sparsity standard_control; \
	wait

bench-full: venv data
	$(BIN)/python -m benchmarks.run --suite full

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache

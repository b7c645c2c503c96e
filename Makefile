# CPU set-up and checks for verl-fair.  `make test` and `make demo` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: setup lint test demo bench wheel headers upstream clean

setup: $(STAMP)

# torch first (the local CPU build), then verl with the extra its modules import on CPU,
# then this project in editable mode; the constraints file stops the resolver replacing torch.
$(STAMP): pyproject.toml constraints-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints-cpu.txt "verl[verl-core]==0.9.1"
	$(PIP) install -q -c constraints-cpu.txt -e ".[test]"
	$(PY) -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(STAMP)

# verl's house style: ruff's rules E, F, UP, B, I, G at 120 columns, and ruff format
lint: setup
	$(PY) -m ruff check verl_fair reward_fns benchmarks tests recipes
	$(PY) -m ruff format --check verl_fair reward_fns benchmarks tests recipes

test: lint
	$(PY) -m pytest -q tests

demo: setup
	$(PY) -m verl_fair.demo

bench: setup
	$(PY) -m benchmarks.estimator

# apply upstream/*.patch to a copy of a verl git repository and run their CPU tests there (upstream/README.md)
upstream: setup
	@test -n "$(VERL_SRC)" || { echo "usage: make upstream VERL_SRC=<a verl git repository>"; exit 2; }
	PYTHON=$(abspath $(PY)) upstream/apply_and_test.sh $(VERL_SRC)

# the installable wheel in dist/ (build/ removed first so files deleted from the tree stay out of it)
wheel: setup
	rm -rf build
	$(PIP) wheel -q --no-deps --no-build-isolation -w dist .

# the license header on every tracked Python and shell file that lacks it (the check: tests/test_license_headers.py)
headers:
	$(PYTHON) tests/test_license_headers.py --fix

clean:
	rm -rf $(VENV) .pytest_cache outputs build dist

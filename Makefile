# llm-edge: `make synth` renders a stack offline, `make test` runs every offline check,
# `make test-vllm` puts the gateway in front of vLLM's own server (CPU build).
# They create the virtualenvs and install what is missing.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STACK ?= dev
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt gateway/requirements.txt gateway/constraints.txt | sha256sum | cut -c1-12)

.PHONY: synth preflight test test-vllm vllm-venv lint policy tools clean

$(STAMP): requirements.txt requirements-dev.txt gateway/requirements.txt gateway/constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c gateway/constraints.txt
	@rm -f $(VENV)/.installed-* && touch $@

# vLLM (CPU build) in a venv of its own, about 3.4 GB: tests/vllm starts its server from here.
# VLLM_VENV given on the command line or in the environment names a vLLM venv built elsewhere:
# `make test-vllm` then uses it as it is and never installs into it (`make vllm-venv` still builds there).
VLLM_VENV ?= .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_STAMP := $(VLLM_VENV)/.installed-$(shell sha256sum requirements-vllm.txt | cut -c1-12)
# torch's +cpu wheels live on PyTorch's index, not on PyPI.
VLLM_TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
ifeq ($(origin VLLM_VENV),file)
VLLM_BUILD := $(VLLM_STAMP)
endif

$(VLLM_STAMP): requirements-vllm.txt
	@echo "building the vLLM venv $(VLLM_VENV) (about 3.4 GB; a few minutes)"
	@test -x $(VLLM_PY) || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install --quiet --disable-pip-version-check --no-deps --extra-index-url $(VLLM_TORCH_INDEX) \
		"$$(grep '^torch==' requirements-vllm.txt)"
	$(VLLM_PY) -m pip install --quiet --disable-pip-version-check -r requirements-vllm.txt
	$(VLLM_PY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	@rm -f $(VLLM_VENV)/.installed-* && touch $@

vllm-venv: $(VLLM_STAMP)

# SET: space-separated config overrides for this render only, with the path syntax of
# `pulumi config set --path`, e.g. make synth STACK=prod SET='traffic.active=green'
synth: $(STAMP)
	$(PY) -m offline synth --stack $(STACK) $(foreach assignment,$(SET),--set '$(assignment)')

# What must exist before `pulumi up` (Cloudflare plan and token, AWS actions, secret config keys,
# each cluster's prerequisites); exits 1 when something the stack can know is missing.
preflight: $(STAMP)
	$(PY) -m offline preflight --stack $(STACK) $(foreach assignment,$(SET),--set '$(assignment)')

# Evaluates the policy pack in-process over the rendered stack (policies/config/<stack>.json;
# pr-<N> uses preview.json); exits non-zero on a mandatory violation.
policy: $(STAMP)
	$(PY) -m policies.runner --stack $(STACK)

test: $(STAMP) tools lint
	$(PY) -m pytest

# The real-peer layer (tests/vllm, pytest marker `vllm`, which `make test` leaves out): one vLLM
# server per run. pytest's exit code 5 (no test collected) fails this target like any other.
test-vllm: $(STAMP) $(VLLM_BUILD)
	@test -x $(VLLM_PY) || { echo "no venv at $(VLLM_VENV): run make vllm-venv VLLM_VENV=$(VLLM_VENV)" >&2; exit 1; }
	@# The openai Node SDK, a client in tests/vllm/test_clients.py (pinned in its package-lock.json).
	@test -d tests/vllm/node/node_modules/openai || npm ci --no-audit --no-fund --silent --prefix tests/vllm/node
	VLLM_VENV=$(abspath $(VLLM_VENV)) $(PY) -m pytest -m vllm tests/vllm

# ruff (pycodestyle, pyflakes, bugbear, isort, pyupgrade, complexity) and mypy; pyproject.toml.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# External tools the tests drive: promtool (alert rules) and actionlint (workflows).
tools:
	@bash scripts/ensure-tools.sh

clean:
	rm -rf out .pytest_cache

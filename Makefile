# llm-edge: `make synth` renders a stack offline, `make test` runs every offline check.
# Both create the virtualenv and install what is missing.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STACK ?= dev
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt gateway/requirements.txt gateway/constraints.txt | sha256sum | cut -c1-12)

.PHONY: synth preflight test lint policy tools clean

$(STAMP): requirements.txt requirements-dev.txt gateway/requirements.txt gateway/constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c gateway/constraints.txt
	@rm -f $(VENV)/.installed-* && touch $@

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

# ruff (pycodestyle, pyflakes, bugbear, isort, pyupgrade, complexity) and mypy; pyproject.toml.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# External tools the tests drive: promtool (alert rules) and actionlint (workflows).
tools:
	@bash scripts/ensure-tools.sh

clean:
	rm -rf out .pytest_cache

# Two set-up commands, both from a fresh clone: `make demo` and `make test`.
# Each creates .venv on first use and reinstalls when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test lint typecheck pytest bench clean vectors docs

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel
	touch $@

$(VENV)/.installed-base: $(VENV)/.created pyproject.toml
	$(PIP) install -e .
	touch $@

# Tests, linters and benchmarks share one environment: mypy also checks
# benchmarks/, which import the bench extra; the nostr extra runs the
# federation tests and the demo's Nostr act.
$(VENV)/.installed-dev: $(VENV)/.created pyproject.toml
	$(PIP) install -e ".[test,bench,fast,metrics,nostr]"
	touch $@

demo: $(VENV)/.installed-base
	$(PY) -m l2session demo

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests benchmarks fuzz
	$(VENV)/bin/ruff format --check src tests benchmarks fuzz

typecheck: $(VENV)/.installed-dev
	$(VENV)/bin/mypy

pytest: $(VENV)/.installed-dev
	$(VENV)/bin/pytest -q

test: lint typecheck pytest

bench: $(VENV)/.installed-dev
	@set -e; for script in benchmarks/[a-z]*.py; do \
		echo "== $$script"; $(PY) $$script; \
	done

# Regenerate the known-answer vectors (only when the protocol changes on purpose).
vectors: $(VENV)/.installed-dev
	$(PY) tests/vectors/generate.py

# Regenerate docs/STATES.md from the state table (a test fails when it is stale).
docs: $(VENV)/.installed-base
	$(PY) -c 'from l2session.core.diagram import states_markdown; import sys; sys.stdout.write(states_markdown())' > docs/STATES.md

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis build src/*.egg-info

# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_OUT ?= demo_out

.PHONY: demo test docs typecheck dist venv bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/raoutcome demo --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest -q tests

# The docs site (MkDocs) into site/, every warning an error; tests/test_docs.py builds it too.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true PYTHONPATH=src $(PY) -m mkdocs build --strict

# Type checks of the public API (files listed in pyproject's [tool.mypy]); tests/test_typecheck.py runs it too.
typecheck: $(STAMP)
	$(PY) -m mypy

# Wheel and sdist into dist/.
dist: $(STAMP)
	$(PY) -m build

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) site dist

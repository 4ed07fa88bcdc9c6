# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_OUT ?= demo_out

.PHONY: demo test venv bench stress clean

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

# Long property, fault and load runs (issue #27), fixed seed; the default suite runs short versions.
STRESS_SEED ?= 27
stress: $(STAMP)
	RAOUTCOME_STRESS=1 RAOUTCOME_STRESS_SEED=$(STRESS_SEED) $(PY) -m pytest -q -s -m stress tests

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_OUT)

# Two commands set everything up on a fresh machine:
#   make run   - create .venv if missing, install the app, start it
#   make test  - create .venv if missing, install with test extras, run the whole suite
# Both are idempotent: the install step re-runs only when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: run test lint bench clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test,interop]'
	touch $@ $(VENV)/.installed-run

# Qt's xcb plugin needs libxcb-cursor0, libxcb-icccm4 and libxcb-keysyms1 (not in the wheel):
# the check prints the one apt-get line instead of Qt's "could not load the Qt platform plugin".
# compileall: the package is installed editable, so nothing byte-compiles it, and where
# PYTHONDONTWRITEBYTECODE is set every start compiled ~130 modules again (~0.1 s).
run: $(VENV)/.installed-run
	$(PY) scripts/check_qt_libs.py
	$(PY) -m compileall -q inspector
	$(PY) main.py

test: $(VENV)/.installed-test
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check inspector tests benchmarks scripts main.py
	$(VENV)/bin/ruff format --check inspector tests benchmarks scripts main.py
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

lint: $(VENV)/.installed-test
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check inspector tests benchmarks scripts main.py
	$(VENV)/bin/ruff format --check inspector tests benchmarks scripts main.py

bench: $(VENV)/.installed-run
	$(PY) benchmarks/train_throughput.py

clean-venv:
	rm -rf $(VENV)

# Two entry points for a fresh machine: `make demo` and `make test`. Both build .venv first.
# `make docs` builds the documentation site into site/ (warnings are errors); `make figures` redraws
# its figures from the code.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test docs figures venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is installed on its own, pinned, before the package: pip would otherwise resolve a CUDA build.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .
	touch $@

# The export extra too: the tests run the ONNX files `pixseg export` writes.
$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test,export]'
	touch $@

$(VENV)/.installed-docs: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[docs]'
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/pixseg demo --out runs/demo

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n 2 -q

docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

figures: $(VENV)/.installed
	$(BIN)/python docs/figures.py

clean:
	rm -rf $(VENV) runs site .pytest_cache

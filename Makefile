# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# pip's requirement for torch (whichever build pip finds: the CPU wheel on this project's
# machines); another with e.g. make TORCH_SPEC='torch==2.14.1' demo, into a .venv set up already too
TORCH_SPEC ?= torch==2.13.0
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist
# the tests in one process per core (pytest-xdist); PYTEST_ARGS= runs them in this one
PYTEST_ARGS ?= -n auto
# exits 0 on a Python that cnnzoo runs on (pyproject.toml's requires-python)
NEW_ENOUGH := import sys; sys.exit(sys.version_info < (3, 10))

.PHONY: install demo test data clean

# a TORCH_SPEC given to make, not the default, replaces the torch of a .venv set up already
ifneq ($(origin TORCH_SPEC),file)
.PHONY: $(VENV)/.installed
endif

# A .venv that cannot run pip on a new enough Python (made by an older one, or left half-made
# by a failed `venv`) is made again.
$(VENV)/.installed: pyproject.toml
	@$(PY) -c 'import pip; $(NEW_ENOUGH)' 2>/dev/null || $(PYTHON) -c '$(NEW_ENOUGH)' 2>/dev/null || { \
		echo "cnnzoo needs Python 3.10 or newer; $(PYTHON) is $$($(PYTHON) --version 2>/dev/null || echo not found): name another, e.g. make PYTHON=python3.12" >&2; exit 1; }
	$(PY) -c 'import pip; $(NEW_ENOUGH)' 2>/dev/null || $(PYTHON) -m venv --clear $(VENV)
	$(PY) -c 'import torch' 2>/dev/null && [ '$(origin TORCH_SPEC)' = file ] || $(PY) -m pip install -q '$(TORCH_SPEC)'
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Fashion-MNIST from Debian's package where we can; cnnzoo also downloads it when the network allows.
data:
	@if [ ! -d $(FASHION_MNIST_DIR) ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -q dataset-fashion-mnist || \
		 (apt-get update -q && apt-get install -y -q dataset-fashion-mnist)) >/dev/null \
		|| echo "could not install dataset-fashion-mnist; cnnzoo will try to download the data"; \
	fi

demo: install data
	$(VENV)/bin/cnnzoo train lenet5_d2l --fast

test: install data
	$(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache

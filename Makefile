# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A CPU build of torch; override for a GPU machine, e.g. make TORCH_SPEC='torch==2.14.1' demo
TORCH_SPEC ?= torch==2.13.0
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist
# the tests in one process per core (pytest-xdist); PYTEST_ARGS= runs them in this one
PYTEST_ARGS ?= -n auto

.PHONY: install demo test data clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install -q '$(TORCH_SPEC)'
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

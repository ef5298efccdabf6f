# Two commands set everything up on a fresh machine: `make run` and `make test`.
# Both create .venv and install the pinned requirements once; later calls skip the install.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test test-slow bench

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

# Until the UI lands, `make run` trains G²RPO on the built-in model with the default config.
run: $(STAMP)
	$(PY) -m engine.train --config configs/g2rpo.yaml --out runs/default $$(test -f runs/default/config.yaml && echo --resume)

test: $(STAMP)
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow || test $$? -eq 5  # 5: none marked slow yet

bench: $(STAMP)
	$(PY) -m engine.bench

# Two commands set everything up on a fresh machine: `make run` and `make test`.
# Both create .venv and install the pinned requirements once; later calls skip the install.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test test-slow bench

$(STAMP): requirements.txt requirements-dev.txt requirements-trackers.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

# `make run`: the web UI on http://localhost:7860 with an embedded worker (data in ./data).
run: $(STAMP)
	$(PY) app.py

# The browser tests drive Debian's Chromium (Playwright cannot download browsers here).
CHROMIUM_STAMP := $(VENV)/.chromium
$(CHROMIUM_STAMP):
	command -v chromium >/dev/null || { command -v apt-get >/dev/null && \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); $$SUDO apt-get install -y -q chromium >/dev/null || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null; }; } || \
	  echo "chromium not installed: the browser tests will be skipped"
	touch $(CHROMIUM_STAMP)

test: $(STAMP) $(CHROMIUM_STAMP)
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow  # the study's --quick run end to end and the sweep's (about 15 minutes)

bench: $(STAMP)
	$(PY) -m engine.tools.bench

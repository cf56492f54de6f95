# Entry points for developers and CI. Every target installs first; installing is
# quick when nothing changed (a stamp file tracks pyproject.toml, the jar cache is
# checked in place).
#
#   make install   venv at .venv, the package with test extras, system packages
#                  (as root, only if missing), the Kafka broker's jars
#   make test      the whole test suite; PYTEST_ARGS='tests/test_topics.py -x' narrows it
#   make demo      the whole system on this machine: signalflow up
#   make bench     every bench/*.py in turn
#   make lint      ruff and mypy on services/ and signalflow/

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=
LINTED := services signalflow

.PHONY: install system-packages kafka-jars test demo bench lint

install: system-packages $(INSTALLED) kafka-jars

system-packages:
	@bash deploy/local/system-packages.sh

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "signalflow needs Python 3.11 or newer as $(PYTHON)" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

kafka-jars: $(INSTALLED)
	@$(BIN)/python -m signalflow.local kafka fetch

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

demo: install
	$(BIN)/signalflow up

bench: install
	@shopt -s nullglob; benches=(bench/*.py); \
	if [ $${#benches[@]} -eq 0 ]; then echo "no benchmarks in bench/" >&2; exit 1; fi; \
	failed=0; for bench in "$${benches[@]}"; do \
		module=$${bench%.py}; module=$${module//\//.}; \
		echo "== $$module"; \
		$(BIN)/python -m "$$module" || failed=1; \
	done; exit $$failed

lint: install
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy $(LINTED)

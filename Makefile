# Developer entry points. `make up` / `make down` run the whole stack locally; `make test` is CI.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVICE ?=
ARGS ?=

.PHONY: .venv install up down status logs test bench lint

# (Re)install the project into the venv whenever pyproject.toml changes.
.venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Java, Maven, the Kafka jars, PostgreSQL, and for tests Compose, kcat, promtool and Chromium, each only when missing.
install: .venv
	$(BIN)/nexus install --test-tools

up: .venv
	$(BIN)/nexus up

down: .venv
	$(BIN)/nexus down

# `nexus status` exits 3 when something is down; that is an answer, not a make failure.
status: .venv
	@$(BIN)/nexus status || true

# make logs SERVICE=gateway ARGS=-f
logs: .venv
	@$(BIN)/nexus logs $(SERVICE) $(ARGS)

# The import contracts first: a broken layer fails in seconds, not after the suite.
test: install
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest

bench: .venv
	$(BIN)/python -m bench

lint: .venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# The commands of the README. Each sets up what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench clean redis-server

run: $(VENV)/.installed
	@[ -n "$$REDIS_URL" ] || scripts/ensure-redis-server
	$(BIN)/python -m launcher

test: $(VENV)/.installed redis-server
	$(BIN)/pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(VENV)/.installed redis-server
	$(BIN)/python -m benchmarks

redis-server:
	@scripts/ensure-redis-server

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

clean:
	rm -rf $(VENV) run .pytest_cache .ruff_cache .mypy_cache

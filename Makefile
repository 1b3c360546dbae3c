# The commands of the README. Each sets up what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

ENSURE_REDIS := scripts/ensure-command redis-server redis-server "or set REDIS_URL to a Redis 7 you run"

.PHONY: run test lint bench clean redis-server

run: $(VENV)/.installed
	@[ -n "$$REDIS_URL" ] || $(ENSURE_REDIS)
	$(BIN)/python -m launcher

test: $(VENV)/.installed redis-server
	$(BIN)/pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(VENV)/.installed redis-server
	@scripts/ensure-command wrk wrk
	$(BIN)/python -m benchmarks
	$(BIN)/python -m benchmarks.refresh

redis-server:
	@$(ENSURE_REDIS)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

clean:
	rm -rf $(VENV) run .pytest_cache .ruff_cache .mypy_cache

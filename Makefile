# The commands of the README. Each sets up what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

ENSURE := scripts/ensure-command

.PHONY: run test test-repeat lint bench soak fuzz mutate clean test-tools

run: $(VENV)/.installed
	@[ -n "$$REDIS_URL" ] || $(ENSURE) redis-server=redis-server
	@$(BIN)/python -m launcher

test: $(VENV)/.installed test-tools
	$(BIN)/pytest

# The integration tier N times in a row, each a fresh session: make test-repeat N=5
# One summary line per run; every run's output in run/test-repeat/<i>.log.
N ?= 5
test-repeat: $(VENV)/.installed test-tools
	@mkdir -p run/test-repeat; failed=0; \
	for i in $$(seq $(N)); do \
		$(BIN)/pytest -q -p no:cacheprovider tests/integration > run/test-repeat/$$i.log 2>&1 \
			|| failed=$$((failed + 1)); \
		echo "run $$i: $$(tail -n 1 run/test-repeat/$$i.log)"; \
	done; \
	echo "$$(($(N) - failed)) of $(N) runs green"; [ $$failed -eq 0 ]

# What the tests run besides Python: their own Redis, compose's validator, a browser,
# Prometheus and promtool (the shipped rules and dashboard).
test-tools:
	@$(ENSURE) redis-server=redis-server docker-compose=docker-compose \
		chromium=chromium chromedriver=chromium-driver \
		prometheus=prometheus promtool=prometheus

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(VENV)/.installed
	@$(ENSURE) redis-server=redis-server wrk=wrk nginx=nginx varnishd=varnish
	$(BIN)/python -m benchmarks
	$(BIN)/python -m benchmarks.answers
	$(BIN)/python -m benchmarks.redis_down
	$(BIN)/python -m benchmarks.admission
	$(BIN)/python -m benchmarks.refresh
	$(BIN)/python -m benchmarks.freshness
	$(BIN)/python -m benchmarks.github
	$(BIN)/python -m benchmarks.store
	$(BIN)/python -m benchmarks.failover
	$(BIN)/python -m benchmarks.status

# A bounded soak of the whole system (make run's launcher): SOAK_SECONDS=1800 make soak
SOAK_SECONDS ?= 300
soak: $(VENV)/.installed
	@$(ENSURE) redis-server=redis-server
	$(BIN)/python -m benchmarks.soak --seconds $(SOAK_SECONDS)

# The API under 12,000 generated requests (schemathesis and hypothesis), keys on.
fuzz: $(VENV)/.installed
	@$(ENSURE) redis-server=redis-server
	$(BIN)/python -m benchmarks.fuzz --examples 6000

# Mutation testing of the caching decisions ([tool.mutmut] in pyproject.toml).
mutate: $(VENV)/.installed
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

$(VENV)/.installed: pyproject.toml
	@echo "cachedproxy: installing into $(VENV)" >&2
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

clean:
	rm -rf $(VENV) run mutants .pytest_cache .ruff_cache .mypy_cache

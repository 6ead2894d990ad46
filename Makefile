# Lesson 1, LLM basics. `make` (or `make help`) lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EX     ?=
GRADE_ARGS ?=
# more options for the installer (uv, or pip where uv cannot be had): grader/install.py. The check after it
# finds the packages without importing them (importing torch costs seconds; `make grade` does it anyway).
PIP_EXTRA ?=
INSTALL = $(PY) grader/install.py --venv $(VENV) $(PIP_EXTRA)

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup grade watch test walkthrough plots clean
# BEGIN instructor-only
.PHONY: test-fast test-heavy check stubs bench release batch gradescope nbgrader mutation lock
DEV         := $(VENV)/.installed-dev
TEST_SETUP  := $(DEV)
SUBMISSIONS ?= submissions
OUT         ?= out/batch
JOBS        ?= 2
SCHEDULER   ?=
RELEASE_ARGS ?=
# END instructor-only
TEST_SETUP ?= $(STAMP)

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 8))' 2>/dev/null || { echo "setup: $(PYTHON) is missing or older than Python 3.8: install Python 3.11 (python.org) and run make grade PYTHON=python3.11"; exit 1; }
	@$(PYTHON) grader/install.py --venv $(VENV) $(PIP_EXTRA)
	@$(PY) -c "import importlib.util as u, sys; gone = [m for m in sys.argv[1:] if not u.find_spec(m)]; sys.exit('setup failed, not installed: ' + ' '.join(gone) if gone else 0)" torch pytest pytest_timeout hypothesis rich matplotlib watchfiles
	@touch $(STAMP)

setup: $(STAMP) ## create .venv and install the dependencies (done by the other targets when needed)

grade: $(STAMP) ## grade your exercises (EX=ex2 for one exercise; GRADE_ARGS=-v for tracebacks)
	@$(PY) -m grader grade $(if $(EX),--exercise $(EX)) $(GRADE_ARGS)

watch: $(STAMP) ## grade an exercise again each time you save it (EX=ex2 for one; Ctrl-C stops)
	@$(PY) -m grader watch $(if $(EX),--exercise $(EX)) $(GRADE_ARGS)

test: $(TEST_SETUP) ## run the project's whole test suite
	@$(PY) -m pytest project_tests -q

walkthrough: $(STAMP) ## run the three lesson walkthroughs
	@for s in resources/lesson-1-llm-basics/step*.py; do echo "== $$s"; $(PY) $$s || exit 1; done

plots: $(STAMP) ## draw the exercise figures (top-k heatmap, scaling log-log) with your code into plots/
	@$(PY) -m grader plots --target exercises --out plots

clean: ## remove generated folders (keeps .venv)
	rm -rf dist out plots .grades .hypothesis
# BEGIN instructor-only

$(DEV): $(STAMP)
	@echo "Adding the instructor and test tools (jsonschema, nbgrader, Dask)..."
	@$(INSTALL) --extras dev,dask
	@$(PY) -c "import jsonschema, nbgrader, mutmut.mutation.mutators, distributed" || { echo "setup failed: see the pip output above"; exit 1; }
	@touch $(DEV)

# the project's own tests without the slow ones (a student release ships only llm_basics' tests: `make test`)
test-fast: $(DEV) ## run every module's unit tests, not the slow ones (about a minute)
	@$(PY) -m pytest project_tests -q -m "not slow"

test-heavy: $(DEV) ## run the whole suite with the full form of the heavy tests (a real pip install; every attack as its own uid)
	@GRADER_HEAVY_TESTS=1 $(PY) -m pytest project_tests -q

check: $(DEV) ## reference must score 100; the untouched stubs and code that computes nothing 0 (hidden tests included)
	@$(PY) -m grader check

lock: $(DEV) ## refresh requirements.lock from the tested venv (versions and file hashes; every install uses it)
	@$(PY) -m grader.lockfile

stubs: $(STAMP) ## regenerate exercises/ from solutions/
	@$(PY) -m grader stubs

bench: $(DEV) ## run the benchmarks (tokenizer, block, suites' cost, grade, batch, Dask, nbgrader); prints figures, never fails on speed
	@$(INSTALL) --extras dev,dask,bench
	@for b in bench/bench_tokenizer.py bench/bench_block.py bench/bench_compute.py bench/bench_grade.py bench/bench_batch.py bench/bench_dask.py bench/bench_nbgrader.py; do echo "== $$b"; $(PY) $$b || exit 1; done

release: $(DEV) ## write the student release to dist/student/ (RELEASE_ARGS="--git --out DIR": its own repository)
	@$(PY) -m grader release --out dist/student $(RELEASE_ARGS)

batch: $(DEV) ## grade every submission in SUBMISSIONS= into OUT= (JOBS=2, or SCHEDULER=tcp://host:8786 or local:N)
	@$(PY) -m grader batch $(SUBMISSIONS) --out $(OUT) $(if $(SCHEDULER),--scheduler $(SCHEDULER),--jobs $(JOBS))

gradescope: $(DEV) ## write dist/gradescope/autograder.zip (GRADESCOPE_ARGS="--budget 240 --hidden-detail tests")
	@$(PY) -m grader gradescope --out dist/gradescope $(GRADESCOPE_ARGS)

nbgrader: $(DEV) ## write the nbgrader course to dist/nbgrader/
	@$(PY) -m grader nbgrader --out dist/nbgrader

mutation: $(DEV) ## grade generated mutants of the solutions; fails on an untriaged survivor (several minutes)
	@$(PY) -m grader mutation --jobs $(JOBS)
# END instructor-only

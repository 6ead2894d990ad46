# Lesson 1, LLM basics. `make` (or `make help`) lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EX     ?=
GRADE_ARGS ?=
SUBMISSIONS ?= submissions
OUT    ?= out/batch
JOBS   ?= 2

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup grade test check stubs walkthrough plots bench release batch gradescope nbgrader clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Setting up $(VENV) (first run only, about a minute)..."
	@$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP) ## create .venv and install the dependencies (done by the other targets when needed)

grade: $(STAMP) ## grade your exercises (EX=ex2 for one exercise)
	@$(PY) -m grader grade $(if $(EX),--exercise $(EX)) $(GRADE_ARGS)

test: $(STAMP) ## run the project's whole test suite
	@$(PY) -m pytest project_tests -q

check: $(STAMP) ## reference must score 100, untouched stubs 0
	@$(PY) -m grader check

stubs: $(STAMP) ## regenerate exercises/ from solutions/
	@$(PY) -m grader stubs

walkthrough: $(STAMP) ## run the three lesson walkthroughs
	@for s in resources/lesson-1-llm-basics/step*.py; do echo "== $$s"; $(PY) $$s || exit 1; done

plots: $(STAMP) ## write the exercise plots (top-k heatmap, scaling log-log) to plots/
	@$(PY) -m grader plots --target solutions --out plots

bench: $(STAMP) ## run the benchmarks (tokenizer, block, grade, batch; prints figures, never fails on speed)
	@$(PY) -m pip install -q -e ".[dev,bench]"
	@for b in bench/bench_tokenizer.py bench/bench_block.py bench/bench_grade.py bench/bench_batch.py; do echo "== $$b"; $(PY) $$b || exit 1; done

release: $(STAMP) ## write the student release to dist/student/
	@$(PY) -m grader release --out dist/student

batch: $(STAMP) ## grade every submission in SUBMISSIONS= into OUT= (JOBS=2)
	@$(PY) -m grader batch $(SUBMISSIONS) --out $(OUT) --jobs $(JOBS)

gradescope: $(STAMP) ## write dist/gradescope/autograder.zip
	@$(PY) -m grader gradescope --out dist/gradescope

nbgrader: $(STAMP) ## write the nbgrader course to dist/nbgrader/
	@$(PY) -m pip install -q -e ".[dev,nbgrader]"
	@$(PY) -m grader nbgrader --out dist/nbgrader

clean: ## remove generated folders (keeps .venv)
	rm -rf dist out plots .grades .hypothesis

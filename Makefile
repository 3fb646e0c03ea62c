# Every target sets itself up first (scripts/setup is idempotent and quick when done).
.PHONY: setup lint demo test test-quick bench report calibrate serve clean

setup:
	@bash scripts/setup

lint: setup            ## ruff (lint and format), mypy (pyproject.toml [tool.mypy])
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .
	@.venv/bin/mypy

demo: setup            ## live static-vs-dynamic comparison through a real tritonserver
	@.venv/bin/python scripts/demo

test: setup lint       ## lint (ruff, mypy), then the whole suite: unit, property, real-tritonserver and reliability tests
	@.venv/bin/python -m pytest -q -ra

test-quick: setup      ## everything except the slow reliability runs
	@.venv/bin/python -m pytest -q -ra -m "not slow"

report: setup          ## virtual-clock benchmark report on both Azure traces
	@.venv/bin/python scripts/bench_report

calibrate: setup
	@.venv/bin/dynabatch calibrate

serve: setup           ## serve model_repository/ on 127.0.0.1
	@bash scripts/serve model_repository

clean:
	rm -rf out .pytest_cache .hypothesis

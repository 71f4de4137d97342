# mpgrade: student, instructor and maintainer commands. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
EX     ?=
OUT    ?= out/demo

.DEFAULT_GOAL := help
.PHONY: help venv check test lint image grade-demo validate bench clean

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mpgrade needs Python 3.11 or newer (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,service,report]'
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP) ## create .venv and install mpgrade into it

# The benchmark needs mpgrade and matplotlib only, not the service's packages: on a fresh
# machine that keeps the install out of `make bench`'s time.
BENCH_STAMP := $(VENV)/.bench-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
$(BENCH_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mpgrade needs Python 3.11 or newer (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	@rm -f $(VENV)/.bench-*; touch $@

check: $(STAMP) ## students: public tests of exercises/ (one exercise: make check EX=02_pingpong)
	@$(PY) -m grader check $(EX)

test: $(STAMP) ## maintainers: the grader's whole test suite (Docker tests run when CI=true or an engine answers)
	$(PY) -m pytest tests --durations=10

lint: $(STAMP) ## ruff over the package, tests and course; the import contract (.importlinter)
	$(VENV)/bin/ruff check grader tests exercises solutions examples $(wildcard bench)
	$(VENV)/bin/lint-imports --no-cache .importlinter

image: $(STAMP) ## build the grading image without a registry (debootstrap + local wheels)
	$(PY) -m grader image build --offline

grade-demo: $(STAMP) ## instructors: grade the bundled sample submissions (Docker if it answers, else local)
	@if $(PY) -c 'from grader.sandbox.docker import connect; connect(3)' 2>/dev/null; then \
		$(PY) -m grader image build --offline && \
		$(PY) -m grader grade examples/submissions --out $(OUT) --force; \
	else \
		echo "No Docker engine answers: grading with the LOCAL sandbox (trusted sample code only)."; \
		$(PY) -m grader grade examples/submissions --out $(OUT) --sandbox local --force; \
	fi; status=$$?; test $$status -le 1

validate: $(STAMP) ## instructors: references 100% (x5 per start method), stubs 0, every mutant caught
	$(PY) -m grader validate $(if $(REPEAT),--repeat $(REPEAT))

bench: $(BENCH_STAMP) ## the benchmark: naive pytest loop vs mpgrade (Docker and local), writes bench/RESULTS.md
	$(PY) bench/run.py $(BENCH_ARGS)

clean: ## remove the virtual environment and outputs
	rm -rf $(VENV) out .mpgrade

# mpgrade: student, instructor and maintainer commands. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP_INSTALL ?= $(PY) -m pip install --quiet --disable-pip-version-check
VERSION_OF = $(shell $(1) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
# The Python the venv is for: PYTHON when given (PYTHON=python3.12 make check), else the
# existing venv's own, so a venv made with PYTHON=... is reused, never rebuilt by a plain make.
ifeq ($(origin PYTHON),file)
PYVER  := $(or $(call VERSION_OF,$(PY)),$(call VERSION_OF,$(PYTHON)))
else
PYVER  := $(call VERSION_OF,$(PYTHON))
endif
SUM    := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)-py$(PYVER)
STAMP  := $(VENV)/.installed-$(SUM)
# Students: only what `mpgrade check` needs (the base install, no service, report or dev
# packages); a maintainer's full install serves as well.
CHECK_STAMP := $(VENV)/.check-$(SUM)
EX     ?=
OUT    ?= out/demo

.DEFAULT_GOAL := help
.PHONY: help venv student-venv check test lint image grade-demo validate bench bench-full bench-exercise bench-deadline bench-deadline-course clean

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# A venv for this Python: made when missing, made again (and said so) when PYTHON names
# another version than the venv's; the version check comes first.
define venv_for_python
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mpgrade needs Python 3.11 or newer (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	@have="$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)"; \
	if [ -n "$$have" ] && [ "$$have" != "$(PYVER)" ]; then \
		echo "$(VENV) is for Python $$have, not $(PYVER) ($(PYTHON)): making it again"; rm -rf $(VENV); \
	fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
endef

$(STAMP): pyproject.toml
	$(venv_for_python)
	@$(PIP_INSTALL) -e '.[dev,service,report]'
	@rm -f $(VENV)/.installed-* $(VENV)/.check-*; touch $@ $(CHECK_STAMP)

$(CHECK_STAMP): pyproject.toml
	$(venv_for_python)
	@$(PIP_INSTALL) -e .
	@rm -f $(VENV)/.check-*; touch $@

venv: $(STAMP) ## create .venv with everything (grading, service, reports, tests, lint)
student-venv: $(CHECK_STAMP) ## students: .venv with only what make check needs

# The benchmark needs mpgrade and matplotlib only, not the service's packages: on a fresh
# machine that keeps the install out of `make bench`'s time.
BENCH_STAMP := $(VENV)/.bench-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
$(BENCH_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mpgrade needs Python 3.11 or newer (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	@rm -f $(VENV)/.bench-*; touch $@

check: $(CHECK_STAMP) ## students: public tests of exercises/ (make check EX=02_pingpong WATCH=1)
	@$(PY) -m grader check $(if $(WATCH),--watch) $(EX)

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

bench: $(BENCH_STAMP) ## the benchmark: the whole course (naive loop vs mpgrade), the floor, make check, the boundary, the report (~17 min on 2 cores)
	$(PY) bench/course.py $(BENCH_ARGS)

bench-full: $(BENCH_STAMP) ## the run bench/RESULTS.md reports: 60 submissions, every configuration (~35 min on 2 cores)
	$(PY) bench/course.py --count 60 --subset 8 --drop-caches $(BENCH_ARGS)

bench-exercise: $(BENCH_STAMP) ## one exercise (01_spawn) graded five ways and the container lifecycle (bench/run.py)
	$(PY) bench/run.py $(EXERCISE_ARGS)

bench-deadline: $(STAMP) ## the service at a deadline: fair share, waits per course and queue position (needs redis-server)
	$(PY) bench/deadline.py $(DEADLINE_ARGS)

bench-deadline-course: $(STAMP) ## the deadline with real grading: the 60 of make bench-full through the service, embedded and 1 and 2 Celery workers (Docker, redis-server)
	$(PY) bench/deadline.py --course-batch $(DEADLINE_COURSE_ARGS)

clean: ## remove the virtual environment and outputs
	rm -rf $(VENV) out .mpgrade

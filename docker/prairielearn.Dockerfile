# mpgrade's PrairieLearn external grader: the grading image (docker/Dockerfile) plus one layer.
#
# Built by grader/image.py:build_prairielearn_image (CLI: `mpgrade image build --target
# prairielearn`), FROM the grading image it builds (or reuses) first, in a context of:
#
#   Dockerfile        this file
#   requirements.txt  docker/prairielearn-requirements.txt (pinned)
#   wheels/           their wheels, fetched on the host (no network in the build)
#   course/           the assignment: assignment.toml, helper modules, every test file
#                     (no reference solutions, no mutants)
#   entrypoint.sh     docker/prairielearn-entrypoint.sh
#
# PrairieLearn runs the container as root with the job folder at /grade; the entrypoint
# (`mpgrade export prairielearn-run`) grades /grade/student with every student process as
# uid 10001 (`student`, made by the grading image), which can read neither /opt/mpgrade-course
# nor /grade, and root writes /grade/results/results.json. See docs/prairielearn.md.

ARG GRADER

# ---- stage 1: the extra packages, installed by a throw-away pip ------------------------------
FROM ${GRADER} AS extra
COPY requirements.txt /tmp/pl/requirements.txt
COPY wheels/ /tmp/pl/wheels/
RUN set -eu; \
    python3 -m venv /tmp/pl/pip; \
    /tmp/pl/pip/bin/python -m pip install --no-index --no-compile --no-deps --disable-pip-version-check \
        --target /opt/mpgrade-pl --find-links /tmp/pl/wheels -r /tmp/pl/requirements.txt; \
    rm -rf /opt/mpgrade-pl/bin

# ---- stage 2: the grader PrairieLearn runs ---------------------------------------------------
FROM ${GRADER}

LABEL org.opencontainers.image.title="mpgrade-prairielearn" \
      org.opencontainers.image.description="mpgrade as a PrairieLearn external grader: grades /grade/student, writes /grade/results/results.json"

COPY --from=extra /opt/mpgrade-pl /opt/mpgrade-pl
COPY course/ /opt/mpgrade-course/
COPY entrypoint.sh /opt/mpgrade/bin/prairielearn-grade

# - /opt/mpgrade-pl joins the venv's path through a .pth file (no second copy of the venv);
# - the course is root's only (0700): the hidden tests are never readable by student code;
# - the last two lines are a smoke test that fails the build early.
RUN set -eu; \
    site="$(/opt/mpgrade/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"; \
    echo /opt/mpgrade-pl > "$site/mpgrade-prairielearn.pth"; \
    /opt/mpgrade/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/mpgrade-pl; \
    chown -R 0:0 /opt/mpgrade-course /opt/mpgrade/bin/prairielearn-grade; \
    chmod -R go-rwx /opt/mpgrade-course; \
    chmod 0755 /opt/mpgrade/bin/prairielearn-grade; \
    /opt/mpgrade/bin/python -c "import click, rich, nbformat, grader.autograder, grader.cli.export"; \
    /opt/mpgrade/bin/python -m grader export prairielearn-run --help >/dev/null

CMD ["/opt/mpgrade/bin/prairielearn-grade"]

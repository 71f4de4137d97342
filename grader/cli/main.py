"""``mpgrade``: a thin command line over the library (grader.check, grader.batch, grader.image).

One module per command or command group (check, grade, validate, image, release, export,
report, service), each a few lines over the library, all showing things through ``grader.cli.render``.
Every command explains itself in ``--help`` with examples, reports problems as one line on
stderr with exit code 2 (usage / environment) rather than a traceback, and leaves its work in
files a script can read.
"""

from __future__ import annotations

import click

from grader import __version__
from grader.cli.check import check
from grader.cli.export import export
from grader.cli.grade import grade
from grader.cli.image import image
from grader.cli.lti import lti
from grader.cli.release import release, schema
from grader.cli.report import report_command
from grader.cli.service import serve, token, worker
from grader.cli.validate import validate


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mpgrade")
def main() -> None:
    """mpgrade: grade Python concurrency exercises safely, with JSON results for LMSs.

    \b
    Students:     mpgrade check                 (public tests of your exercises/)
    Instructors:  mpgrade grade SUBMISSIONS --out results/   (folders, zips, LMS downloads)
                  mpgrade image build --offline (the grading image, no registry needed)
                  mpgrade validate              (prove the tests before release)
                  mpgrade export canvas|lti|gradescope|prairielearn|scores RESULTS
                  mpgrade report RESULTS --out report/  (the class at a glance, HTML)
                  mpgrade release --notebooks OUT
    LMSs:         mpgrade serve                 (HTTP API; mpgrade worker on more hosts)
                  mpgrade lti register ...      (serve as an LTI 1.3 tool: docs/lti.md)
    """


for command in (check, grade, image, validate, release, schema, export, report_command, serve, worker,
                token, lti):
    main.add_command(command)


if __name__ == "__main__":
    main()

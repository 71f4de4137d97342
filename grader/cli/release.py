"""``mpgrade release`` and ``mpgrade schema``: what is handed out (notebooks, the schema)."""

from __future__ import annotations

from pathlib import Path

import click

from grader.cli import render
from grader.cli.common import assignment_option, load_assignment, require_points_agree
from grader.escaping import terminal


@click.command()
@click.option("--notebooks", "notebooks_dir", required=True, metavar="OUT_DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Write one student notebook per exercise (<exercise id>.ipynb) into OUT_DIR.")
@assignment_option
def release(notebooks_dir: Path, assignment_dir: str | None) -> None:
    """Make what students get: one Jupyter notebook per exercise, and what checks them.

    Each notebook holds the exercise's statement and its stub module in one code cell, and
    names the module in its metadata, so `mpgrade grade` grades a handed-in notebook as that
    module (IPython magics dropped). Next to them go assignment.toml and each exercise's
    public tests (never the hidden ones), so a student checks from the notebook itself
    (`%mpgrade check 01_spawn`, the notebook says how). Writing twice gives identical files,
    readable by everyone (mode 644).

    \b
    Example:
      mpgrade release --notebooks release/notebooks/
    """
    from grader.intake import notebook

    assignment = load_assignment(assignment_dir)
    require_points_agree(assignment)
    try:
        paths = notebook.release_notebooks(assignment, notebooks_dir)
        paths += notebook.release_checkable(assignment, notebooks_dir)
    except OSError as exc:
        render.fail(f"cannot write the notebooks to {notebooks_dir}: {exc}")
    for path in paths:
        click.echo(terminal(path))


@click.command()
def schema() -> None:
    """Print the JSON Schema of result documents (also in grader/schema/result.schema.json).

    \b
    Example:
      mpgrade schema > result.schema.json
    """
    from importlib import resources

    click.echo(resources.files("grader.schema").joinpath("result.schema.json").read_text(), nl=False)

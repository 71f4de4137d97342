"""``mpgrade image build``: the grading image (``grader.image``)."""

from __future__ import annotations

import click

from grader.cli import render


@click.group()
def image() -> None:
    """Build the Docker image that grading containers run."""


@image.command("build")
@click.option("--offline", is_flag=True,
              help="No image registry: make the base image from Debian packages (debootstrap) and "
                   "install wheels downloaded on the host (or from $MPGRADE_WHEELHOUSE).")
@click.option("--base", default=None, help="Base image with python3 3.11 (default python:3.11-slim).")
@click.option("--force", is_flag=True, help="Build even if an image for these inputs exists.")
@click.option("--target", type=click.Choice(["grader", "prairielearn"]), default="grader", show_default=True,
              help="grader: the grading image. prairielearn: PrairieLearn's external grader, the grading "
                   "image plus a layer with the assignment baked in (docs/prairielearn.md).")
@click.option("--assignment", "assignment_dir", metavar="DIR", default=None,
              help="With --target prairielearn: the folder with assignment.toml (default: the nearest one "
                   "at or above the current folder).")
def image_build(offline: bool, base: str | None, force: bool, target: str, assignment_dir: str | None) -> None:
    """Build the grading image; its tag is a hash of its inputs, so unchanged means no rebuild.

    \b
    Examples:
      mpgrade image build                 # FROM python:3.11-slim (needs a registry)
      mpgrade image build --offline       # air-gapped exam labs: Debian packages + local wheels
      MPGRADE_WHEELHOUSE=/media/wheels mpgrade image build --offline   # no PyPI either
      mpgrade image build --offline --target prairielearn --assignment courses/mp-2026
    """
    from grader import assignment as assignment_mod
    from grader import image as image_mod

    if assignment_dir is not None and target != "prairielearn":
        render.fail("--assignment goes with --target prairielearn (the grading image holds no course)")
    try:
        root = image_mod.checkout_root()
        if target == "prairielearn":
            try:
                assignment = assignment_mod.load(assignment_mod.locate(assignment_dir))
            except assignment_mod.AssignmentError as exc:
                render.fail(str(exc))
            tag = image_mod.build_prairielearn_image(root, assignment, offline=offline, base=base, force=force,
                                                     log=render.log)
        else:
            tag = image_mod.build_image(root, offline=offline, base=base, force=force, log=render.log)
    except image_mod.ImageBuildError as exc:
        render.fail(str(exc))
    click.echo(tag)

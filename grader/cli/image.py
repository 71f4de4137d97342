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
def image_build(offline: bool, base: str | None, force: bool) -> None:
    """Build the grading image; its tag is a hash of its inputs, so unchanged means no rebuild.

    \b
    Examples:
      mpgrade image build                 # FROM python:3.11-slim (needs a registry)
      mpgrade image build --offline       # air-gapped exam labs: Debian packages + local wheels
      MPGRADE_WHEELHOUSE=/media/wheels mpgrade image build --offline   # no PyPI either
    """
    from grader import image as image_mod

    try:
        tag = image_mod.build_image(image_mod.checkout_root(), offline=offline, base=base, force=force,
                                    log=render.log)
    except image_mod.ImageBuildError as exc:
        render.fail(str(exc))
    click.echo(tag)

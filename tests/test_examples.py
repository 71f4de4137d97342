"""The bundled sample submissions are what examples/make_samples.py makes from the course now."""

import subprocess
import sys

from .conftest import REPO


def test_committed_samples_are_current(tmp_path):
    subprocess.run([sys.executable, str(REPO / "examples" / "make_samples.py"), str(tmp_path)], check=True,
                   capture_output=True)
    made = sorted(p.name for p in tmp_path.glob("*.zip"))
    assert made == sorted(p.name for p in (REPO / "examples" / "submissions").glob("*.zip"))
    for name in made:
        assert (tmp_path / name).read_bytes() == (REPO / "examples" / "submissions" / name).read_bytes(), (
            f"{name} is stale: run python examples/make_samples.py")

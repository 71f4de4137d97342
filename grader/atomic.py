"""Writing a file so that readers see the old version or the new one, never half of one.

Results, summaries, check reports and released notebooks are all read by other programs (an
LMS import, a script, the next resumed run); a killed grader must not leave a torn file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Temp file in the same folder, then rename over the target.

    The temp file is owner-only (``mkstemp``), and so is the result unless ``mode`` says
    otherwise: files handed out to students (released notebooks, ``0o644``) must be readable
    by the others who copy or serve them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if mode is not None:
                os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""The files of a results folder (``mpgrade grade --out DIR``): what is in which file.

The batch writes the folder and the exports read it, so both take its names from here rather
than one from the other: ``<id>.json`` per submission (:func:`result_file`), ``summary.json``
and ``scores.csv``. Part of the contract with LMSs and scripts (README "The JSON result").
"""

from __future__ import annotations

from pathlib import Path

SUMMARY = "summary.json"
SCORES = "scores.csv"
# Names a result file must never take, ignoring case: the grader's own files, and the names
# Windows reserves for devices (a results folder is copied and unzipped everywhere).
RESERVED = {Path(SUMMARY).stem, Path(SCORES).stem, "con", "prn", "aux", "nul",
            *(f"{dev}{n}" for dev in ("com", "lpt") for n in "0123456789")}


def result_file(sub_id: str) -> str:
    """The name of a submission's result file in ``--out``: ``<id>.json``, except that an id
    whose name before the first dot is reserved (``summary``, ``Scores``, ``nul.x``...) or
    that starts with ``_`` or ``.`` gets a ``_`` in front (``_summary.json``). Ids made by
    ``grader.intake.submission.submission_id`` never start with ``_``, so no two ids share a file,
    and ``summary.json`` is only ever the summary. The document inside keeps the real id,
    which is what summary.json, scores.csv and every export show."""
    if sub_id.split(".", 1)[0].casefold() in RESERVED or sub_id.startswith(("_", ".")):
        return f"_{sub_id}.json"
    return f"{sub_id}.json"

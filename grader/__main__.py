"""``python -m grader`` is ``mpgrade``."""

from grader.cli import main

main()

"""mpgrade: a hardened autograder for Python concurrency exercises.

Layers, each importing only the ones below it:
CLI -> batch / check / service -> sandbox -> harness / results -> assignment.
"""

__version__ = "0.1.0"

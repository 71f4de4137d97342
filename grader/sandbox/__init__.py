"""Sandboxes: one interface (``Job`` in, ``Outcome`` out), a local and a Docker implementation."""

from grader.sandbox.base import Job, Limits, Outcome, Sandbox, SandboxUnavailable

__all__ = ["Job", "Limits", "Outcome", "Sandbox", "SandboxUnavailable"]

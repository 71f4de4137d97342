"""The wire between the supervisor and a student process: names and words, nothing else.

Standard library free and import free: student interpreters load it at start-up from this
folder (``sitecustomize``, ``mpgrade_child``), and the supervisor's side imports the same names
through ``grader.protocol.wire``, which lists the whole protocol.
"""

# The supervisor's environment for a call's first process (``harness.boundary.child``); every
# process of the call inherits them, and ``sitecustomize`` acts on them at start-up.
DUMP_DIR_ENV = "MPGRADE_DUMP_DIR"  # where each process registers its stack dump on a hang
PID_LOG_ENV = "MPGRADE_PID_LOG"  # the claim FIFO: "I am a worker of this call" lines
CLAIM_FIFO_ENV = PID_LOG_ENV
GRADER_PID_ENV = "MPGRADE_GRADER_PID"  # the supervisor's pid: who sends the claim's ack signal
READY_FD_ENV = "MPGRADE_READY_FD"  # the boot child's ready pipe: one seal word on it
NPROC_ENV = "MPGRADE_NPROC"  # RLIMIT_NPROC the boot child sets before it runs student code

# The seal word the boot child writes on its ready pipe (``sitecustomize.seal``): whether
# student code of the *previous* call could still open it (ptrace, /proc/PID/mem).
SEAL_NONE = b"0"  # not sealed: PR_SET_DUMPABLE failed; the supervisor discards the child
SEAL_SELF = b"1"  # sealed itself just now (a window existed between exec and this word)
SEAL_AT_EXEC = b"2"  # already sealed by the kernel at exec (execute-only interpreter)
SEALED = (SEAL_SELF, SEAL_AT_EXEC)

# What each student process writes to its stdout and stderr starts with this frame, so the
# grader can tell which process printed which line (``sitecustomize._framed``): b"\x00\x1e"
# PID b"\x1f". Advisory (the student's code can write without it, or forge one): it only says
# whose output is whose, for feedback and for tests that read ``CallRecord.printed``.
OUTPUT_FRAME = b"\x00\x1e%d\x1f"

"""`python -m tests.chaos_zygote`: fork chaos workers from a process that imported them once.

Starting `python -m tests.chaos_worker` costs more than a second of imports
each time, and the chaos test starts it some twenty times per database. This
parent imports the worker once and forks a child per request instead. It has
no threads and no database connection of its own when it forks, so each child
starts clean, as a fresh process would.

Protocol, one line each, on stdin / stdout:

* in: a JSON list, the worker's arguments;
* out: `pid N` once forked; the child's own `ready`; `exit N RC` when it ended,
  RC negative for a signal (as `subprocess` reports it).

The test kills a child with `os.kill(N, SIGKILL)`; this parent reaps it and says so.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import tests.chaos_worker as worker


def _child(argv: list[str]) -> None:
    code = 1
    try:
        code = worker.main(argv)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> int:
    for line in sys.stdin:
        argv = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(argv)
        say(f"pid {pid}")
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        say(f"exit {pid} {code}")
    return 0


def say(line: str) -> None:
    """One line in one write(2): the child writes to the same pipe, and under
    PYTHONUNBUFFERED `print` writes the text and its newline separately, so a child's
    `ready` could land between them (seen in CI: `pid 1007ready`). A pipe write this short
    is atomic."""
    os.write(sys.stdout.fileno(), f"{line}\n".encode())


if __name__ == "__main__":
    raise SystemExit(serve())

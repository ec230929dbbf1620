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
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(f"exit {pid} {code}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(serve())

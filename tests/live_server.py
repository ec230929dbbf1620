"""Run the real app under uvicorn on a free loopback port, in a thread, for tests and benches.

Tests that serve the app here mostly set `gc_full_every_s=0`: the realtime GC policy
starts with a full collection, and in a test worker (pytest, Prefect, pandas, litellm
all loaded) that walks the whole heap, ~0.6 CPU-s per app start, where `aitrader serve`
pays ~0.1 s once. The policy itself is tested in test_gc_policy.py and, served, in
test_realtime_api.py's shutdown test; every `aitrader serve` the suite starts runs it.
"""

from __future__ import annotations

import asyncio
import io
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import uvicorn
from fastapi import FastAPI


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(
    app: FastAPI,
    *,
    startup_timeout: float = 90.0,
    port: int | None = None,
    cut_after_s: int | None = None,
) -> Iterator[str]:
    """Yield the base URL while the server runs; stop it (lifespan shutdown included) on exit.

    The start-up allowance is generous because a fresh clone's first start
    compiles the pattern kernels (numba), which on a busy 2-core machine can
    take tens of seconds. A server that does not start is still told to stop
    and joined, so a half-started app (its GC policy applied, its tasks
    running) does not outlive the test into the next one on the worker.
    """
    port = port or free_port()  # a given port: a server "restarted" where clients expect it
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        # `cut_after_s`: on exit, open streams are cut after that long (a server going away
        # under its clients), where uvicorn would otherwise wait for them to end.
        timeout_graceful_shutdown=cut_after_s,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn did not start: its thread ended (see the log above)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start within {startup_timeout:.0f} s")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        if thread.is_alive():
            where = _stack(thread)
            raise RuntimeError(f"uvicorn did not shut down within 30 s; it is at:\n{where}")


def _stack(thread: threading.Thread) -> str:
    """Where a thread is now, innermost call last, and where each task of its event loop
    waits: what held a shutdown up (the thread itself usually sits in `select`)."""
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None:
        return "(no frame)"
    where = "".join(traceback.format_stack(frame))
    loop = _loop_in(frame)
    if loop is not None:
        for task in list(asyncio.all_tasks(loop)):
            out = io.StringIO()
            task.print_stack(limit=8, file=out)
            where += "\n" + out.getvalue()
    return where


def _loop_in(frame: FrameType | None) -> asyncio.AbstractEventLoop | None:
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, asyncio.AbstractEventLoop):
            return candidate
        frame = frame.f_back
    return None

"""A loopback port that counts every connection made to it and answers none.

Where a test must show that nothing tried to reach a server ("0 connection
attempts"), pointing the client here is stronger than stopping the server: a
refused connection leaves no trace, an accepted one is counted.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ConnectionCounter:
    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()


@contextmanager
def counting_port() -> Iterator[ConnectionCounter]:
    counter = ConnectionCounter()
    counter.start()
    try:
        yield counter
    finally:
        counter.stop()

"""Can this process listen on HOST:PORT? Asked before a server command starts anything.

`aitrader serve` used to build the app, start its runtime and only then let
uvicorn find the port taken, 25 s later; `aitrader up` would start Prefect
and the deployments first. The probe binds the way uvicorn will (IPv6 when
the host has a colon, SO_REUSEADDR) and lets go at once. A port taken
between the probe and uvicorn's bind still fails there; the probe answers
the common case (another server already running) in milliseconds.

Standard library only: the commands' `--help` must stay light.
"""

from __future__ import annotations

import errno
import socket

from models.errors import AITraderError


class PortUnavailableError(AITraderError):
    """The server's address cannot be listened on: in use, not local, or not permitted."""


def check_can_listen(host: str, port: int, *, holder: str) -> None:
    """Raise `PortUnavailableError` in one line if `host:port` cannot be bound now.

    `holder` names the likely owner for the message ("another aitrader serve?").
    """
    problem = bind_problem(host, port)
    if problem is None:
        return
    if problem == "in use":
        raise PortUnavailableError(
            f"port {port} on {host} is in use ({holder}): stop it or choose another --port"
        )
    raise PortUnavailableError(f"cannot listen on {host}:{port}: {problem}")


def bind_problem(host: str, port: int) -> str | None:
    """None if a socket binds to `host:port` as uvicorn binds one; else why not
    ("in use", or the system's reason)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "in use"
            return exc.strerror or str(exc)
    return None

"""Client processes for `bench/fanout.py`: many SSE or WebSocket price streams per process.

One asyncio loop per process holds `count` connections to 127.0.0.1.

SSE streams are non-blocking sockets read with `recvmsg` from a loop reader
callback, with `SO_TIMESTAMPNS` on: every read carries the time the kernel
queued the data on our socket, i.e. when the server sent it (loopback). So
the SSE numbers do not include the time a busy client loop took to get to
the socket; that time is reported separately ("read delay"). HTTP/1.1
chunked transfer and SSE framing (blank-line separated `event:`/`id:`/
`data:` lines) are parsed by hand: an httpx client per connection costs too
much CPU at thousands of streams.

WebSocket streams use the `websockets` library (no keepalive pings, deflate
only if asked), whose reads carry no kernel time: their receive time is when
our loop got the message, and the loop-lag probe says how late that can be.

Talks to the parent over a `Pipe`:

    child  -> Ready(connected, failed, errors)
    parent -> Window(t0, t1), or None to stop
    child  -> Received (only events read in [t0, t1) are kept), then exits.

Not here: servers, CPU/RSS sampling, statistics (all in `fanout.py`).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import struct
import time
from array import array
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

CONNECT_BATCH = 100  # connections opened together before yielding to the loop
CONNECT_TIMEOUT_S = 90.0
GO_TIMEOUT_S = 180.0
LOOP_PROBE_S = 0.01
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; SCM_TIMESTAMPNS is the same
SUBSCRIBE = json.dumps({"action": "subscribe", "topics": ["market_data"], "symbols": []})


@dataclass(frozen=True)
class ClientJob:
    kind: str  # "sse" | "ws"
    port: int
    path: str
    count: int
    ws_compression: str | None = None  # "deflate" or None
    idle: bool = False  # run under SCHED_IDLE: only on CPU time the server leaves free


@dataclass(frozen=True)
class Ready:
    connected: int
    failed: int
    errors: list[str]


@dataclass(frozen=True)
class Window:
    """The measurement window, in client wall time (`time.time()`)."""

    t0: float
    t1: float


@dataclass
class Received:
    """One client process's events inside the window, as parallel arrays (epoch seconds)."""

    connected: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    ended_in_window: int = 0  # streams that closed or failed while we measured
    keys: array[int] = field(default_factory=lambda: array("q"))  # SSE id; -1 if none
    recv: array[float] = field(default_factory=lambda: array("d"))  # our loop read it
    arrived: array[float] = field(default_factory=lambda: array("d"))  # kernel; NaN: unknown
    tick: array[float] = field(default_factory=lambda: array("d"))  # newest row ts
    published: array[float] = field(default_factory=lambda: array("d"))  # NaN: not stated
    loop_lag: array[float] = field(default_factory=lambda: array("d"))  # probe lateness, s
    rows: int = 0
    malformed: int = 0
    per_client: list[int] = field(default_factory=list)  # events in window per stream

    def error(self, text: str) -> None:
        if len(self.errors) < 5:
            self.errors.append(text)


def run_clients(job: ClientJob, conn: Connection) -> None:
    """Process entry point: connect, report, wait for the window, stream, send results."""
    if job.idle:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    asyncio.run(_Clients(job, conn).run())


def probe_ws(port: int, path: str) -> int | None:
    """HTTP status of a refused WebSocket handshake; None if the handshake succeeded."""

    async def attempt() -> int | None:
        try:
            async with connect(f"ws://127.0.0.1:{port}{path}", proxy=None, open_timeout=10):
                return None
        except InvalidStatus as exc:
            return exc.response.status_code

    return asyncio.run(attempt())


class _Clients:
    def __init__(self, job: ClientJob, conn: Connection) -> None:
        self.job = job
        self.conn = conn
        self.out = Received(per_client=[0] * job.count)
        self.t0 = math.inf
        self.t1 = math.inf
        self.settled = 0
        self.all_settled = asyncio.Event()

    async def run(self) -> None:
        stream = self._sse if self.job.kind == "sse" else self._ws
        tasks: list[asyncio.Task[None]] = []
        for i in range(self.job.count):
            tasks.append(asyncio.create_task(stream(i)))
            if (i + 1) % CONNECT_BATCH == 0:
                await asyncio.sleep(0.05)
        try:
            await asyncio.wait_for(self.all_settled.wait(), CONNECT_TIMEOUT_S)
        except TimeoutError:
            self.out.error(f"{self.job.count - self.settled} streams unsettled after connecting")
        self.conn.send(Ready(self.out.connected, self.out.failed, list(self.out.errors)))
        window = await asyncio.to_thread(_recv_window, self.conn, GO_TIMEOUT_S)
        if window is not None:
            self.t0, self.t1 = window.t0, window.t1
            await self._probe_loop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.conn.send(self.out)

    async def _probe_loop(self) -> None:
        """Until t1: how late a short sleep wakes up, i.e. how busy this client loop is."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, self.t0 - time.time()))
        while time.time() < self.t1:
            start = loop.time()
            await asyncio.sleep(LOOP_PROBE_S)
            self.out.loop_lag.append(loop.time() - start - LOOP_PROBE_S)
        await asyncio.sleep(0.05)

    def settle(self, ok: bool) -> None:
        if ok:
            self.out.connected += 1
        else:
            self.out.failed += 1
        self.settled += 1
        if self.settled == self.job.count:
            self.all_settled.set()

    def record(
        self, client: int, key: int, now: float, arrived: float, data: str, published: float
    ) -> None:
        if not self.t0 <= now < self.t1:
            return
        tick = _newest_ts(data)
        if tick is None:
            self.out.malformed += 1
            return
        out = self.out
        out.keys.append(key)
        out.recv.append(now)
        out.arrived.append(arrived)
        out.tick.append(tick)
        out.published.append(published)
        out.rows += data.count('"symbol":')
        out.per_client[client] += 1

    def _ended(self) -> None:
        if self.t0 <= time.time() < self.t1:
            self.out.ended_in_window += 1

    async def _sse(self, client: int) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        stream = _SSEStream(self, client, loop.create_future())
        fd = sock.fileno()
        try:
            await loop.sock_connect(sock, ("127.0.0.1", self.job.port))
            await loop.sock_sendall(
                sock,
                f"GET {self.job.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.job.port}\r\n"
                "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n".encode(),
            )
            loop.add_reader(fd, stream.on_readable, sock)
            await stream.done
            self._ended()
        except asyncio.CancelledError:
            raise
        except (OSError, ValueError) as exc:
            self.out.error(f"sse: {type(exc).__name__}: {exc}")
            if stream.settled:
                self._ended()
            else:
                self.settle(False)
        finally:
            loop.remove_reader(fd)
            sock.close()

    async def _ws(self, client: int) -> None:
        settled = False
        ws: ClientConnection | None = None
        try:
            ws = await connect(
                f"ws://127.0.0.1:{self.job.port}{self.job.path}",
                proxy=None,
                compression=self.job.ws_compression,
                ping_interval=None,
                open_timeout=60,
                close_timeout=2,
                max_size=1 << 22,
            )
            await ws.send(SUBSCRIBE)
            self.settle(True)
            settled = True
            async for message in ws:
                now = time.time()
                text = message if isinstance(message, str) else message.decode()
                if text.startswith('{"type":"market_data"'):
                    head, _, rows = text.partition('"data":')
                    published = _newest_ts(head)
                    self.record(
                        client,
                        -1,
                        now,
                        math.nan,
                        rows,
                        math.nan if published is None else published,
                    )
            self._ended()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure (handshake, protocol, socket) ends this stream only
            self.out.error(f"ws: {type(exc).__name__}: {exc}")
            if settled:
                self._ended()
            else:
                self.settle(False)
        finally:
            if ws is not None:
                ws.transport.abort()


class ChunkedBody:
    """HTTP/1.1 chunked transfer decoding, fed as bytes arrive (also bench/_soak_clients.py)."""

    def __init__(self) -> None:
        self.raw = b""  # undecoded chunked body
        self.need = 0  # bytes left in the current chunk
        self.skip = 0  # CRLF bytes after a chunk still to drop
        self.ended = False  # the last (zero-size) chunk arrived

    def feed(self, data: bytes) -> bytes:
        """The body bytes `data` completes; ValueError on a malformed chunk size."""
        self.raw += data
        body: list[bytes] = []
        while self.raw and not self.ended:
            if self.skip:
                dropped = min(self.skip, len(self.raw))
                self.raw, self.skip = self.raw[dropped:], self.skip - dropped
            elif self.need:
                piece = self.raw[: self.need]
                body.append(piece)
                self.raw, self.need = self.raw[len(piece) :], self.need - len(piece)
                if not self.need:
                    self.skip = 2
            else:
                line, sep, rest = self.raw.partition(b"\r\n")
                if not sep:
                    break
                size = int(line.split(b";", 1)[0], 16)
                if size == 0:
                    self.ended = True
                    break
                self.raw, self.need = rest, size
        return b"".join(body)


class _SSEStream:
    """One SSE response, fed from a reader callback: HTTP head, chunked body, events."""

    def __init__(self, owner: _Clients, client: int, done: asyncio.Future[None]) -> None:
        self.owner = owner
        self.client = client
        self.done = done  # result: the server ended the stream; exception: it failed
        self.settled = False
        self.head = b""
        self.chunked = False
        self.body = ChunkedBody()
        self.text = b""  # decoded body not yet split into events

    def on_readable(self, sock: socket.socket) -> None:
        if self.done.done():
            return
        try:
            data, ancillary, _, _ = sock.recvmsg(1 << 16, 64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.done.set_exception(exc)
            return
        now = time.time()
        if not data:
            self.done.set_result(None)
            return
        try:
            self._feed(data, now, _kernel_time(ancillary))
        except ValueError as exc:  # a malformed head or chunk size
            self.done.set_exception(exc)

    def _feed(self, data: bytes, now: float, arrived: float) -> None:
        if not self.settled:
            self.head += data
            head, sep, data = self.head.partition(b"\r\n\r\n")
            if not sep:
                return
            status = head.split(b" ", 2)[1]
            if status != b"200":
                raise ValueError(f"HTTP {status.decode()}")
            self.chunked = b"transfer-encoding: chunked" in head.lower()
            self.settled = True
            self.owner.settle(True)
        body = self._dechunk(data) if self.chunked else data
        self.text = (self.text + body).replace(b"\r\n", b"\n")
        while (end := self.text.find(b"\n\n")) >= 0:
            block, self.text = self.text[:end], self.text[end + 2 :]
            self._event(block, now, arrived)

    def _dechunk(self, data: bytes) -> bytes:
        body = self.body.feed(data)
        if self.body.ended and not self.done.done():
            self.done.set_result(None)
        return body

    def _event(self, block: bytes, now: float, arrived: float) -> None:
        event, key, data = b"message", -1, []
        for line in block.split(b"\n"):
            if not line or line.startswith(b":"):
                continue  # comment (sse-starlette's ping)
            name, _, value = line.partition(b":")
            value = value.removeprefix(b" ")
            if name == b"data":
                data.append(value)
            elif name == b"event":
                event = value
            elif name == b"id" and value.isdigit():
                key = int(value)
        if event == b"prices" and data:
            data_text = b"\n".join(data).decode()
            self.owner.record(self.client, key, now, arrived, data_text, math.nan)


def _kernel_time(ancillary: list[tuple[int, int, bytes]]) -> float:
    """The SCM_TIMESTAMPNS of a `recvmsg`: when the kernel queued the (last) data read."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            return float(sec) + float(nsec) / 1e9
    return math.nan


def _newest_ts(data: str) -> float | None:
    """Newest `"ts":"<iso>"` in `data` as epoch seconds, without parsing the JSON.

    A price event has one `ts` per row, nearly always the same instant (one
    simulator step), so the distinct strings are few and parsing them is cheap.
    """
    stamps: set[str] = set()
    i = data.find('"ts":"')
    while i >= 0:
        j = data.find('"', i + 6)
        if j < 0:
            break
        stamps.add(data[i + 6 : j])
        i = data.find('"ts":"', j)
    if not stamps:
        return None
    try:
        return max(datetime.fromisoformat(s).timestamp() for s in stamps)
    except ValueError:
        return None


def _recv_window(conn: Connection, timeout: float) -> Window | None:
    if not conn.poll(timeout):
        return None
    window = conn.recv()
    return window if isinstance(window, Window) else None

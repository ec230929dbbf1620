"""Client processes for `bench/soak.py`: SSE and WebSocket price streams held for the whole soak.

One asyncio loop per process holds `sse` + `ws` streams to one api replica and keeps
them: a stream that ends or fails is counted (a disconnect) and opened again a second
later, so the load stays constant and every disconnect is seen.

Lag, per price event: receive time - the newest tick `ts` in it. For SSE the receive
time is the kernel's (`SO_TIMESTAMPNS` on a raw socket, as bench/_fanout_clients.py
does, so a busy client loop does not count); for WS it is when our loop got the message
(`websockets`), and the loop-lag probe says how late that can be.

Talks to the parent over a `Pipe`:

    child  -> Ready(connected, failed, errors)      once every stream settled
    parent -> "report"  child -> Report (since the previous report)
    parent -> "stop"    child -> Report, then exits
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import time
from array import array
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from _fanout_clients import SO_TIMESTAMPNS, ChunkedBody, _kernel_time, _newest_ts
from websockets.asyncio.client import connect

CONNECT_BATCH = 50  # streams opened together before yielding to the loop
CONNECT_TIMEOUT_S = 120.0
RECONNECT_S = 1.0
LOOP_PROBE_S = 0.05
_Once = Callable[[], AsyncIterator[None]]  # one connection's life: yields once connected
SUBSCRIBE = json.dumps({"action": "subscribe", "topics": ["market_data"], "symbols": []})


@dataclass(frozen=True)
class ClientJob:
    replica: str
    port: int
    sse: int
    ws: int


@dataclass(frozen=True)
class Ready:
    replica: str
    connected: int
    failed: int
    errors: list[str]


@dataclass
class Report:
    """One client process's events since its previous report (lags in seconds)."""

    replica: str
    lag: dict[str, array[float]] = field(
        default_factory=lambda: {"sse": array("d"), "ws": array("d")}
    )
    connected: dict[str, int] = field(default_factory=lambda: {"sse": 0, "ws": 0})  # now
    silent: int = 0  # connected streams without a price event since the last report
    disconnects: int = 0
    connect_failures: int = 0
    malformed: int = 0
    loop_lag: array[float] = field(default_factory=lambda: array("d"))
    errors: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        if len(self.errors) < 5:
            self.errors.append(text)


def run_clients(job: ClientJob, conn: Connection) -> None:
    """Process entry point."""
    asyncio.run(_Clients(job, conn).run())


class _Clients:
    def __init__(self, job: ClientJob, conn: Connection) -> None:
        self.job = job
        self.conn = conn
        self.out = Report(job.replica)
        self.connected = {"sse": 0, "ws": 0}
        self.heard: set[tuple[str, int]] = set()  # streams with an event since the report
        self.settled = 0
        self.failed_first = 0
        self.all_settled = asyncio.Event()
        self.stopping = False

    async def run(self) -> None:
        total = self.job.sse + self.job.ws
        streams = [("sse", i) for i in range(self.job.sse)] + [
            ("ws", i) for i in range(self.job.ws)
        ]
        tasks: list[asyncio.Task[None]] = []
        for n, (kind, i) in enumerate(streams, 1):
            runner = self._sse if kind == "sse" else self._ws
            tasks.append(asyncio.create_task(runner(i)))
            if n % CONNECT_BATCH == 0:
                await asyncio.sleep(0.05)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await self.all_settled.wait()
        except TimeoutError:
            self.out.error(f"{total - self.settled} streams unsettled after connecting")
        self.conn.send(
            Ready(
                self.job.replica, sum(self.connected.values()), self.failed_first, self.out.errors
            )
        )
        probe = asyncio.create_task(self._probe_loop())
        while True:
            command = await asyncio.to_thread(self.conn.recv)
            if command == "stop":
                self.stopping = True
                break
            self.conn.send(self._take())
        probe.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(probe, *tasks, return_exceptions=True)
        self.conn.send(self._take())

    def _take(self) -> Report:
        out, self.out = self.out, Report(self.job.replica)
        out.connected = dict(self.connected)
        out.silent = sum(self.connected.values()) - len(self.heard)
        self.heard = set()
        return out

    def _settle(self, ok: bool) -> None:
        self.settled += 1
        if not ok:
            self.failed_first += 1
        if self.settled == self.job.sse + self.job.ws:
            self.all_settled.set()

    def _record(self, kind: str, stream: int, received: float, data: str) -> None:
        tick = _newest_ts(data)
        if tick is None:
            self.out.malformed += 1
            return
        self.out.lag[kind].append(received - tick)
        self.heard.add((kind, stream))

    async def _probe_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(LOOP_PROBE_S)
            self.out.loop_lag.append(loop.time() - start - LOOP_PROBE_S)

    async def _keep(self, kind: str, stream: int, once: _Once) -> None:
        """Run `once` (one connection's life) again and again; count how each ended."""
        first = True
        while True:
            connected = False
            try:
                async for _ in once():
                    connected = True
                    self.connected[kind] += 1
                    if first:
                        self._settle(True)
                        first = False
                    await asyncio.sleep(0)  # the generator yields once, when connected
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one stream's failure ends that stream only
                self.out.error(f"{kind}: {type(exc).__name__}: {exc}"[:300])
            if connected:
                self.connected[kind] -= 1
                if not self.stopping:
                    self.out.disconnects += 1
            else:
                self.out.connect_failures += 1
                if first:
                    self._settle(False)
                    first = False
            await asyncio.sleep(RECONNECT_S)

    async def _sse(self, stream: int) -> None:
        await self._keep("sse", stream, lambda: self._sse_once(stream))

    async def _ws(self, stream: int) -> None:
        await self._keep("ws", stream, lambda: self._ws_once(stream))

    async def _sse_once(self, stream: int) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        parser = _SSEParser()
        readable = asyncio.Event()
        fd = sock.fileno()
        try:
            await loop.sock_connect(sock, ("127.0.0.1", self.job.port))
            await loop.sock_sendall(
                sock,
                f"GET /api/stream/prices HTTP/1.1\r\nHost: 127.0.0.1:{self.job.port}\r\n"
                "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n".encode(),
            )
            loop.add_reader(fd, readable.set)
            announced = False
            while True:
                await readable.wait()
                readable.clear()
                try:
                    data, ancillary, _, _ = sock.recvmsg(1 << 16, 64)
                except (BlockingIOError, InterruptedError):
                    continue
                if not data:
                    raise ConnectionError("server closed the stream")
                arrived = _kernel_time(ancillary)
                received = arrived if not math.isnan(arrived) else time.time()
                for event in parser.feed(data):
                    self._record("sse", stream, received, event)
                if parser.ended:
                    raise ConnectionError("server ended the chunked stream")
                if parser.status is not None and not announced:
                    if parser.status != 200:
                        raise ConnectionError(f"HTTP {parser.status}")
                    announced = True
                    yield None
        finally:
            loop.remove_reader(fd)
            sock.close()

    async def _ws_once(self, stream: int) -> AsyncIterator[None]:
        async with connect(
            f"ws://127.0.0.1:{self.job.port}/ws",
            proxy=None,
            compression=None,
            ping_interval=None,
            open_timeout=60,
            close_timeout=2,
            max_size=1 << 22,
        ) as ws:
            await ws.send(SUBSCRIBE)
            yield None
            async for message in ws:
                now = time.time()
                text = message if isinstance(message, str) else message.decode()
                if text.startswith('{"type":"market_data"'):
                    self._record("ws", stream, now, text.partition('"data":')[2])
            raise ConnectionError(f"closed: {ws.close_code} {ws.close_reason}")


class _SSEParser:
    """HTTP head, chunked body and SSE framing of one response; yields `prices` data."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.ended = False
        self.head = b""
        self.chunked = False
        self.body = ChunkedBody()
        self.text = b""

    def feed(self, data: bytes) -> list[str]:
        if self.status is None:
            self.head += data
            head, sep, data = self.head.partition(b"\r\n\r\n")
            if not sep:
                return []
            self.status = int(head.split(b" ", 2)[1])
            self.chunked = b"transfer-encoding: chunked" in head.lower()
        body = self._dechunk(data) if self.chunked else data
        self.text = (self.text + body).replace(b"\r\n", b"\n")
        events: list[str] = []
        while (end := self.text.find(b"\n\n")) >= 0:
            block, self.text = self.text[:end], self.text[end + 2 :]
            if (found := _prices_data(block)) is not None:
                events.append(found)
        return events

    def _dechunk(self, data: bytes) -> bytes:
        body = self.body.feed(data)
        self.ended = self.body.ended
        return body


def _prices_data(block: bytes) -> str | None:
    event, data = b"message", []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        if name == b"data":
            data.append(value.removeprefix(b" "))
        elif name == b"event":
            event = value.strip()
    return b"\n".join(data).decode() if event == b"prices" and data else None

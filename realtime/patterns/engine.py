"""The pattern engine: per-symbol streaming state and the signals it fires, tick by tick.

`PatternEngine` owns the struct-of-arrays state (see `kernels.py` for every
definition) and the symbol -> id map, and decodes the kernels' numeric output
into typed `PatternSignal`s. Two entry points share one compiled step:
`on_tick` for a single tick on the event loop, `on_batch` for numpy arrays
(a micro-batch from a source, a replay, a benchmark). Feeding the same ticks
either way leaves the same state and yields the same signals.

Not here: where ticks come from, persistence and publishing (`sink.py`),
models (`inference.py`), clocks (timestamps are event times, passed in).
Not thread-safe: one engine is fed by one consumer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np

from models.enums import Side
from realtime.patterns import kernels as k
from realtime.patterns.config import KIND_OF_CODE, N_KINDS, PatternConfig, SignalKind
from realtime.patterns.kernels import O_PRICE, O_SCORE, O_SIZE, O_VWAP, O_Z

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BUY, _SELL = Side.BUY, Side.SELL
_BEARISH = frozenset({SignalKind.LOW_BREAKOUT, SignalKind.EMA_CROSS_DOWN, SignalKind.VWAP_LOSS})
_BY_Z = frozenset({SignalKind.ZSCORE_BREAKOUT, SignalKind.VOLUME_SPIKE})
# Side per signal code, looked up by index on the hot path (enum hashing is slow); None: by z.
_SIDE_OF_CODE: tuple[Side | None, ...] = tuple(
    None if kind in _BY_Z else _SELL if kind in _BEARISH else _BUY for kind in KIND_OF_CODE
)


def ns_to_datetime(ts_ns: int) -> datetime:
    """Aware UTC, microsecond precision (what both databases keep)."""
    return _EPOCH + timedelta(microseconds=ts_ns // 1000)


def datetime_to_ns(ts: datetime) -> int:
    if ts.tzinfo is None:
        raise ValueError(f"naive timestamp {ts!r}: the engine needs aware event times")
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


class PatternSignal(NamedTuple):
    """A pattern fired on one tick. `features` is the state right after that tick.

    A named tuple, with `features` built on access from the kernel's output
    row: a firing tick is on the hot path, and creating a tuple costs a
    fraction of a dataclass. Construct with `features=` or with the
    name/value pair (the engine does the latter).
    """

    symbol: str
    kind: SignalKind
    side: Side
    score: float
    price: float
    size: float
    ts_ns: int
    feature_names: tuple[str, ...] = ()
    feature_values: Sequence[float] = ()

    @classmethod
    def of(
        cls,
        symbol: str,
        kind: SignalKind,
        side: Side,
        score: float,
        price: float,
        size: float,
        ts_ns: int,
        features: dict[str, float],
    ) -> PatternSignal:
        return cls(
            symbol, kind, side, score, price, size, ts_ns, tuple(features), tuple(features.values())
        )

    @property
    def features(self) -> dict[str, float]:
        return dict(zip(self.feature_names, self.feature_values, strict=False))

    @property
    def ts(self) -> datetime:
        return ns_to_datetime(self.ts_ns)

    def as_message(self) -> dict[str, Any]:
        """The JSON-ready body published on the bus and pushed to dashboards."""
        return {
            "symbol": self.symbol,
            "kind": self.kind.value,
            "side": self.side.value,
            "score": _finite(self.score),
            "price": self.price,
            "size": self.size,
            "ts": self.ts.isoformat(),
            "features": {name: _finite(value) for name, value in self.features.items()},
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _kernel_array(values: Any, dtype: type[np.generic]) -> Any:
    """Contiguous, of `dtype`, writeable: numba compiles a second kernel for read-only arrays
    (pandas hands those out), which would cost seconds on first use; a copy costs microseconds."""
    array = np.ascontiguousarray(values, dtype=dtype)
    return array if array.flags.writeable else array.copy()


_make_signal = PatternSignal._make  # tuple.__new__ from one iterable: skips the keyword parsing


class SignalBatch:
    """The signals of one `on_batch` call, as arrays; `to_signals()` makes the objects."""

    def __init__(
        self, engine: PatternEngine, out_i: k.IntArray, out_f: k.FloatArray, ts_ns: k.IntArray
    ) -> None:
        self._engine = engine
        self.tick = out_i[:, k.O_TICK]  # index into the batch
        self.sid = out_i[:, k.O_SID]
        self.code = out_i[:, k.O_CODE]
        self.score = out_f[:, k.O_SCORE]
        self.ts_ns = ts_ns
        self._i, self._f = out_i, out_f

    def __len__(self) -> int:
        return int(self.tick.shape[0])

    def to_signals(self) -> list[PatternSignal]:
        return self._engine._decode(self._i, self._f, self.ts_ns)


class PatternEngine:
    """Streaming indicators and patterns for a growing set of symbols."""

    def __init__(self, config: PatternConfig | None = None, *, capacity: int = 64) -> None:
        self.config = config or PatternConfig()
        self._params = self.config.to_vector()
        self._ids: dict[str, int] = {}
        self._names: list[str] = []
        self._capacity = 0
        self.F = np.empty((0, k.N_F))
        self.I = np.empty((0, k.N_I), dtype=np.int64)
        self.R = np.empty((0, 2, self.config.ring))
        self._grow(max(capacity, 1))
        # on_tick's output rows: a tick fires at most one signal per kind
        self._one_i = np.zeros((N_KINDS, k.N_OI), dtype=np.int64)
        self._one_f = np.zeros((N_KINDS, k.N_OF))
        self._batch_i = np.zeros((4096, k.N_OI), dtype=np.int64)
        self._batch_f = np.zeros((4096, k.N_OF))
        # names of the output columns from O_VWAP on, in order (zip stops at the spans used)
        self._feature_names = (
            "vwap",
            "mean",
            "std",
            "high",
            "low",
            "volume_mean",
            "z",
            *(f"ema_{span}" for span in self.config.ema_spans),
        )
        self.ticks = 0
        self.signals = 0

    # --- symbols

    @property
    def symbols(self) -> list[str]:
        return list(self._names)

    def symbol_id(self, symbol: str) -> int:
        """The row of `symbol` in every state array, registering it on first sight."""
        sid = self._ids.get(symbol)
        if sid is None:
            sid = len(self._names)
            if sid == self._capacity:
                self._grow(self._capacity * 2)
            self._ids[symbol] = sid
            self._names.append(symbol)
        return sid

    def find(self, symbol: str) -> int | None:
        """The row of `symbol`, or None if no tick of it was seen (nothing is registered)."""
        return self._ids.get(symbol)

    def tick_count(self, sid: int) -> int:
        """Ticks seen for the symbol in row `sid`, all time (the ring keeps the last `ring`)."""
        return int(self.I[sid, k.I_COUNT])

    def last_ts_ns(self, sid: int) -> int:
        """Event time (ns since the epoch) of the newest tick of the symbol in row `sid`."""
        return int(self.I[sid, k.I_LAST_TS])

    def symbol_ids(self, symbols: list[str] | np.ndarray[Any, Any]) -> k.IntArray:
        return np.array([self.symbol_id(str(s)) for s in symbols], dtype=np.int64)

    def _grow(self, capacity: int) -> None:
        old = self._capacity
        F = np.zeros((capacity, k.N_F))
        I = np.zeros((capacity, k.N_I), dtype=np.int64)
        I[:, k.I_COOLDOWN : k.I_COOLDOWN + N_KINDS] = k.NEVER
        R = np.zeros((capacity, 2, self.config.ring))
        F[:old], I[:old], R[:old] = self.F, self.I, self.R
        self.F, self.I, self.R, self._capacity = F, I, R, capacity

    # --- ticks

    def on_tick(
        self, symbol: str, price: float, size: float, ts_ns: int
    ) -> tuple[PatternSignal, ...]:
        """Update `symbol`'s state with one tick; the signals it fired (usually none)."""
        sid = self._ids.get(symbol)
        if sid is None:
            sid = self.symbol_id(symbol)
        n = k.run_one(
            self.F, self.I, self.R, self._params, sid, price, size, ts_ns, self._one_i, self._one_f
        )
        self.ticks += 1
        if n == 0:
            return ()
        self.signals += n
        if n == 1:  # the common case when anything fires, kept lean: it is on the hot path
            _, sid, code = self._one_i[0].tolist()
            f = self._one_f[0].tolist()
            side = _SIDE_OF_CODE[code]
            if side is None:
                side = _SELL if f[O_Z] < 0 else _BUY
            return (
                _make_signal(
                    (
                        symbol,
                        KIND_OF_CODE[code],
                        side,
                        f[O_SCORE],
                        f[O_PRICE],
                        f[O_SIZE],
                        ts_ns,
                        self._feature_names,
                        f[O_VWAP:],
                    )
                ),
            )
        return tuple(self._decode(self._one_i[:n], self._one_f[:n], ts_ns))

    def on_batch(
        self,
        sids: k.IntArray,
        prices: k.FloatArray,
        sizes: k.FloatArray,
        ts_ns: k.IntArray,
    ) -> SignalBatch:
        """Ticks in arrival order (ids from `symbol_id`); the signals they fired, in order.

        The signals come back columnar (`SignalBatch`): a replay of millions of
        ticks should not build a Python object per signal unless asked to.
        """
        sids, prices, sizes, ts_ns = (
            _kernel_array(sids, np.int64),
            _kernel_array(prices, np.float64),
            _kernel_array(sizes, np.float64),
            _kernel_array(ts_ns, np.int64),
        )
        n = sids.shape[0]
        if not (prices.shape[0] == sizes.shape[0] == ts_ns.shape[0] == n):
            raise ValueError("on_batch needs arrays of one length")
        if n and (int(sids.min()) < 0 or int(sids.max()) >= len(self._names)):
            raise ValueError("on_batch got a symbol id the engine never issued")
        parts_i: list[k.IntArray] = []
        parts_f: list[k.FloatArray] = []
        start = 0
        while start < n:
            start, written = k.run_batch(
                self.F,
                self.I,
                self.R,
                self._params,
                sids,
                prices,
                sizes,
                ts_ns,
                start,
                self._batch_i,
                self._batch_f,
            )
            if written:
                parts_i.append(self._batch_i[:written].copy())
                parts_f.append(self._batch_f[:written].copy())
            elif start < n:  # cannot happen with >= N_KINDS rows; never spin
                raise RuntimeError("pattern kernel made no progress")
        self.ticks += n
        out_i = np.concatenate(parts_i) if parts_i else np.zeros((0, k.N_OI), dtype=np.int64)
        out_f = np.concatenate(parts_f) if parts_f else np.zeros((0, k.N_OF))
        self.signals += out_i.shape[0]
        return SignalBatch(self, out_i, out_f, ts_ns[out_i[:, k.O_TICK]])

    def _decode(
        self, out_i: k.IntArray, out_f: k.FloatArray, ts_ns: k.IntArray | int
    ) -> list[PatternSignal]:
        """Objects from output rows; `ts_ns` per row, or one event time for all (`on_tick`)."""
        names, feature_names = self._names, self._feature_names
        rows_i, rows_f = out_i.tolist(), out_f.tolist()
        one_time, per_row = (ts_ns, None) if isinstance(ts_ns, int) else (0, ts_ns.tolist())
        signals = []
        for row, ((_, sid, code), f) in enumerate(zip(rows_i, rows_f, strict=True)):
            side = _SIDE_OF_CODE[code]
            if side is None:  # z-score breakouts and volume spikes: the sign of z decides
                side = _SELL if f[O_Z] < 0 else _BUY
            signals.append(
                PatternSignal(
                    names[sid],
                    KIND_OF_CODE[code],
                    side,
                    f[O_SCORE],
                    f[O_PRICE],
                    f[O_SIZE],
                    one_time if per_row is None else per_row[row],
                    feature_names,
                    f[O_VWAP:],
                )
            )
        return signals

    # --- reading the state

    def state(self, symbol: str) -> dict[str, float]:
        """Every state value of `symbol` (NaN where not yet defined); KeyError if never seen."""
        sid = self._ids[symbol]
        F, I, cfg = self.F[sid], self.I[sid], self.config
        n, sess_n = int(I[k.I_COUNT]), int(I[k.I_SESS_COUNT])
        win = min(n, cfg.zscore_window)
        values = {
            "ticks": float(n),
            "session_ticks": float(sess_n),
            "rejected": float(I[k.I_REJECTED]),
            "price": F[k.F_PRICE] if n else math.nan,
            "vwap": F[k.F_VWAP] if n else math.nan,
            "session_volume": F[k.F_VOLUME],
            "session_mean": F[k.F_SESS_MEAN] if sess_n else math.nan,
            "session_var": F[k.F_SESS_M2] / (sess_n - 1) if sess_n > 1 else math.nan,
            "rolling_mean": F[k.F_WIN_MEAN] if n else math.nan,
            "rolling_var": F[k.F_WIN_M2] / (win - 1) if win > 1 else math.nan,
            "high": F[k.F_HIGH] if n else math.nan,
            "low": F[k.F_LOW] if n else math.nan,
            "volume_mean": F[k.F_VOL_MEAN] if n else math.nan,
            "z": F[k.F_Z] if n else math.nan,
        }
        for i, span in enumerate(cfg.ema_spans):
            values[f"ema_{span}"] = F[k.F_EMA + i] if n else math.nan
        return {name: float(value) for name, value in values.items()}

    def windows(self, sids: k.IntArray, length: int) -> k.FloatArray:
        """The last `length` (price, size) pairs of each symbol, oldest first: (n, length, 2).

        Symbols with fewer ticks are padded at the front with their oldest
        tick, so a model always gets a full window; callers check `ticks`.
        """
        ring = self.config.ring
        if not 1 <= length <= ring:
            raise ValueError(f"window length must be 1..{ring}, got {length}")
        counts = self.I[sids, k.I_COUNT]
        offsets = np.arange(length) - length  # -length .. -1
        ticks = np.maximum(counts[:, None] + offsets[None, :], 0)
        slots = ticks % ring
        out = self.R[sids[:, None], :, slots]  # (n, length, 2)
        return np.ascontiguousarray(out)


def warm_up(config: PatternConfig | None = None) -> None:
    """Compile (or load from the disk cache) both kernels, off the tick path."""
    engine = PatternEngine(config, capacity=1)
    engine.on_tick("WARM", 1.0, 1.0, 0)
    one = np.zeros(1, dtype=np.int64)
    engine.on_batch(one, np.ones(1), np.ones(1), one)

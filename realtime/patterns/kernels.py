"""The compiled per-tick update: every state value and every pattern, for one tick.

One function, `_step`, is the whole of the pattern logic; `run_one` (a tick)
and `run_batch` (an array of ticks) are two thin loops around it, so the two
entry points cannot disagree. numba compiles them on first use and caches the
machine code next to this file (`cache=True`); docs/decisions/0006 says why
numba and not pure Python or Cython.

State is held in arrays indexed by symbol id, one row per symbol:
* `F[sid, field]` float64 fields (`F_*`), `I[sid, field]` int64 fields (`I_*`);
  the column `F[:, field]` is that field's array over all symbols;
* `R[sid, 0, :]` the last `ring` prices and `R[sid, 1, :]` the last `ring`
  sizes, tick `n` of a symbol at slot `n % ring`.

Definitions (windows count ticks of one symbol; "prior" excludes the tick
being processed, so a tick is measured against what came before it):
* rolling mean/variance: over the last `zscore_window` prices, sliding
  Welford, re-derived exactly from the ring every `ring` ticks so rounding
  cannot accumulate; variance is the sample variance (ddof=1);
* z = (p - prior rolling mean) / prior rolling std, once the window is full;
* high/low: max/min of the last `breakout_window` prices (this tick included);
  a breakout is a price above the prior high (below the prior low);
* session: a calendar day at `session_utc_offset`; at its first tick the
  VWAP sums, the session mean/variance and the session counters restart;
  EMAs and rolling windows run on across sessions;
* VWAP reclaim/loss: the previous price was below (at or above) the previous
  VWAP and this price is at or above (below) the VWAP, after
  `vwap_min_ticks` ticks of the session;
* EMA cross: the sign of fast - slow changes, once the slow EMA has had
  `slow` ticks;
* volume spike: size >= ratio x the prior rolling mean size;
* cooldown: a (symbol, kind) fires at most once per `cooldown` of event time.

Scores: z for z-score; basis points beyond the level for breakouts, VWAP and
crossings ((fast - slow) / p); size / mean size for volume spikes.

A tick with a non-finite price or size, or a negative size, changes nothing
but `I_REJECTED`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from realtime.patterns.config import (
    MAX_EMAS,
    N_KINDS,
    P_BREAKOUT_WINDOW,
    P_COOLDOWN_NS,
    P_EMA_ALPHA,
    P_EMA_SPAN,
    P_ENABLED,
    P_FAST,
    P_N_EMAS,
    P_RING,
    P_SEED_SMA,
    P_SESSION_OFFSET_NS,
    P_SLOW,
    P_VOLUME_RATIO,
    P_VOLUME_WINDOW,
    P_VWAP_MIN_TICKS,
    P_Z_THRESHOLD,
    P_Z_WINDOW,
)

# float64 fields
F_PRICE = 0
F_PREV_PRICE = 1
F_PV = 2  # session sum of price x size
F_VOLUME = 3  # session volume
F_VWAP = 4
F_PREV_VWAP = 5
F_SESS_MEAN = 6
F_SESS_M2 = 7
F_WIN_MEAN = 8
F_WIN_M2 = 9
F_HIGH = 10
F_LOW = 11
F_VOL_SUM = 12
F_VOL_MEAN = 13
F_Z = 14
F_CROSS_DIFF = 15
F_EMA = 16  # MAX_EMAS values
F_EMA_SUM = F_EMA + MAX_EMAS  # MAX_EMAS seeding sums (sma seeding)
N_F = F_EMA_SUM + MAX_EMAS

# int64 fields
I_COUNT = 0
I_SESS_COUNT = 1
I_SESSION = 2  # the session key: day number at the session offset
I_LAST_TS = 3
I_REJECTED = 4
I_POS = 5  # slot of the next tick in the ring: I_COUNT % ring, kept to avoid a division
I_SESSION_START = 6  # [start, end) of the current session in event time, ns
I_SESSION_END = 7
I_COOLDOWN = 8  # N_KINDS: event time of the last emission per kind
N_I = I_COOLDOWN + N_KINDS
NEVER = np.iinfo(np.int64).min

# signal output: int64 columns, then float64 columns
O_TICK = 0
O_SID = 1
O_CODE = 2
N_OI = 3
O_SCORE = 0
O_PRICE = 1
O_SIZE = 2
O_VWAP = 3
O_MEAN = 4
O_STD = 5
O_HIGH = 6
O_LOW = 7
O_VOL_MEAN = 8
O_Z = 9
O_EMA = 10  # MAX_EMAS
N_OF = O_EMA + MAX_EMAS

DAY_NS = 86_400 * 1_000_000_000

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _back(pos: int, back: int, ring: int) -> int:
    """The slot `back` ticks before slot `pos` (0 < back <= ring)."""
    slot = pos - back
    return slot + ring if slot < 0 else slot


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _step(
    F: FloatArray,
    I: IntArray,
    R: FloatArray,
    P: FloatArray,
    sid: int,
    p: float,
    v: float,
    ts: int,
    tick: int,
    out_i: IntArray,
    out_f: FloatArray,
    n_out: int,
) -> int:
    if not (math.isfinite(p) and math.isfinite(v)) or v < 0.0:
        I[sid, I_REJECTED] += 1
        return n_out
    n = I[sid, I_COUNT]
    ring = int(P[P_RING])
    wz = int(P[P_Z_WINDOW])
    wb = int(P[P_BREAKOUT_WINDOW])
    wv = int(P[P_VOLUME_WINDOW])

    # Integer divisions cost more than the rest of the step: sessions and ring slots are
    # tracked incrementally, and a division happens only when a session changes.
    if n == 0 or ts >= I[sid, I_SESSION_END] or ts < I[sid, I_SESSION_START]:
        offset = int(P[P_SESSION_OFFSET_NS])
        session = (ts + offset) // DAY_NS
        I[sid, I_SESSION_START] = session * DAY_NS - offset
        I[sid, I_SESSION_END] = I[sid, I_SESSION_START] + DAY_NS
        F[sid, F_PV] = 0.0
        F[sid, F_VOLUME] = 0.0
        F[sid, F_VWAP] = np.nan
        F[sid, F_SESS_MEAN] = 0.0
        F[sid, F_SESS_M2] = 0.0
        I[sid, I_SESS_COUNT] = 0
        I[sid, I_SESSION] = session
    sess_n = I[sid, I_SESS_COUNT]
    prev_p = F[sid, F_PRICE]
    prev_vwap = F[sid, F_VWAP]
    fired = 0

    # --- patterns on the prior windows
    z = np.nan
    std_prior = np.nan
    if n >= wz:
        var = F[sid, F_WIN_M2] / (wz - 1)
        std_prior = math.sqrt(var) if var > 0.0 else 0.0
        z = (p - F[sid, F_WIN_MEAN]) / std_prior if std_prior > 0.0 else 0.0
        if abs(z) >= P[P_Z_THRESHOLD]:
            fired |= 1 << 0
    k = min(n, wb - 1)
    m_hi = -np.inf
    m_lo = np.inf
    pos = I[sid, I_POS]
    slot = _back(pos, k, ring)
    for _ in range(k):
        x = R[sid, 0, slot]
        if x > m_hi:
            m_hi = x
        if x < m_lo:
            m_lo = x
        slot += 1
        if slot == ring:
            slot = 0
    hb_score = 0.0
    lb_score = 0.0
    if n >= wb:
        old = R[sid, 0, _back(pos, wb, ring)]
        prior_hi = max(m_hi, old)
        prior_lo = min(m_lo, old)
        if p > prior_hi:
            fired |= 1 << 1
            hb_score = (p / prior_hi - 1.0) * 1e4 if prior_hi != 0.0 else 0.0
        if p < prior_lo:
            fired |= 1 << 2
            lb_score = (p / prior_lo - 1.0) * 1e4 if prior_lo != 0.0 else 0.0
    hi = max(m_hi, p)
    lo = min(m_lo, p)
    vol_score = 0.0
    if n >= wv:
        vm = F[sid, F_VOL_MEAN]
        if vm > 0.0 and v >= P[P_VOLUME_RATIO] * vm:
            fired |= 1 << 7
            vol_score = v / vm

    # --- rolling windows
    mean = F[sid, F_WIN_MEAN]
    m2 = F[sid, F_WIN_M2]
    if n < wz:
        d = p - mean
        mean += d / (n + 1)
        m2 += d * (p - mean)
    else:
        x_old = R[sid, 0, _back(pos, wz, ring)]
        m_old = mean
        mean = m_old + (p - x_old) / wz
        m2 += (p - x_old) * (p - mean + x_old - m_old)
        if m2 < 0.0:
            m2 = 0.0
    vsum = F[sid, F_VOL_SUM]
    if n < wv:
        vsum += v
    else:
        vsum += v - R[sid, 1, _back(pos, wv, ring)]
    R[sid, 0, pos] = p
    R[sid, 1, pos] = v
    n1 = n + 1
    pos += 1
    if pos == ring:
        pos = 0
        # Every `ring` ticks: re-derive the sliding sums exactly (two-pass) from the ring.
        c = min(n1, wz)
        total = 0.0
        for j in range(ring - c, ring):
            total += R[sid, 0, j]
        mean = total / c
        m2 = 0.0
        for j in range(ring - c, ring):
            d = R[sid, 0, j] - mean
            m2 += d * d
        c = min(n1, wv)
        vsum = 0.0
        for j in range(ring - c, ring):
            vsum += R[sid, 1, j]
    I[sid, I_POS] = pos
    F[sid, F_WIN_MEAN] = mean
    F[sid, F_WIN_M2] = m2
    F[sid, F_VOL_SUM] = vsum
    F[sid, F_VOL_MEAN] = vsum / min(n1, wv)

    # --- EMAs and their crossing
    seed_sma = P[P_SEED_SMA] > 0.0
    for i in range(int(P[P_N_EMAS])):
        a = P[P_EMA_ALPHA + i]
        if seed_sma:
            span = int(P[P_EMA_SPAN + i])
            if n < span:
                F[sid, F_EMA_SUM + i] += p
                F[sid, F_EMA + i] = F[sid, F_EMA_SUM + i] / span if n == span - 1 else np.nan
                continue
        elif n == 0:
            F[sid, F_EMA + i] = p
            continue
        e = F[sid, F_EMA + i]
        F[sid, F_EMA + i] = e + a * (p - e)
    ifast = int(P[P_FAST])
    islow = int(P[P_SLOW])
    diff = F[sid, F_EMA + ifast] - F[sid, F_EMA + islow]
    prev_diff = F[sid, F_CROSS_DIFF]
    cross_score = 0.0
    if n >= P[P_EMA_SPAN + islow]:
        if prev_diff <= 0.0 < diff:
            fired |= 1 << 3
        elif prev_diff >= 0.0 > diff:
            fired |= 1 << 4
        cross_score = diff / p * 1e4 if p != 0.0 else 0.0
    F[sid, F_CROSS_DIFF] = diff

    # --- session: VWAP, mean/variance, reclaim/loss
    pv = F[sid, F_PV] + p * v
    vol = F[sid, F_VOLUME] + v
    vwap = pv / vol if vol > 0.0 else np.nan
    F[sid, F_PV] = pv
    F[sid, F_VOLUME] = vol
    vwap_score = 0.0
    if sess_n >= P[P_VWAP_MIN_TICKS] and math.isfinite(prev_vwap) and math.isfinite(vwap):
        if prev_p < prev_vwap and p >= vwap:
            fired |= 1 << 5
        elif prev_p >= prev_vwap and p < vwap:
            fired |= 1 << 6
        vwap_score = (p / vwap - 1.0) * 1e4 if vwap != 0.0 else 0.0
    d = p - F[sid, F_SESS_MEAN]
    F[sid, F_SESS_MEAN] += d / (sess_n + 1)
    F[sid, F_SESS_M2] += d * (p - F[sid, F_SESS_MEAN])

    F[sid, F_PREV_PRICE] = prev_p
    F[sid, F_PRICE] = p
    F[sid, F_PREV_VWAP] = prev_vwap
    F[sid, F_VWAP] = vwap
    F[sid, F_HIGH] = hi
    F[sid, F_LOW] = lo
    F[sid, F_Z] = z
    I[sid, I_COUNT] = n1
    I[sid, I_SESS_COUNT] = sess_n + 1
    I[sid, I_LAST_TS] = ts

    # --- emission, with a cooldown per (symbol, kind) in event time
    fired &= int(P[P_ENABLED])
    if fired == 0:
        return n_out
    cooldown = int(P[P_COOLDOWN_NS])
    for code in range(N_KINDS):
        if not fired & (1 << code):
            continue
        last = I[sid, I_COOLDOWN + code]
        if last != NEVER and ts - last < cooldown:
            continue
        I[sid, I_COOLDOWN + code] = ts
        if code == 0:
            score = z
        elif code == 1:
            score = hb_score
        elif code == 2:
            score = lb_score
        elif code <= 4:
            score = cross_score
        elif code <= 6:
            score = vwap_score
        else:
            score = vol_score
        out_i[n_out, O_TICK] = tick
        out_i[n_out, O_SID] = sid
        out_i[n_out, O_CODE] = code
        out_f[n_out, O_SCORE] = score
        out_f[n_out, O_PRICE] = p
        out_f[n_out, O_SIZE] = v
        out_f[n_out, O_VWAP] = vwap
        out_f[n_out, O_MEAN] = mean
        out_f[n_out, O_STD] = std_prior
        out_f[n_out, O_HIGH] = hi
        out_f[n_out, O_LOW] = lo
        out_f[n_out, O_VOL_MEAN] = F[sid, F_VOL_MEAN]
        out_f[n_out, O_Z] = z
        for i in range(MAX_EMAS):
            out_f[n_out, O_EMA + i] = F[sid, F_EMA + i]
        n_out += 1
    return n_out


@njit(cache=True, nogil=True, error_model="numpy")
def run_one(
    F: FloatArray,
    I: IntArray,
    R: FloatArray,
    P: FloatArray,
    sid: int,
    p: float,
    v: float,
    ts: int,
    out_i: IntArray,
    out_f: FloatArray,
) -> int:
    """One tick; returns how many signals it wrote to the (>= N_KINDS rows) output."""
    return _step(F, I, R, P, sid, p, v, ts, 0, out_i, out_f, 0)


@njit(cache=True, nogil=True, error_model="numpy")
def run_batch(
    F: FloatArray,
    I: IntArray,
    R: FloatArray,
    P: FloatArray,
    sids: IntArray,
    prices: FloatArray,
    sizes: FloatArray,
    ts: IntArray,
    start: int,
    out_i: IntArray,
    out_f: FloatArray,
) -> tuple[int, int]:
    """Ticks `start:`, in order; returns (next tick to process, signals written).

    Stops early, between two ticks, when the output might not hold another
    tick's signals; the caller drains the output and calls again from there.
    """
    n_out = 0
    cap = out_i.shape[0]
    for t in range(start, sids.shape[0]):
        if n_out + N_KINDS > cap:
            return t, n_out
        n_out = _step(F, I, R, P, sids[t], prices[t], sizes[t], ts[t], t, out_i, out_f, n_out)
    return sids.shape[0], n_out

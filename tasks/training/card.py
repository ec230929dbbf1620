"""The model card: one markdown page per registered version, what a reviewer needs to trust it.

Written beside the ONNX file and as a Prefect artifact. It states where the
model came from (bars, range, hash), how it was scored (walk-forward folds,
out of sample, against which baselines), how it was decided, and what it is
known not to do, so a number on the dashboard can be traced to its terms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

KNOWN_LIMITS = (
    "Trained on stored bars (daily by default); the realtime engine feeds it tick windows. "
    "The inputs are scale-free (returns in units of the window's own volatility, volume "
    "relative to the window's mean), but a tick is not a day: treat live scores as a "
    "signal to check, not a calibrated probability.",
    "Closes are raw (point in time); windows holding a one-bar move beyond 40 % (a split, "
    "most likely) were dropped, not adjusted.",
    "No transaction costs, slippage or borrow: the figures score forecasts, not trades.",
    "Daily stock returns are close to a random walk; a small edge over the naive baseline "
    "in one period is weak evidence and can vanish in the next.",
)


@dataclass(frozen=True)
class CardFacts:
    name: str
    version: int
    status: str
    decision: str
    onnx_path: str
    onnx_sha256: str
    data_hash: str
    data_from: str
    data_to: str
    symbols: Sequence[str]
    samples: int
    dropped_jumps: int
    params: Mapping[str, Any]
    parity: float
    baselines: Sequence[str]  # metric prefixes beside the model's: "naive_", "prior_"
    metrics: Mapping[str, float]
    folds: Sequence[Mapping[str, Any]]  # one row per fold, flat
    extra: str = ""  # kind-specific sections (the calibration table)


def model_card(facts: CardFacts) -> str:
    shown = ", ".join(facts.symbols[:12]) + (
        f" and {len(facts.symbols) - 12} more" if len(facts.symbols) > 12 else ""
    )
    lines = [
        f"# {facts.name} v{facts.version}: {facts.status}",
        "",
        f"**Decision:** {facts.decision}",
        "",
        "## Source",
        "",
        f"* ONNX file: `{facts.onnx_path}` (SHA-256 `{facts.onnx_sha256}`)",
        f"* Bars: {len(facts.symbols)} symbols ({shown}), {facts.data_from} .. "
        f"{facts.data_to}, data hash `{facts.data_hash[:16]}`",
        f"* Samples: {facts.samples:,} windows; {facts.dropped_jumps:,} dropped for a "
        "split-sized jump",
        f"* ONNX Runtime against torch on held-out windows: max abs diff {facts.parity:.2e}",
        "* Parameters: " + ", ".join(f"{k}={_text(v)}" for k, v in sorted(facts.params.items())),
        "",
        "## Out of sample (walk-forward, weighted by test size)",
        "",
        *_verdict(facts.metrics),
        _metrics_table(facts.metrics, facts.baselines),
        "",
        "## Folds",
        "",
        _rows_table(facts.folds),
    ]
    if facts.extra:
        lines += ["", facts.extra]
    lines += ["", "## Known limits", ""] + [f"* {limit}" for limit in KNOWN_LIMITS]
    return "\n".join(lines) + "\n"


def _verdict(metrics: Mapping[str, float]) -> list[str]:
    """One plain sentence on whether the model beat its simplest baseline, before the table."""
    if "mase" in metrics and "naive_mase" in metrics:
        ours, naive = metrics["mase"], metrics["naive_mase"]
        if ours < naive:
            return [
                f"**Beats the random walk** out of sample: MASE {ours:.4g} against {naive:.4g}.",
                "",
            ]
        return [
            f"**Does not beat the random walk** out of sample: MASE {ours:.4g} against "
            f"{naive:.4g}. Its forecasts add nothing a zero-return guess does not; weigh "
            "them accordingly.",
            "",
        ]
    if "log_loss" in metrics and "prior_log_loss" in metrics:
        ours, prior = metrics["log_loss"], metrics["prior_log_loss"]
        word = "Beats" if ours < prior else "Does not beat"
        return [
            f"**{word} the class prior** out of sample: log loss {ours:.4g} against {prior:.4g}.",
            "",
        ]
    return []


def _metrics_table(metrics: Mapping[str, float], baselines: Sequence[str]) -> str:
    prefixes = tuple(baselines)
    own = [k for k in metrics if not k.startswith(prefixes) and _has_baseline(k, metrics, prefixes)]
    header = "| metric | model | " + " | ".join(p.rstrip("_").replace("_", " ") for p in prefixes)
    rows = [header + " |", "|---|---:|" + "---:|" * len(prefixes)]
    for key in own:
        cells = [_text(metrics.get(p + key, "")) for p in prefixes]
        rows.append(f"| {key} | {_text(metrics[key])} | " + " | ".join(cells) + " |")
    rest = [k for k in metrics if k not in own and not k.startswith(prefixes)]
    rows += [f"| {k} | {_text(metrics[k])} |" + " |" * len(prefixes) for k in rest]
    return "\n".join(rows)


def _has_baseline(key: str, metrics: Mapping[str, float], prefixes: tuple[str, ...]) -> bool:
    return any(p + key in metrics for p in prefixes)


def _rows_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "(none)"
    keys = list(rows[0])
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    out += ["| " + " | ".join(_text(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(out)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "/".join(_text(v) for v in value)
    return str(value)

"""Building the realtime engines from settings: the pattern engine's config and strategy
row, and the strategy engine over it with its models, weights and breaker.

Kept apart from realtime/runtime.py, which starts and stops everything in order: these
say what each engine is made of, and a bad setting stops the start with its name. The
engines' counters are exported by the API process (api/realtime_metrics.py), not here.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from db.engine import unit_of_work
from db.queries.signals import ensure_strategy
from models.errors import ConfigurationError
from realtime.patterns.config import PatternConfig
from realtime.patterns.engine import PatternEngine
from realtime.strategy.engine import SentimentLookup, StrategyEngine
from services.bus import Bus
from services.settings import Settings


def strategy_engine(
    settings: Settings,
    bus: Bus,
    patterns: PatternEngine,
    sessions: sessionmaker[Session],
    sentiment: SentimentLookup | None = None,
    on_latency: Callable[[float], None] | None = None,
) -> StrategyEngine:
    """The strategy engine over the pattern engine, its models read from the registry."""
    from realtime.strategy.breaker import CircuitBreaker
    from realtime.strategy.model_set import ModelSet
    from realtime.strategy.scoring import Weights

    models = ModelSet(
        sessions,
        threads=settings.inference_threads,
        tensorrt=settings.inference_tensorrt,
        cache_dir=settings.model_dir / "tensorrt",
    )
    try:
        weights = Weights(**settings.strategy_weights)
    except (TypeError, ValueError) as error:
        raise ConfigurationError(f"STRATEGY_WEIGHTS: {error}") from error
    return StrategyEngine(
        bus,
        patterns,
        models,
        sessions,
        weights=weights,
        breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s),
        timeout_s=settings.inference_timeout_ms / 1000,
        refresh_s=settings.model_refresh_s,
        on_latency=on_latency,
        sentiment=sentiment,
    )


def pattern_setup(settings: Settings, sessions: sessionmaker[Session]) -> tuple[PatternConfig, int]:
    """The engine's config and strategy id: PATTERN_PARAMS, overridden by the strategy row.

    The row is created with the settings' config the first time; after that,
    editing its `params` is how a deployment tunes the engine. A config that
    does not validate stops the start with the reason, never a silent default.
    """
    try:
        base = PatternConfig.from_params(settings.pattern_params)
    except ValidationError as exc:
        raise ConfigurationError(f"PATTERN_PARAMS: {exc}") from exc
    with unit_of_work(sessions) as session:
        strategy = ensure_strategy(
            session,
            settings.pattern_strategy,
            "pattern",
            base.model_dump(mode="json"),
            "Tick patterns of the realtime engine (realtime/patterns).",
        )
        if strategy.kind != "pattern":
            raise ConfigurationError(
                f"strategy {strategy.name!r} is a {strategy.kind!r} strategy, not 'pattern': "
                "set PATTERN_STRATEGY to another name"
            )
        try:
            config = PatternConfig.from_params(dict(strategy.params), base)
        except ValidationError as exc:
            raise ConfigurationError(f"strategy {strategy.name!r} params: {exc}") from exc
        return config, strategy.id

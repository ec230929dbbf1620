"""The one place configuration is read: environment variables and `.env`.

Everything has an embedded default, so a fresh clone runs with no setup;
production swaps parts by setting variables. Invalid values fail at start-up
with the variable's name (`load_settings` turns pydantic's error into a
`ConfigurationError`). No other module reads the environment.
"""

from __future__ import annotations

import json
import os
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from models.accounts import AccountConfig, default_accounts
from models.errors import ConfigurationError

# litellm downloads its model price map on import unless told not to; we have no internet in
# tests and want the prices pinned with the installed version. Set before litellm is imported
# (services/llm imports this module first).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# Prefect's server sends usage telemetry unless told not to; offline that is an ERROR line in
# every command's output, and an offline-first product should not phone home by default.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Sentiment models load from a local directory only (services/sentiment/transformer.py passes
# local_files_only too); this keeps every Hugging Face library off the hub, telemetry included.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

DEFAULT_DATABASE_URL = "sqlite:///./data/aitrader.db"


class LogFormat(StrEnum):
    AUTO = "auto"  # console on a terminal, JSON otherwise
    CONSOLE = "console"
    JSON = "json"


class AlpacaFeed(StrEnum):
    IEX = "iex"  # free
    SIP = "sip"  # paid, all exchanges


class SentimentRuntime(StrEnum):
    ONNX = "onnx"
    TRANSFORMERS = "transformers"


class NewsSource(StrEnum):
    NONE = "none"
    ALPACA = "alpaca"


class MarketDataSourceKind(StrEnum):
    SIMULATOR = "simulator"
    REPLAY = "replay"
    ALPACA = "alpaca"


class BookFeedKind(StrEnum):
    SIM = "sim"  # simulated venue books around the PriceCache prices
    NONE = "none"  # no order books; the book API answers 404


class JobRunner(StrEnum):
    AUTO = "auto"  # deployment when PREFECT_API_URL is set, else process
    DEPLOYMENT = "deployment"  # run_deployment on the Prefect server; a worker runs it
    PROCESS = "process"  # a child process of the realtime server runs the flow


class RealtimeRole(StrEnum):
    ALL = "all"  # one process: source, engines, books and the API (the embedded default)
    INGEST = "ingest"  # the market-data tier: source, engines, books; publishes on Redis
    API = "api"  # a replica: follows the ingest tier's streams, serves REST/SSE/WS


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """AITrader's configuration. Field names are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    environment: Environment = Environment.DEVELOPMENT
    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL. SQLite (default) or Postgres; postgresql:// is accepted.",
    )
    database_echo: bool = False
    redis_url: str | None = Field(None, description="Redis Streams bus; in-process bus if unset.")
    prefect_api_url: str | None = Field(None, description="Prefect server; ephemeral if unset.")
    prefect_home: Path = Field(
        Path("data/prefect"),
        description="Prefect's home (its database of flow runs) whenever AITrader starts a "
        "Prefect server itself: `aitrader up`, and a command run with no server beside it. One "
        "home for both, so the runs of `aitrader demo` are in the UI `aitrader up` opens.",
    )
    prefect_startup_timeout_s: float = Field(
        120.0,
        gt=0,
        description="Longest wait for a local Prefect server to answer (and for Prefect's own "
        "ephemeral server in worker processes); a busy machine needs more than Prefect's 20 s.",
    )
    stack_file: Path = Field(
        Path("data/stack.json"),
        description="Where `aitrader up` records its Prefect server (url, pid) while it runs, "
        "so flows run by commands beside it show in its UI.",
    )
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.AUTO
    alpaca_api_key: SecretStr | None = None
    alpaca_secret_key: SecretStr | None = None
    alpaca_paper: bool = True
    alpaca_data_feed: AlpacaFeed = AlpacaFeed.IEX
    alpaca_stream_url: str | None = Field(
        None, description="Full market-data stream URL (with /v2/iex); unset: Alpaca's."
    )
    llm_models: list[str] = Field(
        default_factory=lambda: ["offline"],
        description="litellm model names for the council; 'offline' is the built-in analyst.",
    )
    llm_api_base: str | None = Field(
        None, description="Base URL for OpenAI-compatible models (a proxy, a local server)."
    )
    llm_api_key: SecretStr | None = Field(
        None, description="Key sent with llm_api_base; providers' own keys use their env vars."
    )
    llm_concurrency: int = Field(4, ge=1, le=64, description="LLM calls in flight per provider.")
    llm_models_file: Path | None = Field(
        None,
        description="YAML or JSON naming each model (window, prices, timeout, tries, "
        "concurrency) and the council's roster: models/llm_config.py.",
    )
    llm_default_window: int = Field(
        8192,
        ge=1024,
        description="Context window assumed for a model neither litellm nor the models file "
        "describes.",
    )
    council_screen_max_symbols: int = Field(
        60, ge=2, le=2000, description="Most symbols the council's research studies."
    )
    council_screen_min_dollar_volume: float = Field(
        5e6, ge=0, description="Least mean daily dollar volume (20 bars) a studied symbol has."
    )
    council_screen_max_volatility: float = Field(
        1.0, gt=0, description="Highest annualised 20-day volatility a studied symbol has."
    )
    council_cutoff_policy: Literal["flag", "refuse"] = Field(
        "flag",
        description="A historical council whose as_of is before a member's training cutoff: "
        "flag it on every artifact and result, or refuse to sit it (services/llm/cutoffs.py).",
    )
    council_vote_weighting: bool = Field(
        False,
        description="Rank pitches for the chairman by peer reviews weighted by each "
        "reviewer's skill so far (tasks/council/skill.py); both tallies are recorded anyway.",
    )
    sample_data_dir: Path = Path("data/sample")

    # --- realtime process ------------------------------------------------------
    realtime_role: RealtimeRole = Field(
        RealtimeRole.ALL,
        description="all: one process does everything; ingest: runs the market data source, "
        "pattern and strategy engines and books, and publishes prices and books on Redis; "
        "api: a replica that follows them and serves REST, SSE and WebSocket (needs REDIS_URL).",
    )
    market_publish_ms: int = Field(
        20,
        ge=1,
        le=5000,
        description="REALTIME_ROLE=ingest: how often changed prices and books are sent to the "
        "api replicas (each message carries the latest state of what changed since the last).",
    )
    market_snapshot_s: float = Field(
        2.0,
        gt=0,
        le=300,
        description="REALTIME_ROLE=ingest: how often all prices and books are sent whole; a "
        "replica started late, or further behind than the streams keep, catches up from it.",
    )
    market_data_source: MarketDataSourceKind = MarketDataSourceKind.SIMULATOR
    realtime_symbols: list[str] = Field(
        default_factory=list,
        description="Symbols to stream; empty means every symbol with bars, else a default set.",
    )
    sim_interval_ms: int = Field(500, ge=10, description="Simulator step, wall-clock ms.")
    replay_path: Path | None = Field(None, description="Replay this bar file; unset: the DB.")
    replay_symbol: str | None = Field(None, description="Symbol of a replay file without one.")
    replay_timeframe: str = "1m"
    replay_speed: float = Field(60.0, gt=0, description="Replay speed; 60 = a minute a second.")
    sse_interval_ms: int = Field(
        500, ge=10, description="Price push interval (ms): at most one per 0.9 x this."
    )
    sse_heartbeat_s: float = Field(15.0, gt=0)
    sse_retry_ms: int = Field(3000, ge=0, description="Reconnect delay advertised to clients.")
    ws_queue_size: int = Field(256, ge=1, description="Per-client WebSocket queue; oldest dropped.")
    persist_live_bars: bool = Field(
        True, description="Roll live (Alpaca) ticks into 1-minute bars in the database."
    )
    gc_full_every_s: float = Field(
        600.0,
        ge=0,
        description="Realtime: full GC only right after a price frame, this often; 0: CPython's.",
    )
    job_poll_interval_ms: int = Field(
        2000, ge=50, description="Without Redis: how often the realtime process polls jobs."
    )

    # --- Level-2 order books (realtime process) -----------------------------------
    book_feed: BookFeedKind = Field(
        BookFeedKind.SIM, description="Order book feed: 'sim' (simulated venues) or 'none'."
    )
    book_levels: int = Field(10, ge=1, le=50, description="Levels per side the sim feed keeps.")
    book_interval_ms: int = Field(250, ge=10, description="Sim book feed step, wall-clock ms.")
    book_venues: list[str] = Field(
        default_factory=lambda: ["SIMA", "SIMB"],
        description="Venues the sim book feed quotes on, each with its own book.",
    )

    # --- Pattern engine (realtime process) ------------------------------------------
    pattern_engine: bool = Field(
        True, description="Run the tick pattern engine and publish its signals."
    )
    pattern_strategy: str = Field(
        "pattern_engine",
        min_length=1,
        max_length=100,
        description="Strategy row the signals belong to; its params override PATTERN_PARAMS.",
    )
    pattern_params: dict[str, Any] = Field(
        default_factory=dict,
        description="JSON object of pattern engine parameters (spans, windows, thresholds).",
    )
    signal_flush_ms: int = Field(
        500, ge=10, description="How often new signals are written to the database in a batch."
    )

    # --- Strategy engine (realtime process: signals + models -> suggestions) ---------------
    strategy_engine: bool = Field(
        True, description="Score each pattern signal with the served models into a suggestion."
    )
    strategy_weights: dict[str, float] = Field(
        default_factory=dict,
        description="JSON object overriding the inputs' weights (signal, forecaster, "
        "pattern_classifier, sentiment) and hold_band.",
    )
    inference_timeout_ms: int = Field(
        50, ge=1, le=10_000, description="How long a batch waits for the models' answer."
    )
    inference_threads: int = Field(
        1, ge=1, le=64, description="ONNX Runtime intra-op threads per served model."
    )
    inference_tensorrt: bool = Field(
        False, description="Race TensorRT against ONNX Runtime (the gpu extra and a GPU)."
    )
    model_refresh_s: float = Field(
        30.0, gt=0, le=3600, description="How often the served models are checked for promotion."
    )
    breaker_failures: int = Field(
        5, ge=1, le=1000, description="Model failures in a row that pause the models."
    )
    breaker_cooldown_s: float = Field(
        30.0, gt=0, le=3600, description="How long paused models stay unasked."
    )

    # --- News and sentiment (flows/sentiment.py, realtime news source) -------------------
    sentiment_model_dir: Path | None = Field(
        None,
        description="Local directory of a text-classification model (FinBERT-tone or any "
        "compatible classifier); unset, missing or broken: the lexicon scorer.",
    )
    sentiment_runtime: SentimentRuntime = Field(
        SentimentRuntime.ONNX,
        description="onnx: export the model once and score with ONNX Runtime (parity "
        "checked); transformers: the transformers pipeline itself.",
    )
    sentiment_batch: int = Field(32, ge=1, le=1024, description="Headlines scored per batch.")
    sentiment_half_life_h: float = Field(
        24.0, gt=0, le=24 * 90, description="Hours after which an item weighs half as much."
    )
    sentiment_window_h: float = Field(
        168.0, gt=0, le=24 * 365, description="Hours of news a symbol's sentiment reads."
    )
    sentiment_change_h: float = Field(
        24.0, gt=0, le=24 * 90, description="`change` is against the sentiment this long before."
    )
    news_source: NewsSource = Field(
        NewsSource.NONE,
        description="none, or alpaca: the realtime process stores Alpaca's live news stream.",
    )
    alpaca_news_stream_url: str | None = Field(
        None, description="Full news stream URL (…/v1beta1/news); unset: Alpaca's."
    )
    alpaca_data_url: str | None = Field(
        None, description="Alpaca market-data REST base URL (historical news); unset: Alpaca's."
    )

    # --- Trading accounts (flows: the execution stage) ---------------------------------
    accounts: list[AccountConfig] = Field(
        default_factory=default_accounts,
        description="JSON list of accounts (name, broker, allocation, sizing, limits, keys); "
        "default: one paper account named 'paper'.",
    )
    paper_state_dir: Path = Field(
        Path("data/paper"), description="Where each paper account keeps its state file."
    )
    broker_task_retries: int = Field(
        3, ge=0, le=20, description="Retries of an account's execution task (safe: idempotent)."
    )
    broker_retry_delay_s: float = Field(10.0, ge=0, description="Seconds between those retries.")

    # --- REST API (realtime process) ---------------------------------------------------
    api_anonymous_read: bool = Field(
        True,
        description="Let requests from this machine (loopback) read without a token; for the "
        "demo. Turn off behind a reverse proxy on the same host: every request looks local.",
    )
    api_cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser."
    )
    api_llm_rate_per_minute: int = Field(
        10, ge=1, le=10_000, description="LLM-spending requests per token per minute."
    )
    api_max_body_bytes: int = Field(
        1_048_576,
        ge=1_024,
        le=1_073_741_824,
        description="Largest request body read, in bytes; a larger one is a 413 before auth.",
    )
    jobs_runner: JobRunner = Field(
        JobRunner.AUTO, description="How POST /api/jobs runs a flow: deployment or process."
    )
    jobs_log_dir: Path = Field(
        Path("data/jobs"), description="Where job worker processes write their logs."
    )
    jobs_max_running: int = Field(
        4, ge=1, le=64, description="Most job processes the realtime server runs at once."
    )
    council_approval_poll_s: int = Field(
        2,
        ge=1,
        le=60,
        description="How often a council paused for approval asks Prefect whether it was "
        "resumed (Prefect's default, 10 s, keeps an approver waiting that long).",
    )

    # --- chat (realtime process) -------------------------------------------------------
    chat_model: str = Field("offline/assistant", description="litellm model of the chat assistant.")
    chat_budget_usd: float = Field(
        0.05, ge=0, description="Most one chat message may spend on its model, in USD."
    )
    chat_execute: bool = Field(
        False,
        description="Execute the trades the chat assistant proposes at once (after the risk "
        "checks); off: they wait in /api/trades/pending for a trader's approval.",
    )
    chat_account: str | None = Field(
        None, description="Account chat trades go to; unset: the first configured account."
    )

    # --- backtests -------------------------------------------------------------------------
    backtest_dask_address: str | None = Field(
        None,
        description="Dask scheduler (tcp://host:8786) for sweep chunks; unset: threads here.",
    )
    backtest_workers: int = Field(
        2, ge=1, le=256, description="Threads a sweep's chunks run on without Dask."
    )
    backtest_chunk_size: int = Field(
        500, ge=1, le=100_000, description="Parameter sets per sweep task."
    )
    backtest_plot_dir: Path = Field(
        Path("data/backtests"), description="Where the backtest flow writes its equity PNGs."
    )
    model_dir: Path = Field(
        Path("data/models"),
        description="Where training writes ONNX files and model cards (named by content hash).",
    )

    @field_validator("accounts")
    @classmethod
    def _distinct_accounts(cls, value: list[AccountConfig]) -> list[AccountConfig]:
        names = [a.name for a in value]
        if len(set(names)) != len(names):
            raise ValueError(f"account names must be distinct, got {names}")
        return value

    def alpaca_keys(self, needed_by: str) -> tuple[str, str]:
        """ALPACA_API_KEY and ALPACA_SECRET_KEY; `ConfigurationError` saying what needs them
        (`needed_by`: "MARKET_DATA_SOURCE=alpaca", "Alpaca news") and which are missing."""
        key, secret = self.alpaca_api_key, self.alpaca_secret_key
        missing = [
            name
            for name, value in (("ALPACA_API_KEY", key), ("ALPACA_SECRET_KEY", secret))
            if value is None or not value.get_secret_value()
        ]
        if missing or key is None or secret is None:
            raise ConfigurationError(f"{needed_by} needs {' and '.join(missing)}")
        return key.get_secret_value(), secret.get_secret_value()

    def account(self, name: str) -> AccountConfig:
        """The configured account called `name`; `ConfigurationError` if there is none."""
        for account in self.accounts:
            if account.name == name:
                return account
        known = ", ".join(a.name for a in self.accounts) or "none"
        raise ConfigurationError(f"no account {name!r} is configured (ACCOUNTS has: {known})")

    @field_validator("llm_api_base", "llm_api_key", "llm_models_file", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @field_validator("book_venues")
    @classmethod
    def _distinct_venues(cls, value: list[str]) -> list[str]:
        venues = [v.strip().upper() for v in value]
        if not venues or not all(venues) or len(set(venues)) != len(venues):
            raise ValueError(f"need one or more distinct, non-empty venues, got {value}")
        return venues

    @model_validator(mode="after")
    def _replicas_need_redis(self) -> Settings:
        if self.realtime_role is not RealtimeRole.ALL and not self.redis_url:
            raise ValueError(
                f"REALTIME_ROLE={self.realtime_role.value} needs REDIS_URL: the ingest tier "
                "and its api replicas talk over Redis Streams"
            )
        return self

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value or None


def normalise_database_url(url: str) -> str:
    """Return `url` with the driver AITrader uses, or raise if it is not SQLite or Postgres.

    SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3; we ship psycopg2,
    so Postgres URLs always name it explicitly.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend in {"postgresql", "postgres"}:
        return parsed.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    if backend == "sqlite":
        return url
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def load_settings() -> Settings:
    """Read settings now; a bad value raises `ConfigurationError` naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            (f"{'.'.join(str(p) for p in err['loc']).upper()}: " if err["loc"] else "")
            + err["msg"].removeprefix("Value error, ")
            for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once. Tests build `Settings(...)` directly instead."""
    return load_settings()


def secret_from_environment(name: str) -> str | None:
    """The value of the variable a models file names for a key (`api_key_env`): keys stay in
    the environment, and this module is the one that reads it."""
    return os.environ.get(name) or None


def child_environment(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process that must see `settings` exactly: this process's
    environment, with every field of `settings` written over it as its variable.

    The realtime server may have been given its settings in code (tests, embedding), not in
    the environment; a job's worker process reads them back from these variables.
    """
    env = dict(os.environ)
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            env.pop(name.upper(), None)
            continue
        field = getattr(settings, name)
        if isinstance(field, SecretStr):
            value = field.get_secret_value()
        elif isinstance(field, list) and field and isinstance(field[0], BaseModel):
            value = [_with_secrets(item) for item in field]
        env[name.upper()] = value if isinstance(value, str) else json.dumps(value)
    env.update(extra or {})
    return env


def _with_secrets(model: BaseModel) -> dict[str, Any]:
    """A model as JSON-ready data with its secrets in clear (for a child's environment only)."""
    data: dict[str, Any] = model.model_dump(mode="json")
    for key in data:
        value = getattr(model, key)
        if isinstance(value, SecretStr):
            data[key] = value.get_secret_value()
    return data

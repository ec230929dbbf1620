"""The models the gateway may call, each with its facts: where, what window, what price,
how long to wait and how often to try (`models.llm_config`).

A name the models file does not define is a litellm model name, and its facts
are litellm's (cost map, pinned with the installed version); what litellm does
not know either takes the settings' defaults. The offline analyst has no window
and costs nothing. Prices from the file are registered with litellm, so its
token counter and cost functions agree with our budget.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import litellm
import yaml  # type: ignore[import-untyped]  # no stubs installed
from pydantic import ValidationError

from models.errors import ConfigurationError
from models.llm_config import ModelsFile, ModelSpec
from services.llm.model_facts import provider_of
from services.settings import secret_from_environment

NO_KEY = "no-key"
"""Sent to a server of the models file that names no key variable (Ollama, vLLM, llama.cpp
need none, but OpenAI's client refuses to send a request without one)."""
# litellm prints "Provider List: ..." to stdout for a name it does not know; we ask it
# about such names on purpose (to fall back on our defaults), and library code must not print.
litellm.suppress_debug_info = True

DEFAULT_WINDOW = 8192
"""For a model nobody describes: small on purpose, a prompt that fits it fits most."""


@dataclass(frozen=True)
class ModelFacts:
    """A model as the gateway calls it."""

    spec: ModelSpec
    provider: str
    window: int | None  # None: no limit (the offline analyst)
    api_key: str | None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def model(self) -> str:
        return self.spec.model

    def answer_tokens(self, asked: int) -> int:
        """`asked`, capped by the model's output limit."""
        limit = self.spec.output_limit
        return min(asked, limit) if limit else asked

    def prompt_room(self, max_tokens: int) -> int | None:
        """The most tokens (as we count them) a prompt may have, leaving `max_tokens` for the
        answer and the model's margin for tokenizer differences; None: no limit."""
        if self.window is None:
            return None
        return int((self.window - self.answer_tokens(max_tokens)) / (1 + self.spec.token_margin))

    def count_tokens(self, messages: list[dict[str, Any]]) -> int:
        return int(litellm.token_counter(model=self.model, messages=messages))

    def worst_case_usd(self, prompt_tokens: int, max_tokens: int) -> Decimal | None:
        """The most a call can cost, from the file's prices; None: not priced here."""
        if not self.spec.priced:
            return None
        assert self.spec.input_cost_per_token is not None  # priced: both are set
        assert self.spec.output_cost_per_token is not None
        return (
            self.spec.input_cost_per_token * prompt_tokens
            + self.spec.output_cost_per_token * self.answer_tokens(max_tokens)
        )

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> Decimal | None:
        if not self.spec.priced:
            return None
        assert self.spec.input_cost_per_token is not None
        assert self.spec.output_cost_per_token is not None
        return (
            self.spec.input_cost_per_token * prompt_tokens
            + self.spec.output_cost_per_token * completion_tokens
        )


class ModelCatalog:
    def __init__(
        self,
        specs: Iterable[ModelSpec] = (),
        *,
        default_window: int = DEFAULT_WINDOW,
        api_base: str | None = None,
        api_key: str | None = None,
    ) -> None:
        """`api_base`/`api_key` (LLM_API_BASE, LLM_API_KEY) serve the names the file does not
        define, as before models files existed."""
        self._specs = {s.name: s for s in specs}
        self._default_window = default_window
        self._api_base = api_base
        self._api_key = api_key
        self._facts: dict[str, ModelFacts] = {}
        self._register()

    @property
    def names(self) -> list[str]:
        return sorted(self._specs)

    def facts(self, name: str) -> ModelFacts:
        cached = self._facts.get(name)
        if cached is None:
            cached = self._facts[name] = self._build(name)
        return cached

    def _build(self, name: str) -> ModelFacts:
        spec = self._specs.get(name)
        if spec is None:
            spec = ModelSpec(name=name, model=name, api_base=self._api_base)
            key = self._api_key
        else:
            key = secret_from_environment(spec.api_key_env) if spec.api_key_env else None
            if spec.api_key_env and not key:
                raise ConfigurationError(
                    f"model {spec.name}: its key variable {spec.api_key_env} is not set"
                )
            if key is None and spec.api_base:
                key = NO_KEY  # a local server wants none; litellm's client insists on one
        provider = provider_of(spec.model)
        if provider == "offline":
            return ModelFacts(spec, provider, None, None)
        info = _litellm_info(spec.model)
        window = spec.input_window or info.get("max_input_tokens") or self._default_window
        if spec.output_limit is None and info.get("max_output_tokens"):
            spec = spec.model_copy(update={"output_limit": int(info["max_output_tokens"])})
        return ModelFacts(spec, provider, int(window), key)

    def _register(self) -> None:
        """Tell litellm the prices and limits the file gives (its cost map keys by model)."""
        entries: dict[str, dict[str, Any]] = {}
        for spec in self._specs.values():
            if not spec.priced and spec.input_window is None:
                continue
            entry: dict[str, Any] = {"litellm_provider": provider_of(spec.model), "mode": "chat"}
            if spec.priced:
                entry["input_cost_per_token"] = float(spec.input_cost_per_token or 0)
                entry["output_cost_per_token"] = float(spec.output_cost_per_token or 0)
            if spec.input_window is not None:
                entry["max_input_tokens"] = spec.input_window
            if spec.output_limit is not None:
                entry["max_output_tokens"] = spec.output_limit
            entries[spec.model] = entry
        if entries:
            # litellm warns that a model outside its map has no cache prices; ours never do.
            quiet = logging.getLogger("LiteLLM")
            level = quiet.level
            quiet.setLevel(logging.ERROR)
            try:
                litellm.register_model(entries)
            finally:
                quiet.setLevel(level)


def load_models_file(path: Path) -> ModelsFile:
    """The models file at `path` (.yaml, .yml or .json), validated; one-line errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"models file {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        why = " ".join(str(exc).split())  # YAML's message spans lines, with a caret
        raise ConfigurationError(f"models file {path} is not valid: {why}") from None
    try:
        return ModelsFile.model_validate(data or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise ConfigurationError(f"models file {path}: {where}: {first['msg']}") from None


def catalog_from_settings(settings: Any) -> tuple[ModelCatalog, ModelsFile]:
    """The catalog and roster the settings configure (`LLM_MODELS_FILE`, LLM_API_BASE/KEY)."""
    path: Path | None = settings.llm_models_file
    spec = load_models_file(path) if path is not None else ModelsFile()
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    catalog = ModelCatalog(
        spec.models,
        default_window=settings.llm_default_window,
        api_base=settings.llm_api_base,
        api_key=key,
    )
    return catalog, spec


def _litellm_info(model: str) -> dict[str, Any]:
    try:
        return dict(litellm.get_model_info(model))
    except Exception:  # not in litellm's map: the file or the defaults must say
        return {}

"""`aitrader council roster`: who sits on the council and on which model, with the facts the
gateway will use (window, answer limit, prices, server, key), before anything is spent.

A models file that does not load, a key variable that is not set, or a model without a
price under a budget shows here in one line, not minutes into a run.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import typer
from rich.table import Table

from cli.context import console, run_command

Models = Annotated[str | None, typer.Option(help="litellm models, comma-separated.")]
PER_MILLION = Decimal(1_000_000)


@run_command
def roster_cmd(models: Models = None) -> None:
    """The council's seats, each with its model's window, prices, server and timeout."""
    from services.llm.catalog import catalog_from_settings
    from services.llm.offline import register_offline_provider
    from services.settings import get_settings
    from tasks.council.roster import default_roster, seat_models

    settings = get_settings()
    register_offline_provider()
    catalog, models_file = catalog_from_settings(settings)
    names = [m.strip() for m in models.split(",") if m.strip()] if models else None
    configured = [m for m in (names or settings.llm_models) if m != "offline"]
    roster = default_roster(configured)
    if names is None:
        roster = seat_models(roster, models_file.roster)
    source = f"models file {settings.llm_models_file}" if settings.llm_models_file else "LLM_MODELS"
    table = Table(title=f"council roster ({source})", show_edge=False)
    for column in ("seat", "role", "model", "window", "answer", "$/M in", "$/M out", "server"):
        table.add_column(column, overflow="fold")
    for member in roster.members:
        seats = [(member.name, str(member.role), member.model)]
        if member.review_model and member.review_model != member.model:
            seats.append((member.name, "reviewer", member.review_model))
        for seat, role, model in seats:
            facts = catalog.facts(model)
            spec = facts.spec
            price_in, price_out = _prices(
                facts.model, spec.input_cost_per_token, spec.output_cost_per_token
            )
            table.add_row(
                seat,
                role,
                model if model == facts.model else f"{model} ({facts.model})",
                "no limit" if facts.window is None else f"{facts.window:,}",
                "-" if spec.output_limit is None else f"{spec.output_limit:,}",
                price_in,
                price_out,
                spec.api_base or ("built in" if facts.provider == "offline" else facts.provider),
            )
    console.print(table)


def _prices(model: str, given_in: Decimal | None, given_out: Decimal | None) -> tuple[str, str]:
    """Per million tokens, from the file or litellm's map; "unpriced" when neither knows."""
    import litellm

    if given_in is not None and given_out is not None:
        return _per_million(given_in), _per_million(given_out)
    try:
        cost_in, cost_out = litellm.cost_per_token(
            model=model, prompt_tokens=1_000_000, completion_tokens=1_000_000
        )
    except Exception:  # litellm does not know it: a budget cannot be enforced
        return "unpriced", "unpriced"
    return f"{cost_in:.2f}", f"{cost_out:.2f}"


def _per_million(per_token: Decimal) -> str:
    return f"{per_token * PER_MILLION:.2f}"

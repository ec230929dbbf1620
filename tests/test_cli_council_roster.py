"""`aitrader council roster`: each seat's model and the facts the gateway will use, and a
models file that cannot be used refused in one line before anything is spent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.context import console
from cli.main import app
from services.settings import get_settings

MODELS = """\
models:
  - name: local
    model: openai/llama3.1:8b
    api_base: http://127.0.0.1:11434/v1
    input_window: 8192
    output_limit: 4096
    input_cost_per_token: 0
    output_cost_per_token: 0
  - name: mini
    model: openai/gpt-4o-mini
roster:
  analyst: local
  pm: local
  reviewer: mini
  chairman: mini
"""


@pytest.fixture
def roster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[Path, CliRunner]]:
    # Wide enough that no cell folds; the console exists already (another test made it).
    monkeypatch.setattr(console, "_width", 200)
    path = tmp_path / "models.yaml"
    monkeypatch.setenv("LLM_MODELS_FILE", str(path))
    get_settings.cache_clear()
    yield path, CliRunner()
    get_settings.cache_clear()


def test_the_roster_shows_each_seats_model_window_prices_and_server(
    roster: tuple[Path, CliRunner],
) -> None:
    path, runner = roster
    path.write_text(MODELS)
    result = runner.invoke(app, ["council", "roster"])
    assert result.exit_code == 0, result.output
    rows = [line.split("│") for line in result.output.splitlines() if "│" in line]
    cells = [[c.strip() for c in row] for row in rows]
    by_seat_role = {(c[0], c[1]): c[2:] for c in cells}
    assert by_seat_role[("analyst-momentum", "analyst")] == [
        "local (openai/llama3.1:8b)", "8,192", "4,096", "0.00", "0.00", "http://127.0.0.1:11434/v1"
    ]  # fmt: skip
    assert by_seat_role[("pm-contrarian", "reviewer")][:5] == [
        "mini (openai/gpt-4o-mini)", "128,000", "16,384", "0.15", "0.60"
    ]  # fmt: skip
    assert by_seat_role[("chairman", "chairman")][0] == "mini (openai/gpt-4o-mini)"
    assert "Provider List" not in result.output


def test_an_unusable_models_file_is_refused_in_one_line(roster: tuple[Path, CliRunner]) -> None:
    path, runner = roster
    path.write_text("roster: {chairman: nobody}\n")
    result = runner.invoke(app, ["council", "roster"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "the roster names models the file does not define: ['nobody']" in lines[0]

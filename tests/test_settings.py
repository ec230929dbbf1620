from __future__ import annotations

from pathlib import Path

import pytest

from models.errors import ConfigurationError
from services.settings import DEFAULT_DATABASE_URL, Settings, load_settings, normalise_database_url


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("DATABASE_URL", "REDIS_URL", "LOG_LEVEL", "LOG_FORMAT", "ENVIRONMENT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_are_embedded_and_offline() -> None:
    s = Settings()
    assert s.database_url == DEFAULT_DATABASE_URL
    assert s.redis_url is None
    assert s.prefect_api_url is None
    assert s.llm_models == ["offline"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db:5432/x", "postgresql+psycopg2://u:p@db:5432/x"),
        ("postgres://u@db/x", "postgresql+psycopg2://u@db/x"),
        ("postgresql+psycopg://u@db/x", "postgresql+psycopg2://u@db/x"),
        ("sqlite:///./data/a.db", "sqlite:///./data/a.db"),
    ],
)
def test_database_urls_are_normalised_to_psycopg2(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected


def test_env_var_is_read_and_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://me@127.0.0.1/prod")
    assert load_settings().database_url == "postgresql+psycopg2://me@127.0.0.1/prod"


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LOG_LEVEL=debug\nREDIS_URL=redis://127.0.0.1:6379/0\n")
    s = load_settings()
    assert s.log_level == "DEBUG"
    assert s.redis_url == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("var", "value", "named"),
    [
        ("DATABASE_URL", "mysql://root@localhost/x", "DATABASE_URL"),
        ("DATABASE_URL", "not a url", "DATABASE_URL"),
        ("LOG_LEVEL", "chatty", "LOG_LEVEL"),
        ("REDIS_URL", "http://127.0.0.1:6379", "REDIS_URL"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT"),
    ],
)
def test_invalid_setting_fails_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, named: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigurationError, match=named):
        load_settings()


def test_env_example_documents_every_setting() -> None:
    example = (Path(__file__).parent.parent / ".env.example").read_text()
    documented = {
        line.split("=", 1)[0].lstrip("# ").strip() for line in example.splitlines() if "=" in line
    }
    assert {name.upper() for name in Settings.model_fields} <= documented

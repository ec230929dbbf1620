"""The dependency rules of ARCHITECTURE.md, checked on every module's imports.

`models` imports nothing of ours; `db` only `models`; `services` only
`models`; `tasks`/`flows` never `api`, `realtime` or `cli`; `realtime` never
`flows`. A violation fails here instead of in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

OURS = {"api", "cli", "db", "deployments", "flows", "models", "realtime", "services", "tasks"}
FORBIDDEN = {
    "models": OURS - {"models"},
    "db": OURS - {"db", "models"},
    "services": OURS - {"services", "models"},
    "tasks": {"api", "realtime", "cli", "flows", "deployments"},
    "flows": {"api", "realtime", "cli"},
    "realtime": {"flows", "api", "cli", "tasks"},
    "api": {"flows", "cli"},
}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_dependency_direction(package: str) -> None:
    violations = {
        str(path.relative_to(REPO)): sorted(_imported_packages(path) & FORBIDDEN[package])
        for path in (REPO / package).rglob("*.py")
        if "migrations" not in path.parts
    }
    assert {k: v for k, v in violations.items() if v} == {}


def test_no_module_reads_the_environment_but_settings() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for package in OURS
        for path in (REPO / package).rglob("*.py")
        if ("os.getenv" in (text := path.read_text()) or "os.environ" in text)
        and path != REPO / "services" / "settings.py"
    ]
    assert offenders == []

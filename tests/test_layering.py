"""The dependency rules of ARCHITECTURE.md, checked on every module's imports.

`models` imports nothing of ours; `db` only `models`; `services` only
`models`; `tasks`/`flows` never `api`, `realtime` or `cli`; `realtime` never
`flows`. A violation fails here instead of in review.

One exception, by name (docs/decisions/0024): `tasks` and `flows` may import the
pattern engine (`realtime.patterns.config/engine/kernels`) and the suggestion
scoring (`realtime.strategy.scoring`), pure computations with no server state, so
that a scan or a past-day suggestion computes exactly what the live engine does.
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


SHARED_LIBRARIES = {
    "realtime.patterns",
    "realtime.patterns.config",
    "realtime.patterns.engine",
    "realtime.patterns.kernels",
    "realtime.strategy.scoring",
}
MAY_SHARE = {"tasks", "flows"}


def _imported_packages(path: Path, package: str) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
        else:
            continue
        for module in modules:
            if package in MAY_SHARE and module in SHARED_LIBRARIES:
                continue
            found.add(module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_dependency_direction(package: str) -> None:
    violations = {
        str(path.relative_to(REPO)): sorted(_imported_packages(path, package) & FORBIDDEN[package])
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


def test_the_shared_libraries_stay_pure() -> None:
    """What flows may import from `realtime` imports nothing of ours but `models` and each
    other: no server state can reach a flow through them."""
    impure = {}
    for module in SHARED_LIBRARIES:
        path = REPO / (module.replace(".", "/") + ".py")
        if not path.exists():
            path = REPO / module.replace(".", "/") / "__init__.py"
        tree = ast.parse(path.read_text(), filename=str(path))
        names = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
        } | {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        ours = {n for n in names if n.split(".")[0] in OURS}
        if bad := sorted(
            n for n in ours if n.split(".")[0] != "models" and n not in SHARED_LIBRARIES
        ):
            impure[module] = bad
    assert impure == {}

"""docker-compose.yml, its Dockerfiles and its proxy, checked without a Docker daemon.

Three readers. Compose itself: `docker-compose config` (Debian's v1; skipped without the
binary, failed under CI=true, where .ci/run installs it). The compose-spec JSON schema
(check-jsonschema's vendored copy). And the project: every environment variable the stack
sets is a setting of the program that reads it, every `aitrader` and `prefect` command line
parses in that CLI, every build target is a stage, each port a process listens on is the
one its health check, its clients and the proxy use, the proxy's upstreams are the api
replicas and its streams unbuffered, the work pool is prefect.yaml's, every ${VARIABLE} is
in .env.example, and the image's build context holds the package and no more.

Each check returns the problems it finds. It runs on the real files (none) and on a copy
with one mistake planted (that mistake named), so no check passes by looking at nothing.
Nothing is built or started: whether the images build and the stack comes up needs Docker.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.compose_checks import (
    COMPOSE,
    ENV_EXAMPLE,
    FILES,
    NGINX_CONF,
    PREFECT_DOCKERFILE,
    build_target_problems,
    command_problems,
    compose_config_problems,
    environment_problems,
    image_context_problems,
    lifecycle_problems,
    port_problems,
    prefect_version_problems,
    proxy_problems,
    schema_problems,
    variable_problems,
    work_pool_problems,
)
from tests.conftest import IN_CI, REPO

# --- the tests -------------------------------------------------------------------------------


CHECKS: dict[str, Callable[[Path], list[str]]] = {
    "schema": schema_problems,
    "environment": environment_problems,
    "commands": command_problems,
    "build targets": build_target_problems,
    "ports": port_problems,
    "proxy": proxy_problems,
    "work pool": work_pool_problems,
    "variables": variable_problems,
    "lifecycle": lifecycle_problems,
    "image context": image_context_problems,
    "prefect version": prefect_version_problems,
}


@dataclass(frozen=True)
class Planted:
    """A mistake: `old` becomes `new` in a copy of `file`; `check` must report `problem`."""

    check: str
    file: str
    old: str
    new: str
    problem: str
    create: tuple[str, ...] = ()  # empty files to add to the copy

    def plant(self, tmp_path: Path) -> Path:
        for name in (*FILES, *self.create):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            if name in FILES:
                shutil.copy(REPO / name, tmp_path / name)
            else:
                (tmp_path / name).write_text("")
        text = (tmp_path / self.file).read_text()
        assert self.old in text, f"{self.file} no longer holds {self.old!r}: update this mistake"
        (tmp_path / self.file).write_text(text.replace(self.old, self.new, 1))
        return tmp_path


INGEST_CHECK = "'http://127.0.0.1:8000/ready', timeout=4)\"]\n\n  # API"
STREAM_LOCATION = "location /api/stream/ {\n            proxy_pass http://aitrader_api;\n"
PLANTED = [
    Planted("schema", COMPOSE, "    healthcheck:\n      disable: true",
            "    healthchek:\n      disable: true", "'healthchek' was unexpected"),
    Planted("environment", COMPOSE, "REALTIME_ROLE: ingest", "REALTIME_ROLES: ingest",
            "ingest: REALTIME_ROLES is not a setting of services/settings.py"),
    Planted("environment", COMPOSE, "PREFECT_SERVER_DOCKET_URL:", "PREFECT_SERVER_DOCKETS_URL:",
            "PREFECT_SERVER_DOCKETS_URL is not a setting of Prefect's settings"),
    Planted("environment", COMPOSE, "PREFECT_MESSAGING_CACHE: prefect_redis.messaging",
            "PREFECT_MESSAGING_CACHE: prefect_redis.cache", "a module the image never imports"),
    Planted("environment", PREFECT_DOCKERFILE, "prefect_redis.lease_storage,", "",
            "prefect_redis.lease_storage, a module the image never imports"),
    Planted("commands", COMPOSE, '["db", "upgrade"]', '["db", "upgrad"]',
            "migrate: `aitrader db upgrad` is refused: No such command 'upgrad'"),
    Planted("commands", COMPOSE, '"--no-services"', '"--no-servics"',
            "Unknown option: --no-servics"),
    Planted("commands", COMPOSE, "deploy --all", "deploy --everything",
            "deploy: `prefect --no-prompt deploy --everything` is refused"),
    Planted("commands", "Dockerfile", 'ENTRYPOINT ["aitrader"]', 'ENTRYPOINT ["aitrader", "sreve"]',
            "ingest: `aitrader sreve serve"),
    Planted("build targets", COMPOSE, "target: runtime", "target: runtime-slim",
            "target 'runtime-slim' is not a stage of Dockerfile (builder, runtime)"),
    Planted("ports", COMPOSE, INGEST_CHECK, INGEST_CHECK.replace("8000", "8001"),
            "ingest: its healthcheck asks http://127.0.0.1:8001/ready, it listens on 8000"),
    Planted("ports", COMPOSE, "http://prefect-server:4200/api\n  JOBS",
            "http://prefect-server:4201/api\n  JOBS",
            "PREFECT_API_URL expects prefect-server on 4201, it listens on 4200"),
    Planted("ports", COMPOSE, "PREFECT_REDIS_MESSAGING_HOST: redis",
            "PREFECT_REDIS_MESSAGING_HOST: rediss",
            "PREFECT_REDIS_MESSAGING_HOST names rediss, not a service"),
    Planted("ports", COMPOSE, '"--host", "0.0.0.0", "--port", "8000"]',
            '"--host", "127.0.0.1", "--port", "8000"]', "ingest: listens on 127.0.0.1"),
    Planted("ports", COMPOSE, '"127.0.0.1:4200:4200"', '"127.0.0.1:4200:4300"',
            "prefect-server: publishes 127.0.0.1:4200:4300, it listens on 4200"),
    Planted("ports", "Dockerfile", "urlopen('http://127.0.0.1:8000/health'",
            "urlopen('http://127.0.0.1:8080/health'",
            "Dockerfile: HEALTHCHECK asks http://127.0.0.1:8080/health, CMD serves on 8000"),
    Planted("proxy", NGINX_CONF, "server api-2:8000", "server api-3:8000",
            "upstream aitrader_api sends to api-3, not an api replica"),
    Planted("proxy", NGINX_CONF, "server api-2:8000", "server api-1:8000",
            "proxy: api replica api-2 is in no upstream"),
    Planted("proxy", NGINX_CONF, "server api-1:8000", "server api-1:8080",
            "proxy: api-1:8080, but api-1 listens on 8000"),
    Planted("proxy", NGINX_CONF, STREAM_LOCATION + "            proxy_buffering off;\n",
            STREAM_LOCATION, "proxy: /api/stream/prices (SSE) is buffered"),
    Planted("proxy", NGINX_CONF, "location = /ws {\n",
            "location = /ws {\n            proxy_set_header Host $host;\n",
            "drops the Upgrade headers of /ws"),
    Planted("proxy", NGINX_CONF, "proxy_read_timeout 10m;", "proxy_read_timeout 30s;",
            "/api/conversations/{conversation_id}/message/stream (sse) is cut"),
    Planted("proxy", NGINX_CONF, "proxy_set_header Upgrade $http_upgrade;\n", "",
            "the server passes no Upgrade and Connection headers"),
    Planted("proxy", NGINX_CONF, "location / {\n            proxy_pass http://aitrader_api;",
            "location / {\n            proxy_pass http://aitrader;", "proxy_pass to aitrader,"),
    Planted("work pool", COMPOSE, '"--pool", "aitrader-process"', '"--pool", "aitrader"',
            "prefect-worker: `prefect worker start` names pool 'aitrader'"),
    Planted("work pool", COMPOSE, "prefect work-pool create aitrader-process",
            "prefect work-pool create aitrader-pool", "names pool 'aitrader-pool'"),
    Planted("variables", ENV_EXAMPLE, "AITRADER_EXTRAS=dask\n", "",
            "${AITRADER_EXTRAS} of docker-compose.yml is not listed"),
    Planted("variables", ENV_EXAMPLE, "# ALPACA_API_KEY=\n", "",
            "ALPACA_API_KEY (passed to the services) is not listed"),
    Planted("variables", ENV_EXAMPLE, "POSTGRES_PASSWORD=change-me", "# POSTGRES_PASSWORD=",
            "POSTGRES_PASSWORD is required and has no value"),
    Planted("lifecycle", COMPOSE, "    image: redis:7\n    restart: unless-stopped\n",
            "    image: redis:7\n", "redis: long-running, so restart: unless-stopped"),
    Planted("lifecycle", COMPOSE, 'command: ["db", "upgrade"]\n    restart: "no"',
            'command: ["db", "upgrade"]\n    restart: on-failure', "migrate: runs once"),
    Planted("lifecycle", COMPOSE, '["CMD", "python", "-c", "import urllib.request; urllib.request'
            ".urlopen('http://127.0.0.1:8080/health'", '["CMD", "curl", "-fsS", '
            '"http://127.0.0.1:8080/health", "-c", "', "its health check runs curl"),
    Planted("lifecycle", COMPOSE, "postgres-init.sql:/docker", "postgres-init.psql:/docker",
            "mounts ./deployments/compose/postgres-init.psql, which does not exist"),
    Planted("image context", ".dockerignore", "!api/\n", "", "api/app.py is left out of the image",
            create=("api/app.py",)),
    Planted("image context", ".dockerignore", "!tasks/\n", "!tasks/\n!tests/\n",
            "tests/test_x.py enters the image", create=("tests/test_x.py",)),
    Planted("image context", ".dockerignore", "!prefect.yaml\n", "",
            "Dockerfile: COPY prefect.yaml: not in the build context"),
    Planted("prefect version", PREFECT_DOCKERFILE, "prefect:3.8.8-python3.11",
            "prefect:3.9.0-python3.11", "prefect server image 3.9.0"),
]  # fmt: skip


@pytest.fixture(scope="module")
def compose_v1() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        message = "docker-compose is not on PATH (apt-get install docker-compose)"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: .ci/run installs it)", pytrace=False)
        pytest.skip(message)
    return binary


def test_compose_reads_the_stack_without_a_warning(compose_v1: str) -> None:
    assert compose_config_problems(REPO, compose_v1) == []


def test_compose_refuses_a_dependency_on_a_service_that_is_not_there(
    compose_v1: str, tmp_path: Path
) -> None:
    mistake = Planted(
        "", COMPOSE, "      deploy:\n        condition", "      deplyo:\n        condition", ""
    )
    problems = compose_config_problems(mistake.plant(tmp_path), compose_v1)
    assert any("deplyo" in problem for problem in problems), problems


@pytest.mark.parametrize("check", CHECKS)
def test_the_stack_passes_the_check(check: str) -> None:
    assert CHECKS[check](REPO) == []


@pytest.mark.parametrize("mistake", PLANTED, ids=[f"{m.check}: {m.problem[:48]}" for m in PLANTED])
def test_the_check_names_a_planted_mistake(tmp_path: Path, mistake: Planted) -> None:
    problems = CHECKS[mistake.check](mistake.plant(tmp_path))
    assert any(mistake.problem in problem for problem in problems), problems


def test_every_check_has_a_planted_mistake() -> None:
    assert {mistake.check for mistake in PLANTED} == set(CHECKS)

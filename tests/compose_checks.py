"""Reading the compose stack (docker-compose.yml, its Dockerfiles, its proxy config) and
checking it against the project, without a Docker daemon: each `*_problems(root)` returns
the problems it finds in the checkout at `root`. tests/test_compose.py runs them on the
real files and on copies with one mistake planted."""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml  # type: ignore[import-untyped]  # no stubs installed; prefect brings PyYAML

from tests.conftest import REPO

COMPOSE = "docker-compose.yml"
ENV_EXAMPLE = ".env.example"
NGINX_CONF = "deployments/compose/nginx.conf"
PREFECT_DOCKERFILE = "deployments/compose/prefect.Dockerfile"
# What the checks read; a planted mistake edits a copy of these.
FILES = (
    COMPOSE,
    ENV_EXAMPLE,
    "Dockerfile",
    ".dockerignore",
    "prefect.yaml",
    "pyproject.toml",
    NGINX_CONF,
    PREFECT_DOCKERFILE,
    "deployments/compose/postgres-init.sql",
)
# The images' own: postgres and redis listen on their defaults; the postgres image documents
# these variables (its page on Docker Hub).
DEFAULT_PORTS = {"postgres": 5432, "redis": 6379}
SCHEME_PORTS = {"http": 80, "redis": 6379, "postgresql": 5432}
POSTGRES_IMAGE_VARIABLES = frozenset({"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"})
# prefect-redis is installed in the server image (deployments/compose/prefect.Dockerfile), not
# here: its `prefect.collections` entry point would load it into every Prefect import of the
# suite. Its settings, as prefect_redis 0.3.0 declares them (client.RedisMessagingSettings,
# cleanup_queue.RedisWorkerCleanupQueueSettings):
PREFECT_REDIS_VARIABLES = frozenset(
    f"PREFECT_REDIS_{group}_{field}"
    for group in ("MESSAGING", "WORKER_CLEANUP_QUEUE")
    for field in ("URL", "HOST", "PORT", "DB", "USERNAME", "PASSWORD", "SSL")
)
# Programs a health check may not count on in our images (python:3.11-slim, Prefect's).
NOT_IN_IMAGES = {"curl", "wget"}
# Top-level paths the image's build context must leave out (and __pycache__ anywhere): state,
# secrets, tests, tooling, caches.
NOT_IN_IMAGE = {".venv", ".git", ".env", ".ci", "data", "tests", "bench", "docs", "build", "dist"}
NOT_IN_IMAGE |= {".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", ".benchmarks"}
LONG_STREAM_S = 300  # an SSE or WebSocket location's read timeout, at least
LOCAL = ("127.0.0.1", "localhost")


# --- the stack as Compose reads it -----------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    root: Path
    services: dict[str, dict[str, Any]]  # interpolated with .env.example's values
    read: frozenset[str]  # every ${NAME} the file reads
    required: frozenset[str]  # ${NAME:?...}: no default
    env_values: dict[str, str]  # .env.example's NAME=value lines
    env_listed: frozenset[str]  # ... and its `# NAME=` lines


_VARIABLE = re.compile(r"\$(?:\$|\{(\w+)(?:(:?[-?])([^}]*))?\}|(\w+))")


def load(root: Path) -> Stack:
    """docker-compose.yml with each ${VARIABLE} replaced as Compose would, given .env.example
    as the .env file."""
    values: dict[str, str] = {}
    listed: set[str] = set()
    for line in (root / ENV_EXAMPLE).read_text().splitlines():
        name, equals, value = line.lstrip("# ").partition("=")
        if equals and re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
            listed.add(name)
            if not line.startswith("#"):
                values[name] = value
    read: set[str] = set()
    required: set[str] = set()

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, default = match.group(1) or match.group(4), match.group(2), match.group(3)
        read.add(name)
        value = values.get(name)
        if op in (":-", "-") and (value is None or (op == ":-" and value == "")):
            return default or ""
        if op in (":?", "?"):
            required.add(name)
        return value or ""

    def interpolate(node: Any) -> Any:
        if isinstance(node, str):
            return _VARIABLE.sub(substitute, node)
        if isinstance(node, list):
            return [interpolate(item) for item in node]
        if isinstance(node, dict):
            return {key: interpolate(value) for key, value in node.items()}
        return node

    services = interpolate(yaml.safe_load((root / COMPOSE).read_text()))["services"]
    return Stack(root, services, frozenset(read), frozenset(required), values, frozenset(listed))


def program(service: dict[str, Any]) -> str:
    """Whose variables and commands a service runs: aitrader, prefect, postgres, redis, nginx."""
    if build := service.get("build"):
        dockerfile = Path(build.get("context", ".")) / build.get("dockerfile", "Dockerfile")
        return "aitrader" if dockerfile == Path("Dockerfile") else "prefect"
    return str(service["image"]).split(":")[0].rsplit("/", 1)[-1]


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    """NAME -> value; None for a name passed through from .env or the shell."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {str(k): None if v is None else str(v) for k, v in env.items()}


def words(value: str | list[str] | None) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else list(value or [])


def healthcheck(service: dict[str, Any]) -> list[str]:
    return words((service.get("healthcheck") or {}).get("test"))


def container_port(mapping: object) -> int:
    """The container's side of a `ports:` entry ("127.0.0.1:8000:80" -> 80)."""
    return int(str(mapping).rsplit(":", 1)[-1].split("/")[0])


def url_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or SCHEME_PORTS.get(parts.scheme.split("+")[0], 0)


# --- Dockerfiles -----------------------------------------------------------------------------


def dockerfile_stages(path: Path) -> dict[str, list[str]]:
    """Each stage's instructions (continuation lines joined, comments out), by `AS` name."""
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in path.read_text().replace("\\\n", " ").splitlines():
        if match := re.match(r"\s*FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.IGNORECASE):
            current = stages.setdefault(match.group(1) or f"#{len(stages)}", [])
        elif line.strip() and not line.lstrip().startswith("#"):
            current.append(line.strip())
    return stages


def instruction(stage: list[str], name: str) -> str:
    """The arguments of the stage's last `name` instruction (the one in force), or ""."""
    found = [line.split(None, 1)[1] for line in stage if line.split(None, 1)[0].upper() == name]
    return found[-1] if found else ""


def image_argv(root: Path, service: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The image's ENTRYPOINT and CMD: ours from the Dockerfile. The others' entrypoints
    run the `command` they are given (Prefect's: tini and `exec "$@"`)."""
    if program(service) != "aitrader":
        return [], []
    stage = dockerfile_stages(root / "Dockerfile")[service["build"]["target"]]
    return yaml.safe_load(instruction(stage, "ENTRYPOINT") or "[]"), yaml.safe_load(
        instruction(stage, "CMD") or "[]"
    )


# --- command lines ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    service: str
    path: str  # "aitrader serve", "prefect worker start"
    params: dict[str, Any]


def command_lines(argv: list[str]) -> list[list[str]]:
    """The simple commands of an argv, or of the script of `sh -c SCRIPT`."""
    if len(argv) < 3 or argv[0] != "sh" or not re.fullmatch(r"-\w*c\w*", argv[1]):
        return [argv] if argv else []
    lines: list[list[str]] = [[]]
    redirect_target = False
    for word in shlex.split(argv[2].replace("\n", " ; "), comments=True):
        if redirect_target:
            redirect_target = False
        elif re.fullmatch(r"\d*>{1,2}(&\d+)?", word):
            redirect_target = "&" not in word
        elif word in ("&&", "||", ";"):
            lines.append([])
        else:
            lines[-1].append(word)
    return [line for line in lines if line]


def parse_aitrader(args: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse like `aitrader ARGS` would, running nothing. Raises typer's usage errors."""
    import typer
    from typer.core import TyperGroup

    from cli.main import app

    command: Any = typer.main.get_command(app)
    name: Any = "aitrader"
    rest, ctx = list(args), None
    while isinstance(command, TyperGroup):
        ctx = command.make_context(name, list(rest), parent=ctx)
        name, command, rest = command.resolve_command(ctx, rest)  # raises on an unknown name
    parsed = command.make_context(name, rest, parent=ctx)
    return parsed.command_path, parsed.params


def parse_prefect(args: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse like `prefect ARGS` would, with the Prefect pyproject.toml resolves. Raises
    cyclopts' errors."""
    from prefect.cli._app import _app  # `prefect.cli.app` runs this cyclopts app

    _, session, _ = _app.meta.parse_args(args, exit_on_error=False, print_error=False)
    tokens = list(session.arguments.get("tokens", ()))
    _, bound, _ = _app.parse_args(tokens, exit_on_error=False, print_error=False)
    return " ".join(("prefect", *_app.parse_commands(tokens)[0])), dict(bound.arguments)


PARSERS = {"aitrader": parse_aitrader, "prefect": parse_prefect}


def commands(stack: Stack) -> tuple[list[Command], list[str]]:
    """Every aitrader and prefect command line of the stack, parsed; and the refusals."""
    import cyclopts
    import typer

    parsed: list[Command] = []
    problems: list[str] = []
    for name, service in stack.services.items():
        entrypoint, cmd = image_argv(stack.root, service)
        argv = (words(service.get("entrypoint")) or entrypoint) + (
            words(service.get("command")) or cmd
        )
        for line in command_lines(argv):
            if (parse := PARSERS.get(line[0])) is None:
                continue
            try:
                path, params = parse(line[1:])
            except (typer.TyperException, cyclopts.CycloptsError) as exc:
                problems.append(f"{name}: `{shlex.join(line)}` is refused: {exc}")
                continue
            parsed.append(Command(name, path, params))
    return parsed, problems


def listening_ports(stack: Stack) -> tuple[dict[str, int], list[str]]:
    """The port each service's process listens on, from its command line or its image; and
    the servers that listen where other containers cannot reach them."""
    from prefect.settings.models.server.api import ServerAPISettings
    from prefect.settings.models.worker import WorkerWebserverSettings

    listens = {
        name: DEFAULT_PORTS[program(service)]
        for name, service in stack.services.items()
        if program(service) in DEFAULT_PORTS
    }
    problems = []
    for command in commands(stack)[0]:
        env = environment(stack.services[command.service])
        if command.path in ("aitrader serve", "prefect server start"):
            default = env.get("PREFECT_SERVER_API_PORT") or _default(ServerAPISettings, "port")
            listens[command.service] = int(command.params.get("port") or default)
            if (host := command.params.get("host")) != "0.0.0.0":
                problems.append(f"{command.service}: listens on {host}, out of others' reach")
        elif command.path == "prefect worker start" and command.params.get("with_healthcheck"):
            default = _default(WorkerWebserverSettings, "port")
            listens[command.service] = int(env.get("PREFECT_WORKER_WEBSERVER_PORT") or default)
    if "proxy" in stack.services:
        listens["proxy"] = Nginx.read(proxy_config(stack)).listen
    return listens, problems


def _default(settings: type[Any], field: str) -> Any:
    """A Prefect setting's default, whatever this process's environment says."""
    return settings.model_fields[field].default


# --- the proxy's nginx.conf ------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    modifier: str  # "", "=", "^~", "~", "~*"
    path: str
    directives: list[list[str]]

    def values(self, name: str) -> list[str]:
        return [d[1] for d in self.directives if d[0] == name and len(d) > 1]


@dataclass(frozen=True)
class Nginx:
    """What the checks need of nginx.conf: upstreams, the server's directives, locations."""

    upstreams: dict[str, list[tuple[str, int]]]
    server: list[list[str]]  # the server block's own directives, its locations left out
    locations: list[Location]
    targets: set[str]  # proxy_pass http://TARGET
    listen: int

    @classmethod
    def read(cls, path: Path) -> Nginx:
        text = re.sub(r"#[^\n]*", "", path.read_text())
        server_block = re.search(r"\bserver\s*\{", text)
        listen = re.search(r"\blisten\s+(\d+)", text)
        assert server_block is not None, f"{path}: no server block"
        assert listen is not None, f"{path}: no listen"
        server = text[server_block.end() :]
        location = re.compile(r"location\s+(=|\^~|~\*|~)?\s*(\S+)\s*\{([^}]*)\}")
        return cls(
            upstreams={
                name: [
                    (host, int(port))
                    for host, port in re.findall(r"server\s+([\w.-]+):(\d+)", body)
                ]
                for name, body in re.findall(r"upstream\s+(\S+)\s*\{([^}]*)\}", text)
            },
            server=directives(location.sub("", server)),
            locations=[Location(m, p, directives(b)) for m, p, b in location.findall(server)],
            targets=set(re.findall(r"proxy_pass\s+https?://([^/;\s]+)", text)),
            listen=int(listen.group(1)),
        )

    def location(self, uri: str) -> Location | None:
        """The location nginx picks for `uri`: exact, then a ^~ prefix, a regex, the longest
        prefix."""
        for place in self.locations:
            if place.modifier == "=" and place.path == uri:
                return place
        prefixes = [
            p for p in self.locations if p.modifier in ("", "^~") and uri.startswith(p.path)
        ]
        longest = max(prefixes, key=lambda p: len(p.path), default=None)
        if longest is not None and longest.modifier == "^~":
            return longest
        for place in self.locations:
            flags = re.IGNORECASE if place.modifier == "~*" else 0
            if place.modifier in ("~", "~*") and re.search(place.path, uri, flags):
                return place
        return longest


def directives(body: str) -> list[list[str]]:
    return [d.split() for d in re.split(r"[;{}]", body) if d.strip()]


def proxy_config(stack: Stack) -> Path:
    for volume in stack.services["proxy"].get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if target == "/etc/nginx/nginx.conf":
            return stack.root / source
    raise AssertionError("the proxy mounts no /etc/nginx/nginx.conf")


def seconds(value: str) -> float:
    return float(value.rstrip("smh")) * {"h": 3600, "m": 60}.get(value[-1], 1)


@cache
def streaming_routes() -> tuple[tuple[str, str], ...]:
    """("sse" | "ws", path) of every streaming route in api/routers, read from the source:
    importing the routers would import the whole realtime engine."""
    routes = []
    for path in sorted((REPO / "api" / "routers").glob("*.py")):
        calls = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)]
        prefix = next(
            (
                str(kw.value.value)
                for call in calls
                if getattr(call.func, "id", None) == "APIRouter"
                for kw in call.keywords
                if kw.arg == "prefix" and isinstance(kw.value, ast.Constant)
            ),
            "",
        )
        for call in calls:
            route = call.args[0] if call.args else None
            if not (isinstance(route, ast.Constant) and isinstance(route.value, str)):
                continue
            if not isinstance(call.func, ast.Attribute):
                continue
            sse = any(
                kw.arg == "response_class" and getattr(kw.value, "id", "") == "EventSourceResponse"
                for kw in call.keywords
            )
            if call.func.attr == "websocket" or sse:
                routes.append(("sse" if sse else "ws", f"{prefix}{route.value}"))
    return tuple(routes)


# --- the names the stack may use -------------------------------------------------------------


@cache
def settings_names() -> frozenset[str]:
    from services.settings import Settings

    return frozenset(name.upper() for name in Settings.model_fields)


@cache
def prefect_setting_names() -> frozenset[str]:
    """Every environment variable Prefect's settings read: PREFECT_<path> and the aliases."""
    from prefect.settings import Settings as PrefectSettings
    from pydantic import AliasChoices
    from pydantic_settings import BaseSettings

    names: set[str] = set()

    def walk(model: type[BaseSettings], prefix: str) -> None:
        for name, field in model.model_fields.items():
            kind = field.annotation
            if isinstance(kind, type) and issubclass(kind, BaseSettings):
                walk(kind, f"{prefix}{name}_")
                continue
            names.add(f"{prefix}{name}".upper())
            alias = field.validation_alias
            choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
            names.update(choice.upper() for choice in choices if isinstance(choice, str))

    walk(PrefectSettings, "PREFECT_")
    return frozenset(names)


# --- the checks ------------------------------------------------------------------------------


def compose_config_problems(root: Path, binary: str) -> list[str]:
    """Compose's own reading (schema, references, interpolation) with .env.example as .env."""
    argv = [binary, "--env-file", str(root / ENV_EXAMPLE), "-f", str(root / COMPOSE)]
    run = subprocess.run(
        [*argv, "config", "-q"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},  # no variable of the caller's
    )
    output = [line for line in run.stderr.splitlines() if line.strip()]
    if run.returncode != 0:
        return output or [f"docker-compose config exited {run.returncode}"]
    return [line for line in output if "is not set" in line]


def schema_problems(root: Path) -> list[str]:
    """The compose-spec schema, as check-jsonschema vendors it."""
    binary = Path(sys.executable).with_name("check-jsonschema")
    assert binary.exists(), f"{binary} is missing: pip install -e '.[dev]'"
    run = subprocess.run(
        [str(binary), "--builtin-schema", "vendor.compose-spec", str(root / COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return [] if run.returncode == 0 else (run.stdout + run.stderr).strip().splitlines()


def environment_problems(root: Path) -> list[str]:
    """Each variable a service sets is one its program reads; each prefect_redis module the
    server's settings name is one its image build imports."""
    stack = load(root)
    allowed = {
        "aitrader": settings_names() | prefect_setting_names(),
        "prefect": prefect_setting_names() | PREFECT_REDIS_VARIABLES,
        "postgres": POSTGRES_IMAGE_VARIABLES,
    }
    owner = {"aitrader": "services/settings.py", "prefect": "Prefect's settings"}
    build = [
        line for line in (root / PREFECT_DOCKERFILE).read_text().splitlines() if "#" not in line
    ]
    imported = set(re.findall(r"prefect_redis\.\w+", "\n".join(build)))
    problems = []
    for name, service in stack.services.items():
        kind = program(service)
        for variable, value in environment(service).items():
            if variable not in allowed.get(kind, set()):
                where = owner.get(kind, f"the {kind} image")
                problems.append(f"{name}: {variable} is not a setting of {where}")
            module = value if value and value.startswith("prefect_redis.") else None
            if kind == "prefect" and module is not None and module not in imported:
                problems.append(f"{name}: {variable}={value}, a module the image never imports")
    return problems


def command_problems(root: Path) -> list[str]:
    return commands(load(root))[1]


def build_target_problems(root: Path) -> list[str]:
    problems = []
    for name, service in load(root).services.items():
        if build := service.get("build"):
            dockerfile = root / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
            stages = dockerfile_stages(dockerfile) if dockerfile.exists() else {}
            if (target := build.get("target")) not in stages:
                named = ", ".join(s for s in stages if not s.startswith("#")) or "none"
                problems.append(f"{name}: target {target!r} is not a stage of {dockerfile.name} "
                                f"({named})")  # fmt: skip
    return problems


def port_problems(root: Path) -> list[str]:
    """Health checks, published ports and clients' URLs meet the port each process listens
    on; the Dockerfile's HEALTHCHECK meets its CMD."""
    stack = load(root)
    listens, problems = listening_ports(stack)
    for name, service in stack.services.items():
        port = listens.get(name)
        for url in re.findall(r"https?://[^\s'\"]+", " ".join(healthcheck(service))):
            if urlsplit(url).hostname in LOCAL and url_port(url) != port:
                problems.append(f"{name}: its healthcheck asks {url}, it listens on {port}")
        for mapping in service.get("ports", []):
            if container_port(mapping) != port:
                problems.append(f"{name}: publishes {mapping}, it listens on {port}")
        env = environment(service)
        for variable, value in env.items():
            if value and "://" in value:
                host, target = urlsplit(value).hostname, url_port(value)
            elif value and variable.endswith("_HOST"):
                host, target = value, int(env.get(variable.removesuffix("_HOST") + "_PORT") or 0)
            else:
                continue
            if host not in LOCAL and host not in stack.services:
                problems.append(f"{name}: {variable} names {host}, not a service")
            elif host not in LOCAL and listens.get(host) != target:
                problems.append(
                    f"{name}: {variable} expects {host} on {target}, it listens on "
                    f"{listens.get(host)}"
                )
    stage = dockerfile_stages(root / "Dockerfile")["runtime"]
    served = parse_aitrader(yaml.safe_load(instruction(stage, "CMD")))[1]["port"]
    for url in re.findall(r"https?://[^\s'\"]+", instruction(stage, "HEALTHCHECK")):
        if url_port(url) != served:
            problems.append(f"Dockerfile: HEALTHCHECK asks {url}, CMD serves on {served}")
    return problems


def proxy_problems(root: Path) -> list[str]:
    """The upstreams are the api replicas on the port they serve; streaming routes reach
    them unbuffered and stay open; the WebSocket handshake passes."""
    stack = load(root)
    listens, _ = listening_ports(stack)
    nginx = Nginx.read(proxy_config(stack))
    replicas = {
        name
        for name, service in stack.services.items()
        if environment(service).get("REALTIME_ROLE") == "api"
    }
    problems = [
        f"proxy: proxy_pass to {t}, not an upstream" for t in nginx.targets - nginx.upstreams.keys()
    ]
    served: set[str] = set()
    for upstream, servers in nginx.upstreams.items():
        for host, port in servers:
            served.add(host)
            if host not in replicas:
                problems.append(f"proxy: upstream {upstream} sends to {host}, not an api replica")
            elif listens.get(host) != port:
                problems.append(f"proxy: {host}:{port}, but {host} listens on {listens.get(host)}")
    problems += [
        f"proxy: api replica {name} is in no upstream" for name in sorted(replicas - served)
    ]
    for kind, path in streaming_routes():
        location = nginx.location(re.sub(r"\{[^}]+\}", "x", path))
        if location is None:
            problems.append(f"proxy: no location serves {path}")
        elif kind == "sse" and "off" not in location.values("proxy_buffering"):
            problems.append(f"proxy: {path} (SSE) is buffered: location {location.path}")
        elif kind == "ws" and location.values("proxy_set_header"):
            problems.append(f"proxy: location {location.path} drops the Upgrade headers of {path}")
        elif seconds((location.values("proxy_read_timeout") or ["60s"])[-1]) < LONG_STREAM_S:
            problems.append(f"proxy: {path} ({kind}) is cut after the read timeout")
    headers = {d[1]: d[2] for d in nginx.server if d[0] == "proxy_set_header" and len(d) > 2}
    if headers.get("Upgrade") != "$http_upgrade" or "upgrade" not in headers.get("Connection", ""):
        problems.append("proxy: the server passes no Upgrade and Connection headers (WebSocket)")
    return problems


def work_pool_problems(root: Path) -> list[str]:
    """The worker polls, and the deploy step creates, the one pool prefect.yaml deploys to."""
    deployments = yaml.safe_load((root / "prefect.yaml").read_text())["deployments"]
    pools = {deployment["work_pool"]["name"] for deployment in deployments}
    problems = [] if len(pools) == 1 else [f"prefect.yaml: deployments in pools {sorted(pools)}"]
    polled = False
    for command in commands(load(root))[0]:
        pool = command.params.get("work_pool_name")
        if command.path.startswith("prefect work-pool"):
            pool = command.params.get("name")
        polled |= command.path == "prefect worker start" and pool in pools
        if pool is not None and pool not in pools:
            problems.append(
                f"{command.service}: `{command.path}` names pool {pool!r}, "
                f"prefect.yaml's is {sorted(pools)}"
            )
    return problems if polled else [*problems, "no prefect worker polls prefect.yaml's pool"]


def variable_problems(root: Path) -> list[str]:
    """Every ${VARIABLE} and every passed-through name is listed in .env.example; those
    without a default have a value there, so `cp .env.example .env` starts."""
    stack = load(root)
    passed = {
        variable
        for service in stack.services.values()
        for variable, value in environment(service).items()
        if value is None
    }
    return [
        *(
            f"{ENV_EXAMPLE}: ${{{n}}} of {COMPOSE} is not listed"
            for n in sorted(stack.read - stack.env_listed)
        ),
        *(
            f"{ENV_EXAMPLE}: {n} (passed to the services) is not listed"
            for n in sorted(passed - stack.env_listed)
        ),
        *(
            f"{ENV_EXAMPLE}: {name} is required and has no value"
            for name in sorted(stack.required)
            if not stack.env_values.get(name)
        ),
    ]


def lifecycle_problems(root: Path) -> list[str]:
    """One-shot services (something waits for them to complete) run once, unchecked; the
    others restart and have a health check the image can run. Bind-mounted files exist."""
    services = load(root).services
    one_shot = {
        dependency
        for service in services.values()
        for dependency, how in (service.get("depends_on") or {}).items()
        if isinstance(how, dict) and how.get("condition") == "service_completed_successfully"
    }
    problems = []
    for name, service in services.items():
        test = healthcheck(service)
        checked = bool(test) and not service["healthcheck"].get("disable")
        restart = str(service.get("restart", "no"))
        if name in one_shot and (restart != "no" or checked):
            problems.append(f'{name}: runs once, so restart: "no" and no health check')
        if name not in one_shot and (restart != "unless-stopped" or not checked):
            problems.append(f"{name}: long-running, so restart: unless-stopped and a health check")
        if program(service) in ("aitrader", "prefect") and NOT_IN_IMAGES & set(test[1:2]):
            problems.append(f"{name}: its health check runs {test[1]}, which its image lacks")
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith((".", "/")) and not (root / source).exists():
                problems.append(f"{name}: mounts {source}, which does not exist")
    return problems


def image_context_problems(root: Path) -> list[str]:
    """.dockerignore lets in the package (what `pip install .` builds from) and nothing of
    state, tests, tooling or caches; every COPY of the Dockerfile finds its source."""
    from docker.utils.build import exclude_paths  # type: ignore[import-untyped]  # prefect's

    ignore = [p for p in (root / ".dockerignore").read_text().splitlines() if p.strip()]
    context = exclude_paths(str(root), [p for p in ignore if not p.startswith("#")])
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = [root / p.rstrip("*") for p in setuptools["packages"]["find"]["include"]]
    needed = [root / "pyproject.toml", root / "README.md", root / "prefect.yaml"] + [
        path
        for package in packages
        for path in sorted(package.rglob("*"))
        if path.is_file()
        and "__pycache__" not in path.parts
        and not path.relative_to(root).as_posix().startswith("deployments/compose/")
    ]
    problems = [
        f"{path.relative_to(root)} is left out of the image"
        for path in needed
        if path.relative_to(root).as_posix() not in context
    ]
    for path in sorted(context):
        parts = path.split("/")
        if parts[0] in NOT_IN_IMAGE or parts[0].endswith(".egg-info") or "__pycache__" in parts:
            problems.append(f"{path} enters the image")
    for stage in dockerfile_stages(root / "Dockerfile").values():
        for line in stage:
            copy = line.split()
            if copy[0].upper() != "COPY" or any(w.startswith("--from") for w in copy):
                continue
            for source in copy[1:-1]:
                if source != "." and source.rstrip("/") not in context:
                    problems.append(f"Dockerfile: COPY {source}: not in the build context")
    return problems


def prefect_version_problems(root: Path) -> list[str]:
    """The server image runs a Prefect our clients (pyproject.toml's pin) speak to."""
    from packaging.requirements import Requirement

    match = re.search(r"prefecthq/prefect:(\d+\.\d+\.\d+)", (root / PREFECT_DOCKERFILE).read_text())
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    wanted = next(r for r in map(Requirement, project["dependencies"]) if r.name == "prefect")
    if match is None or match.group(1) not in wanted.specifier:
        found = match.group(1) if match else "no version"
        return [f"prefect server image {found}, our clients run prefect{wanted.specifier}"]
    return []

"""The README is tested: its quickstart and its REST walkthrough run as written.

Each ```sh block after a `<!-- tested: NAME -->` comment in README.md is taken
from the file as it stands and run by bash, unedited, as a user pastes it into
a terminal: in a directory laid out like the checkout (its Makefile, `.venv`
and `data/sample`, linked), against a database of its own on SQLite and on
Postgres, with only the environment a user's shell could have (DATABASE_URL,
PREFECT_HOME, PAPER_STATE_DIR, API, PATH). The user's path is followed:

1. the quickstart's first block (`make demo`), with SERVE=0 in the
   environment (the Makefile's `SERVE ?= 1` takes it), so the demo ends
   instead of starting the stack;
2. `aitrader up` on free ports, as `make demo` would start it, until it says
   it is up;
3. the quickstart's second block, then the REST walkthrough, each in a shell
   of its own ("in another terminal").

A block is cut into steps, each the shortest run of lines bash parses whole
(a command with its continued lines, a loop, a function, with the comments
above it). Between steps the harness prints markers, the step's exit code and
the variables it assigned; the step text itself is untouched. A step that
exits non-zero ends its block. Each step's output is then checked against
what the README's comment says it shows, and a step without a check here
fails the test: a new step in the README needs a check in this file.

`make demo` is cheap here: `.venv/.installed` is newer than pyproject.toml
(the checkout's pyproject.toml is a copy dated a second before the stamp, and
`make -q` confirms it), so make goes straight to `.venv/bin/aitrader demo`
and never runs pip on the shared venv. The Prefect home is shared by the two
backends' tests and starts as a copy of a migrated database (tests/
prefect_template.py); everything else is the test's own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.live_server import free_port
from tests.prefect_template import seed_home

README = REPO / "README.md"
UP_WITHIN_S = 240.0
BLOCK_WITHIN_S = 480.0  # the walkthrough waits 3 min at most twice
MARKER = re.compile(r"<!-- tested: ([\w-]+)[^>]*-->\s*\n```sh\n(.*?)```", re.DOTALL)
ASSIGNED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=", re.MULTILINE)


# --- the README's blocks, cut into steps -----------------------------------------------


def readme_blocks(name: str) -> list[str]:
    """The text of every ```sh block that follows `<!-- tested: name -->`, in order."""
    blocks = [body for marker, body in MARKER.findall(README.read_text()) if marker == name]
    assert blocks, f"README.md has no ```sh block after <!-- tested: {name} -->"
    return blocks


def _parses(text: str) -> bool:
    checked = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
    return checked.returncode == 0


def steps_of(block: str) -> list[str]:
    """The block's commands: each the shortest run of lines that bash parses whole and
    that does not end in a continuation, the comments above it included."""
    steps: list[str] = []
    lines: list[str] = []
    for line in block.splitlines():
        lines.append(line)
        text = "\n".join(lines)
        has_code = any(ln.strip() and not ln.lstrip().startswith("#") for ln in lines)
        if has_code and not line.rstrip().endswith("\\") and _parses(text + "\n"):
            steps.append(text)
            lines = []
    left = [ln for ln in lines if ln.strip()]
    assert all(ln.lstrip().startswith("#") for ln in left), f"the block ends mid-command: {left}"
    if left and steps:  # the last command's comment, continued
        steps[-1] += "\n" + "\n".join(left)
    return steps


def test_steps_are_whole_commands() -> None:
    block = (
        'A=1\nf() {\n  echo "$1"\n}\nB=$(echo a \\\n  b)  # two lines\n'
        "# about C\nC=3  # C,\n# three\n"
    )
    assert steps_of(block) == [
        "A=1",
        'f() {\n  echo "$1"\n}',
        "B=$(echo a \\\n  b)  # two lines",
        "# about C\nC=3  # C,\n# three",
    ]


# --- running a block -------------------------------------------------------------------


@dataclass
class Step:
    """One README step as it ran: its text, merged output, exit code, assigned variables."""

    block: str
    text: str
    output: str = ""
    code: int | None = None  # None: it never finished
    values: dict[str, str] = field(default_factory=dict)
    seconds: float | None = None

    @property
    def command(self) -> str:
        """The step without its comment-only lines: what the checks match."""
        return "\n".join(ln for ln in self.text.splitlines() if not ln.lstrip().startswith("#"))

    def json(self) -> Any:
        try:
            return json.loads(self.output)
        except ValueError:
            raise AssertionError("the output is not one JSON document") from None

    def report(self, why: str) -> str:
        return (
            f"README {self.block} step failed: {why}\n$ {self.text}\n"
            f"--- exit code {self.code}, {self.seconds} s; output (last 4000 characters):\n"
            f"{self.output[-4000:]}"
        )


def run_block(name: str, text: str, env: dict[str, str], cwd: Path, work: Path) -> list[Step]:
    """Run the block's steps, in order, in one bash; stop at the first that fails."""
    steps = [Step(name, s) for s in steps_of(text)]
    values = work / f"{name}-values"
    values.mkdir(parents=True, exist_ok=True)
    script = []
    for i, step in enumerate(steps):
        script += [f"printf '\\n@@step {i} %s\\n' \"$EPOCHREALTIME\"", step.text, "__rc=$?"]
        for var in dict.fromkeys(ASSIGNED.findall(step.command)):
            script.append(f'printf %s "${var}" > "{values}/{i}.{var}"')
        script += [
            f'printf \'\\n@@rc {i} %d %s\\n\' "$__rc" "$EPOCHREALTIME"',
            '[ "$__rc" -eq 0 ] || exit "$__rc"',
        ]
    (work / f"{name}.sh").write_text("\n".join(script) + "\n")
    shell = subprocess.Popen(
        ["bash", str(work / f"{name}.sh")],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = shell.communicate(timeout=BLOCK_WITHIN_S)
    except subprocess.TimeoutExpired:
        os.killpg(shell.pid, signal.SIGKILL)  # the shell and whatever it runs
        out, _ = shell.communicate()
        out += f"\n(the block did not end within {BLOCK_WITHIN_S:.0f} s)".encode()
    output = out.decode(errors="replace")
    marks = r"\n@@step (\d+) ([\d.,]+)\n(.*?)(?:\n@@rc \1 (\d+) ([\d.,]+)\n|\Z)"
    for match in re.finditer(marks, output, re.DOTALL):
        step = steps[int(match[1])]
        step.output = match[3]
        if match[4] is not None:
            began, ended = (float(t.replace(",", ".")) for t in (match[2], match[5]))
            step.code, step.seconds = int(match[4]), round(ended - began, 1)
        for path in values.glob(f"{match[1]}.*"):
            step.values[path.name.split(".", 1)[1]] = path.read_text()
    return steps


Check = Callable[[Step, dict[str, Any]], None]


def check_steps(steps: list[Step], checks: list[tuple[str, Check]], seen: dict[str, Any]) -> None:
    """Every step ran, exited 0 and shows what the README says; each has exactly one check."""
    for step in steps:
        matching = [check for pattern, check in checks if re.search(pattern, step.command)]
        if len(matching) != 1:
            pytest.fail(step.report(f"{len(matching)} checks match this step, not one"))
        if step.code != 0:
            pytest.fail(step.report("it did not exit 0" if step.code else "it never finished"))
        try:
            matching[0](step, seen)
        except AssertionError as exc:
            pytest.fail(step.report(str(exc) or "its output is not what the README says"))


# --- what each step shows ----------------------------------------------------------------


def quiet(step: Step, seen: dict[str, Any]) -> None:
    assert step.output.strip() == "", "the step should print nothing"


def demo(step: Step, seen: dict[str, Any]) -> None:
    out = step.output
    assert ".venv/bin/aitrader demo" in out, "make did not go straight to the demo"
    assert re.search(r"council run \d+ as of 2020-01-10: completed", out), "not the last day"
    assert re.search(r"^\s*decisions of council run \d+\s*$", out, re.MULTILINE), "no decisions"
    for title in ("orders sent", "orders", "positions"):
        assert re.search(rf"^\s*{title}\s*$", out, re.MULTILINE), f"no {title} table"
    sent = _table_rows(out, columns=8)  # account, decision, symbol, side, qty, order, status, why
    assert any(r[0] == "paper" and r[6] == "filled" for r in sent), "no order sent and filled"
    assert "up --host" not in out, "SERVE=0 did not skip `aitrader up`"


def cli_orders(step: Step, seen: dict[str, Any]) -> None:
    rows = _table_rows(step.output, columns=9)
    legs = {(r[3], r[7]) for r in rows}  # (leg, status)
    assert ("entry", "filled") in legs, f"no filled entry in {sorted(legs)}"
    assert ("take_profit", "accepted") in legs, f"no open take-profit leg in {sorted(legs)}"
    assert ("stop_loss", "accepted") in legs, f"no open stop-loss leg in {sorted(legs)}"


def cli_positions(step: Step, seen: dict[str, Any]) -> None:
    rows = _table_rows(step.output, columns=5)
    assert rows, "no positions"
    assert all(r[0] == "paper" and float(r[2]) > 0 and float(r[3]) > 0 for r in rows), rows


def _table_rows(output: str, *, columns: int) -> list[list[str]]:
    rows = [[c.strip() for c in ln.split("│")[1:-1]] for ln in output.splitlines()]
    return [r for r in rows if len(r) == columns]


def api_value(step: Step, seen: dict[str, Any]) -> None:
    assert step.values["API"] == seen["api"], step.values


def token(step: Step, seen: dict[str, Any]) -> None:
    seen["token"] = step.values["TOKEN"]
    assert re.fullmatch(r"ait_[\w-]{20,}", seen["token"]), "TOKEN is not a token"
    assert re.search(r"token \d+ for \S+, role trader: shown once", step.output), "not said once"


def header(step: Step, seen: dict[str, Any]) -> None:
    assert step.values["H"] == f"Authorization: Bearer {seen['token']}", step.values


def job_assigned(step: Step, seen: dict[str, Any]) -> None:
    quiet(step, seen)
    assert step.values["JOB"].startswith("HTTP/"), "JOB does not hold the answer"


def job_started(step: Step, seen: dict[str, Any]) -> None:
    status_line, body = step.output.splitlines()[0], step.output.splitlines()[-1]
    assert re.match(r"HTTP/[\d.]+ 202 Accepted", status_line), status_line
    job = json.loads(body)
    assert (job["type"], job["status"]) == ("council", "pending"), job
    assert (job["params"]["as_of"], job["params"]["approval"]) == ("2020-01-03", "manual"), job
    assert job["flow_run_id"], "no flow run"
    seen["job"] = job["id"]


def job_id(step: Step, seen: dict[str, Any]) -> None:
    quiet(step, seen)
    assert step.values["JOB_ID"] == str(seen["job"]), step.values


def waiting(step: Step, seen: dict[str, Any]) -> None:
    council = step.json()
    assert (council["waiting_for_approval"], council["stage"]) == (True, "approval"), council
    assert council["run"]["job_id"] == seen["job"], "the current run is not the job's"
    assert council["run"]["as_of"].startswith("2020-01-04T00:00:00"), council["run"]  # 03's close
    proposed = [d["id"] for d in council["decisions"] if d["status"] == "proposed"]
    assert proposed, "no decisions to approve"
    seen.update(run=council["run"]["id"], proposed=proposed)


def run_id(step: Step, seen: dict[str, Any]) -> None:
    quiet(step, seen)
    assert step.values["RUN_ID"] == str(seen["run"]), step.values


def approved(step: Step, seen: dict[str, Any]) -> None:
    answer = step.json()
    assert answer["run_id"] == seen["run"], answer
    assert (answer["approve"], answer["reject"]) == (sorted(seen["proposed"]), []), answer
    seen["approved"] = set(answer["approve"])


def job_completed(step: Step, seen: dict[str, Any]) -> None:
    job = step.json()
    assert job["id"] == seen["job"], job
    assert job["status"] == "completed", f"the job ended {job['status']}: {job['error']}"
    assert job["result"]["stage"] == "done", job["result"]
    assert job["result"]["council_run_id"] == seen["run"], job["result"]


def orders(step: Step, seen: dict[str, Any]) -> None:
    page = step.json()
    assert page["refused"] is None, "refused intents without include=refused"
    items = page["items"]
    created = [o["created_at"] for o in items]
    assert created == sorted(created, reverse=True), "not newest first"
    entries = {o["id"]: o for o in items if o["leg"] == "entry"}
    legs = {(o["parent_id"], o["leg"]) for o in items if o["leg"] != "entry"}
    for entry in entries.values():
        if entry["status"] == "filled":
            assert {(entry["id"], "take_profit"), (entry["id"], "stop_loss")} <= legs, entry
    seen["sent"] = {o["decision_id"] for o in entries.values()} & seen["approved"]


def refused(step: Step, seen: dict[str, Any]) -> None:
    page = step.json()
    assert page["refused"] is not None, "no refused page"
    lines = page["refused"]["items"]
    assert all(r["reason"] and r["checks"] for r in lines), "a refusal without its reason"
    refused = {r["decision_id"] for r in lines} & seen["approved"]
    # Exactly once: every approved decision went out, as an order or as a refusal.
    assert seen["sent"] | refused == seen["approved"], (seen["sent"], refused, seen["approved"])
    assert not seen["sent"] & refused, "a decision both sent and refused"
    assert refused, "after the demo's council, the walkthrough's should find the cash spent"


def positions(step: Step, seen: dict[str, Any]) -> None:
    rows = step.json()
    assert rows, "no positions"
    for row in rows:
        assert row["price_source"] == "live", row
        assert None not in (row["unrealized_pnl"], row["market_value"]), row


def equity_curve(step: Step, seen: dict[str, Any]) -> None:
    points = step.json()["items"]
    assert points, "no portfolio snapshots"
    assert all(p["account"] == "paper" and float(p["equity"]) > 0 for p in points), points


QUICKSTART: list[tuple[str, Check]] = [
    (r"^make demo\b", demo),
    (r"^source \.venv/bin/activate\b", quiet),
    (r"^aitrader orders\b", cli_orders),
    (r"^aitrader positions\b", cli_positions),
]
REST: list[tuple[str, Check]] = [
    (r"^source \.venv/bin/activate\b", quiet),
    (r"^API=", api_value),
    (r"^TOKEN=", token),
    (r"^H=", header),
    (r"^json\(\)", quiet),
    (r"^wait_for\(\)", quiet),
    (r"^JOB=", job_assigned),
    (r'^echo "\$JOB"', job_started),
    (r"^JOB_ID=", job_id),
    (r"^wait_for /api/council/current", quiet),
    (r'^curl [^|]*/api/council/current"\s', waiting),
    (r"^RUN_ID=", run_id),
    (r"/api/council/\$RUN_ID/approve", approved),
    (r"^wait_for \"/api/jobs/\$JOB_ID\"", quiet),
    (r'^curl [^|]*/api/jobs/\$JOB_ID"\s', job_completed),
    (r'/api/orders"', orders),
    (r'/api/orders\?include=refused"', refused),
    (r'/api/positions"', positions),
    (r'/api/portfolio/history"', equity_curve),
]


# --- the user's machine, the stack ---------------------------------------------------


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory: pytest.TempPathFactory, prefect_db_template: Path) -> Path:
    """One Prefect home for both backends' runs, its database already migrated (a user's
    second day): the first start on an empty home is tests/test_prefect_startup.py's."""
    return seed_home(tmp_path_factory.mktemp("readme-prefect"), prefect_db_template)


def checkout(where: Path) -> Path:
    """A directory laid out like the checkout, for the README's relative paths; what the
    commands write (data/paper, data/stack.json, data/jobs) lands here."""
    where.mkdir()
    (where / "Makefile").symlink_to(REPO / "Makefile")
    (where / ".venv").symlink_to(REPO / ".venv")
    (where / "data").mkdir()
    (where / "data" / "sample").symlink_to(REPO / "data" / "sample")
    # The venv is as installed: the copy is dated a second before the stamp, so make never
    # runs pip here. (Dated *as* the stamp, float rounding once made it a hair newer: make
    # re-installed the shared venv editable from this directory, and every later `aitrader`
    # failed with "No module named 'cli'".) Checked with `make -q` before anything runs.
    stamp_ns = (REPO / ".venv" / ".installed").stat().st_mtime_ns
    shutil.copyfile(REPO / "pyproject.toml", where / "pyproject.toml")
    os.utime(where / "pyproject.toml", ns=(stamp_ns - 10**9, stamp_ns - 10**9))
    fresh = subprocess.run(
        ["make", "-q", ".venv/.installed"], cwd=where, capture_output=True, text=True
    )
    if fresh.returncode != 0:
        pytest.fail(f"make would re-install the shared .venv from {where}: not running it")
    return where


def user_env(database_url: str, home: Path, prefect_home: Path, api: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "MAKE", "MFLAGS", "VIRTUAL_ENV"))
        and k not in {"DATABASE_URL", "REDIS_URL", "STACK_FILE", "LLM_MODELS", "ACCOUNTS"}
    }
    return {
        **env,
        "DATABASE_URL": database_url,
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PAPER_STATE_DIR": str(home / "data" / "paper"),
        "API": api,
        "PATH": f"{home / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "SERVE": "0",  # `make demo` ends after the demo; the test starts `aitrader up` itself
        "COLUMNS": "200",  # tables unwrapped, as on a wide terminal
    }


class Output:
    """A process's merged output, read as it comes; `seen` is set once `text` has shown."""

    def __init__(self, process: subprocess.Popen[str], text: str) -> None:
        self.lines: list[str] = []
        self.seen = threading.Event()
        self._process, self._text = process, text
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.append(line.rstrip("\n"))
            if self._text in line:
                self.seen.set()
        self.seen.set()  # it ended: nobody need wait any longer

    def tail(self) -> str:
        return "\n".join(self.lines[-60:])


@contextmanager
def aitrader_up(env: dict[str, str], home: Path, port: int, prefect_port: int) -> Iterator[None]:
    """`aitrader up` as `make demo` starts it, on the given ports, until it says it is up;
    stopped as Ctrl-C stops it (it stops its children) when the block ends."""
    command = [
        "aitrader", "up", "--port", str(port), "--prefect-port", str(prefect_port),
        "--prefect-home", env["PREFECT_HOME"],
    ]  # fmt: skip
    up = subprocess.Popen(
        command,
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = Output(up, "AITrader is up")
    try:
        if not output.seen.wait(UP_WITHIN_S) or up.poll() is not None:
            pytest.fail(f"`aitrader up` did not come up:\n{output.tail()}")
        yield
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            try:
                up.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
                up.wait()


@pytest.mark.timeout(900)
def test_the_readme_quickstart_and_rest_walkthrough_run_as_written(
    fresh_db_url: str, prefect_home: Path, tmp_path: Path
) -> None:
    home = checkout(tmp_path / "aitrader")
    work = tmp_path / "harness"
    port, prefect_port = free_port(), free_port()
    env = user_env(fresh_db_url, home, prefect_home, f"http://127.0.0.1:{port}")
    seen: dict[str, Any] = {"api": env["API"]}
    make_demo, another_terminal = readme_blocks("quickstart")
    (rest,) = readme_blocks("rest")
    ran: list[Step] = []

    def run(name: str, block: str, checks: list[tuple[str, Check]]) -> None:
        ran.extend(steps := run_block(name, block, env, home, work))
        check_steps(steps, checks, seen)

    timings = {"began": time.monotonic()}
    run("quickstart-1", make_demo, QUICKSTART)
    timings["make demo"] = time.monotonic()
    with aitrader_up(env, home, port, prefect_port):
        timings["aitrader up"] = time.monotonic()
        run("quickstart-2", another_terminal, QUICKSTART)
        run("rest", rest, REST)
        timings["walkthrough"] = time.monotonic()
    timings["stopping"] = time.monotonic()
    marks = list(timings.items())
    print({name: round(at - marks[i][1], 1) for i, (name, at) in enumerate(marks[1:])})
    print({s.command.splitlines()[0][:50]: s.seconds for s in ran if (s.seconds or 0) >= 1})

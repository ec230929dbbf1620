"""A command group that imports a command's module only when that command runs.

`aitrader --help` used to import every command module, and with them the API,
litellm, Prefect's client and pandas: 6 s before a line of help. The group
knows each command by name, module and one-line help; it lists them from that
table and imports the module on first use. `tests/test_cli_startup.py` checks
the table's help against the commands' own, so the two cannot drift apart.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer
from typer import _click
from typer.core import TyperCommand, TyperGroup, TyperOption


class QuickHelpGroup(TyperGroup):
    """A TyperGroup whose `--help` flag is False, not None, when not given.

    Typer coerces a None flag through a pydantic TypeAdapter: every group on the
    way to `aitrader council run --help` imported pydantic (0.2 s) only to find
    its own `--help` absent. A bool it passes through. The help page is the same.
    """

    def get_help_option(self, ctx: _click.Context) -> TyperOption | None:
        option = super().get_help_option(ctx)
        if option is not None and option.default is None:
            option.default = False
        return option


@dataclass(frozen=True)
class LazyCommand:
    """`attr` of `module`: a Typer app (a group) or a function (one command)."""

    module: str
    attr: str
    help: str

    def load(self, name: str) -> _click.Command:
        target: Any = getattr(importlib.import_module(self.module), self.attr)
        command: _click.Command
        if isinstance(target, typer.Typer):
            command = typer.main.get_group(target)
        else:
            single = typer.Typer(add_completion=False, rich_markup_mode=None)
            single.command(name)(target)
            command = typer.main.get_command(single)
        command.name = name
        return command


class LazyGroup(QuickHelpGroup):
    """A TyperGroup whose commands come from `lazy`, set on a subclass."""

    lazy: dict[str, LazyCommand] = {}  # a subclass's table, read only
    _summarising = False

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return [*super().list_commands(ctx), *self.lazy]

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        if (known := super().get_command(ctx, cmd_name)) is not None:
            return known
        spec = self.lazy.get(cmd_name)
        if spec is None:
            return None
        if self._summarising:  # the help page needs a name and a line, not the module
            return TyperCommand(cmd_name, help=spec.help)
        command = spec.load(cmd_name)
        self.add_command(command, cmd_name)
        return command

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        self._summarising = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._summarising = False

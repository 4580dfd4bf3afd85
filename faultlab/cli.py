"""The `faultlab` command: a thin entry point.

Each package declares its own subcommands in ``COMMANDS`` (name -> "module:attr");
they are imported only when invoked, so `faultlab --help` stays fast and a broken
optional part never takes the whole command down.
"""

from __future__ import annotations

import importlib

import click

from faultlab import __version__

PACKAGES = ("faultlab.server", "faultlab.harness", "faultlab.reports")


def _registry() -> dict[str, str]:
    commands: dict[str, str] = {}
    for package in PACKAGES:
        commands.update(getattr(importlib.import_module(package), "COMMANDS", {}))
    return commands


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_registry())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _registry().get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module_name), attr)
        except ImportError as exc:
            raise click.ClickException(f"'{cmd_name}' is unavailable: {exc}") from exc

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            try:
                command = self.get_command(ctx, name)
            except click.ClickException as exc:
                rows.append((name, f"(unavailable: {exc.message})"))
                continue
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="faultlab")
def main() -> None:
    """Reliability test harness and fault injector for Socket.IO chats."""

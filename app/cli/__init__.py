"""The ``homepot-ai`` command line: one root group, one module per command group.

Commands are loaded lazily from ``COMMANDS`` so that ``homepot-ai ask`` does not pay for
importing the anomaly, survival and benchmark code. Library errors are typed; ``main`` turns
the ones meant for users into one clear sentence on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

#: command name -> "module:attribute" of its click command.
COMMANDS: dict[str, str] = {
    "init": "app.cli.store_cmds:init",
    "status": "app.cli.store_cmds:status",
    "import": "app.cli.ingest_cmds:import_",
    "simulate": "app.cli.simulate_cmds:simulate",
    "scan": "app.cli.anomaly_cmds:scan",
    "risk": "app.cli.maintenance_cmds:risk",
    "ask": "app.cli.agent_cmds:ask",
    "chat": "app.cli.agent_cmds:chat",
    "report": "app.cli.report_cmds:report",
    "eval": "app.cli.eval_cmds:eval_",
    "bench": "app.cli.bench_cmds:bench",
    "demo": "app.cli.demo_cmds:demo",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._load(name, quiet=True) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name, quiet=False)

    @staticmethod
    def _load(name: str, *, quiet: bool) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if quiet and exc.name == module_name:
                return None
            raise
        return getattr(module, attr)


def _print_settings(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from tools.config import SETTINGS

    for s in SETTINGS:
        click.echo(f"{s.name}  (default: {s.default!r})\n    {s.help}")
    ctx.exit()


@click.group(cls=LazyGroup)
@click.version_option(package_name="homepot-ai")
@click.option("--help-settings", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_settings, help="List every setting (environment variable) and exit.")
def cli() -> None:
    """HOMEPOT AI: an operations agent for HOMEPOT device fleets.

    \b
    Start here:
      homepot-ai simulate --devices 50 --days 14   # build a demo fleet
      homepot-ai status                            # what is in the store
      homepot-ai ask "which devices need maintenance?"
    """


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user-facing errors into one sentence."""
    from app.errors import USER_ERRORS

    try:
        cli.main(args=argv, prog_name="homepot-ai", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except USER_ERRORS as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)

"""Every command is reachable, has help with an example, and is named in the README."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import COMMANDS, cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_loads_and_has_help(name):
    result = CliRunner().invoke(cli, [name, "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "Usage:" in result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_is_in_the_readme(name):
    assert f"homepot-ai {name}" in README, f"README.md does not mention `homepot-ai {name}`"


def test_unknown_command_names_the_valid_ones():
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code != 0
    assert "No such command" in result.output

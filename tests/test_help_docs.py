"""docs/configuration.md shows each command's ``--help`` as the CLI prints it (80 columns), never a stale copy."""

from __future__ import annotations

import re

import pytest

from tests.support.cli import ROOT, CliRunner

DOC = ROOT / "docs" / "configuration.md"
# A ```text block that starts with the command line of a --help, up to the closing fence.
BLOCK = re.compile(r"```text\n\$ python -m pipeline ((?:\w+ )?)--help\n(.*?)```", re.DOTALL)


def help_blocks(text: str) -> dict[str, str]:
    """Command (``""`` for the top level) → the help text the document shows for it."""
    return {command.strip(): shown for command, shown in BLOCK.findall(text)}


def test_the_document_shows_the_help_of_every_command() -> None:
    from pipeline.cli import COMMANDS

    assert set(help_blocks(DOC.read_text(encoding="utf-8"))) == {"", *COMMANDS}


@pytest.mark.parametrize("command", ["", "run", "check", "stages", "ddl", "history", "repair", "reprocess"])
def test_each_help_block_is_what_the_cli_prints(
    command: str, run_cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps at the terminal's width
    printed = run_cli(*command.split(), "--help").stdout

    assert help_blocks(DOC.read_text(encoding="utf-8"))[command] == printed, (
        f"docs/configuration.md's `{command or 'pipeline'} --help` is stale; paste `COLUMNS=80 python -m pipeline "
        f"{command} --help` into it"
    )


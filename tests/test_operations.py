"""OPERATIONS.md: every command in it is one the CLI accepts, and every procedure names tests that exist
and run its commands."""
from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest

from creditplus import cli, config

OPERATIONS = config.PROJECT_ROOT / "OPERATIONS.md"
TESTS = Path(__file__).parent


def procedures() -> list[tuple[str, list[list[str]], list[str]]]:
    """(heading, creditplus commands of its code blocks, its 'Tested by' tests)."""
    found = []
    for section in re.split(r"^## ", OPERATIONS.read_text(encoding="utf-8"), flags=re.M)[1:]:
        heading = section.splitlines()[0]
        blocks = re.findall(r"```\n(.*?)```", section, re.S)
        commands = [shlex.split(line.split("#")[0].replace("<", "'<").replace(">", ">'"))
                    for block in blocks for line in block.splitlines() if line.strip().startswith("creditplus ")]
        tested = re.findall(r"tests/\S+?\.py::\w+", re.sub(r",\s*\n", ", ", section.split("Tested by:")[-1])) \
            if "Tested by:" in section else []
        found.append((heading, commands, tested))
    return found


def test_every_procedure_has_commands_and_tests():
    listed = {heading: (commands, tested) for heading, commands, tested in procedures()}
    for heading, (commands, tested) in listed.items():
        if heading.startswith("Alerts"):
            continue
        assert commands, f"{heading}: no command"
        assert tested, f"{heading}: no 'Tested by'"


@pytest.mark.parametrize(("heading", "commands", "tested"), procedures(), ids=[p[0] for p in procedures()])
def test_each_command_is_accepted_and_run_by_its_tests(heading, commands, tested):
    parser = cli.build_parser()
    for argv in commands:
        parser.parse_args(argv[1:])  # SystemExit on anything the CLI does not accept
    sources = []
    for reference in tested:
        path, name = reference.split("::")
        source = (config.PROJECT_ROOT / path).read_text(encoding="utf-8")
        assert name in {n.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)}, reference
        sources.append(source)
    for argv in commands:
        words = [w for w in argv[1:3] if not w.startswith("-")]
        assert any(all(f'"{w}"' in s for w in words) for s in sources), f"{heading}: no named test runs {argv}"

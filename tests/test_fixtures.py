"""The copies in tests/fixtures equal their source in ../shared (tests/fixtures/README.md)."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES

SHARED = FIXTURES.parents[2] / "shared"
COPIES = {"basic-2026-11-26": "acceptance/cases/basic-2026-11-26", "spec/publication-channels.md": "spec/publication-channels.md"}


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in ([root] if root.is_file() else root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("copy", COPIES)
def test_each_fixture_is_an_unchanged_copy_of_shared(copy):
    source = SHARED / COPIES[copy]
    if not SHARED.is_dir():
        pytest.skip("no shared/ beside the project (a user's clone): the copies are all there is to compare")
    assert files(FIXTURES / copy) == files(source), f"tests/fixtures/{copy} differs from {source}: copy it over"

"""The CLI contract: bad arguments give a one-line error and a non-zero exit, not a traceback."""
import subprocess
import sys

import pytest


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "creditplus.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize("args, fragment", [
    (["nightly", "--date", "2026-02-30"], "is not a date"),
    (["nightly", "--date", "yesterday"], "is not a date"),
    (["platform", "serve", "--data", "/nonexistent/dataset"], "is not a directory"),
])
def test_bad_arguments_exit_non_zero_with_one_line(args, fragment):
    result = run_cli(*args)
    assert result.returncode == 2
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr

"""The package stays ruff-clean, formatted, and type-checks (mypy)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy", "realtime"],
    ],
    ids=["ruff", "ruff-format", "mypy"],
)
def test_tool_passes(command, tmp_path):
    tool, *args = command
    if tool == "mypy":
        args += ["--cache-dir", str(tmp_path / "mypy")]
    done = subprocess.run(
        [str(BIN / tool), *args], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr

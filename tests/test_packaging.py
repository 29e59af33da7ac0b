"""The built wheel ships the JS client, its types and py.typed."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.e2e
def test_wheel_contains_static_client(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "realtime/static/realtime/realtime.js" in names
    assert "realtime/static/realtime/realtime.d.ts" in names
    assert "realtime/py.typed" in names
    assert "realtime/inbox/migrations/0001_initial.py" in names
    assert not any(name.startswith("tests/") for name in names)

"""npm tools the tests check their output with (tsc, the AsyncAPI JSON Schema)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

NPM_PACKAGES = [
    "typescript@7.0.2",
    "@asyncapi/specs@6.11.1",
    # the types collab.d.ts refers to
    "yjs@13.6.33",
    "y-protocols@1.0.7",
]
NPM_DIR = Path(
    os.environ.get("RT_NPM_CACHE", Path.home() / ".cache/realtime-tests/npm")
)


@pytest.fixture(scope="session")
def npm_tools():
    """typescript and @asyncapi/specs installed once into a cache directory."""
    marker = NPM_DIR / ("installed-" + "-".join(NPM_PACKAGES).replace("/", "_"))
    if not marker.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed to check the exports (apt-get install npm)")
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(NPM_DIR),
                "--no-audit",
                "--no-fund",
                "--no-save",
                *NPM_PACKAGES,
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        marker.touch()
    return NPM_DIR / "node_modules"


def tsc_strict(
    npm_tools: Path, source: Path | str, cwd: Path
) -> subprocess.CompletedProcess:
    """Type-check ``source`` (relative to ``cwd``) with tsc --strict, as a browser
    module: what the declarations shipped with realtime.js must pass."""
    return subprocess.run(
        [
            str(npm_tools / ".bin/tsc"),
            "--noEmit",
            "--strict",
            "--module",
            "nodenext",
            "--moduleResolution",
            "nodenext",
            "--target",
            "es2022",
            "--lib",
            "es2022,dom",
            str(source),
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )

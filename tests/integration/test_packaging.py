"""The package can be published: a clean build under a free name, the license, the JS
client for npm with its types, one version everywhere, and a warning when another
distribution installs a top-level ``realtime`` too."""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import realtime
from realtime.checks import DISTRIBUTION, foreign_distributions

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "realtime" / "static" / "realtime"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    # Built from a copy: setuptools writes build/ and *.egg-info into the tree.
    tree = tmp_path_factory.mktemp("tree") / "src"
    shutil.copytree(
        ROOT,
        tree,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            ".nox",
            "node_modules",
            "build",
            "dist",
            "*.egg-info",
            "__pycache__",
            "staticfiles",
        ),
    )
    env = dict(os.environ)
    # Set on some machines; setuptools then warns that it skips byte-compiling.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--sdist",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out),
            str(tree),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out, done.stdout + done.stderr


@pytest.mark.e2e
def test_wheel_contains_static_client(built):
    out, _ = built
    [wheel] = out.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "realtime/static/realtime/realtime.js" in names
    assert "realtime/static/realtime/realtime.d.ts" in names
    assert "realtime/py.typed" in names
    assert "realtime/inbox/migrations/0001_initial.py" in names
    assert not any(name.startswith("tests/") for name in names)


@pytest.mark.e2e
def test_the_build_prints_no_warning(built):
    _, output = built
    warnings = [line for line in output.splitlines() if "warning" in line.lower()]
    assert warnings == []


@pytest.mark.e2e
def test_the_distribution_name_license_and_changelog(built):
    out, _ = built
    [wheel] = out.glob("*.whl")
    archive = zipfile.ZipFile(wheel)
    [metadata] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
    text = archive.read(metadata).decode()
    assert re.search(rf"^Name: {re.escape(DISTRIBUTION)}$", text, re.M)
    assert f"Version: {realtime.__version__}" in text
    assert "BSD-3-Clause" in text
    assert any(n.endswith("LICENSE") and ".dist-info/" in n for n in archive.namelist())
    [sdist] = out.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = [Path(m).name for m in archive.getnames()]
    assert {"LICENSE", "CHANGELOG.md", "README.md"} <= set(members)


def test_one_version_everywhere():
    package = json.loads((STATIC / "package.json").read_text())
    client = re.search(
        r'^export const VERSION = "([^"]+)";',
        (STATIC / "realtime.js").read_text(),
        re.M,
    )
    assert client is not None
    assert package["version"] == client[1] == realtime.__version__
    assert f"## [{realtime.__version__}]" in (ROOT / "CHANGELOG.md").read_text()


@pytest.mark.e2e
def test_the_js_client_packs_for_npm_with_its_types(tmp_path):
    package = json.loads((STATIC / "package.json").read_text())
    assert package["types"] == "./realtime.d.ts"
    assert package["exports"]["."]["types"] == "./realtime.d.ts"
    assert package["license"] == "BSD-3-Clause"
    npm = shutil.which("npm")
    assert npm, "npm is not installed (.ci/run installs it)"
    done = subprocess.run(
        [npm, "pack", "--dry-run", "--json"],
        cwd=STATIC,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "npm_config_cache": str(tmp_path / "npm-cache")},
    )
    assert done.returncode == 0, done.stderr
    [packed] = json.loads(done.stdout)
    assert packed["name"] == package["name"]
    assert {f["path"] for f in packed["files"]} == {
        "package.json",
        "realtime.js",
        "realtime.d.ts",
    }


def write_distribution(site: Path, name: str, *, editable: bool = False) -> None:
    """Metadata of an installed distribution ``name`` whose top-level package is
    ``realtime``, as pip writes it."""
    info = site / f"{name.replace('-', '_')}-2.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 2.0.0\n"
    )
    (info / "top_level.txt").write_text("realtime\n")
    (info / "RECORD").write_text("realtime/__init__.py,,\n")
    if editable:
        (info / "direct_url.json").write_text(
            json.dumps({"url": "file:///src", "dir_info": {"editable": True}})
        )


def test_another_distribution_providing_realtime_warns(tmp_path):
    # The Supabase client is the distribution "realtime", top-level package "realtime".
    write_distribution(tmp_path, "realtime")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]),
    }
    env.pop("PYTEST_CURRENT_TEST", None)
    done = subprocess.run(
        [sys.executable, "-m", "django", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "realtime.W007" in done.stderr
    assert "'realtime': realtime." in done.stderr  # names the other distribution
    assert "pip uninstall realtime" in done.stderr


def test_this_package_and_editable_checkouts_are_not_foreign(tmp_path, monkeypatch):
    write_distribution(tmp_path, "realtime")
    write_distribution(tmp_path, "old-checkout", editable=True)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert foreign_distributions([DISTRIBUTION, "old-checkout", "realtime"]) == {
        "realtime"
    }

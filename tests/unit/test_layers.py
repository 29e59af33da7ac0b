"""The package's architecture is enforced: layers (pyproject.toml, import-linter) and
no import of the package's own modules hidden inside a function."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ROOT

PACKAGE = ROOT / "realtime"

# In-function imports of the package's own modules that must stay where they are,
# each with its reason: (importing module, imported module) -> why. None today.
ALLOWED: dict[tuple[str, str], str] = {}


def lint_imports(root: Path = ROOT) -> subprocess.CompletedProcess:
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert command is not None, "pip install import-linter (in the test extras)"
    return subprocess.run(
        [command, "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_each_layer_imports_only_from_the_layers_below():
    done = lint_imports()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout, done.stdout


def test_the_contracts_have_no_exception_list():
    text = (ROOT / "pyproject.toml").read_text()
    config = text[text.index("[tool.importlinter]") :]
    assert "ignore_imports" not in config
    assert "exhaustive = true" in config


def test_an_upward_import_breaks_the_contract(tmp_path):
    # A copy of the package where a leaf imports the hub: lint-imports must fail.
    shutil.copytree(PACKAGE, tmp_path / "realtime")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    status = tmp_path / "realtime" / "status.py"
    status.write_text(status.read_text() + "\nfrom realtime import hub  # noqa\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0, done.stdout
    assert "realtime.status -> realtime.hub" in done.stdout, done.stdout


def test_a_cycle_inside_a_subpackage_breaks_the_contract(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "realtime")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    base = tmp_path / "realtime" / "backends" / "base.py"
    base.write_text(base.read_text() + "\nfrom realtime.backends import memory\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0, done.stdout
    assert "no import cycles between sibling modules" in done.stdout


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(node: ast.AST, package: str) -> list[str]:
    """The modules an import statement names (for ``from a import b``: ``a.b``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:  # relative: resolve against the importing package
            parts = package.split(".")
            base = parts[: len(parts) - node.level + 1]
            name = ".".join([*base, node.module] if node.module else base)
        else:
            name = node.module or ""
        return [f"{name}.{alias.name}" for alias in node.names]
    return []


def real_module(name: str) -> str:
    """``name`` if it is a module of the package, else the module that holds it."""
    while name and not (
        (ROOT / name.replace(".", "/")).with_suffix(".py").exists()
        or (ROOT / name.replace(".", "/") / "__init__.py").exists()
    ):
        name = name.rpartition(".")[0]
    return name


def function_imports(path: Path, root: Path = ROOT) -> dict[tuple[str, str], int]:
    """(importer, imported module) -> line, for own-package imports in functions."""
    importer = module_name(path, root)
    package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
    found: dict[tuple[str, str], int] = {}

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if in_function:
                for name in imported_modules(child, package):
                    if name.split(".")[0] == "realtime":
                        found[importer, real_module(name)] = child.lineno
            nested = in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            visit(child, nested)

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


def test_no_own_module_is_imported_inside_a_function():
    hidden = {
        key: line
        for path in sorted(PACKAGE.rglob("*.py"))
        for key, line in function_imports(path).items()
        if key not in ALLOWED
    }
    assert not hidden, f"import these at the top (or list them in ALLOWED): {hidden}"


def test_every_allowed_exception_is_still_needed():
    seen = {key for path in PACKAGE.rglob("*.py") for key in function_imports(path)}
    assert set(ALLOWED) <= seen, set(ALLOWED) - seen


@pytest.mark.parametrize(
    "source",
    [
        "def f():\n    from realtime.hub import get_hub\n",
        "async def f():\n    from realtime import hub\n",
        "class C:\n    def m(self):\n        import realtime.hub\n",
        "def f():\n    if True:\n        from .hub import get_hub\n",
        "def f():\n    from . import hub\n",
    ],
)
def test_the_import_check_finds_a_hidden_import(tmp_path, source):
    path = tmp_path / "realtime" / "_probe_for_the_test.py"
    path.parent.mkdir()
    path.write_text(source)
    found = function_imports(path, tmp_path)
    assert ("realtime._probe_for_the_test", "realtime.hub") in found

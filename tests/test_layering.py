"""The core stays GUI-free: importing every core module loads no vtk, pyvista or Qt."""

import json
import subprocess
import sys

CHECK = r"""
import importlib, json, pkgutil, sys
import imssim.core
mods = []
for m in pkgutil.walk_packages(imssim.core.__path__, "imssim.core."):
    importlib.import_module(m.name)
    mods.append(m.name)
# exercise the core too: building is where lazy imports would hide
from imssim.core.model import store
atlas = store.load_builtin()
bad = sorted(k for k in sys.modules if k.split(".")[0] in ("vtk", "vtkmodules", "pyvista", "PySide6", "pyvistaqt", "shiboken6"))
print(json.dumps({"modules": mods, "bad": bad, "structures": len(atlas)}))
"""


def test_core_imports_no_gui_or_vtk():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert "imssim.core.model.atlas" in res["modules"]
    assert len(res["modules"]) >= 5
    assert res["structures"] > 100
    assert res["bad"] == [], f"core pulled in GUI/render modules: {res['bad']}"


def test_cli_entry_does_not_import_qt_for_atlas_commands():
    code = (
        "import sys, io, contextlib\n"
        "from imssim.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    rc = main(['atlas', 'info', '--json'])\n"
        "assert rc == 0\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in ('PySide6', 'pyvistaqt', 'pyvista')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


# -- the layers, statically (import-linter, contracts in pyproject.toml) -----------------
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _lint(root: Path) -> subprocess.CompletedProcess:
    """Run import-linter with the repository's contracts on the package under ``root``."""
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(REPO / 'pyproject.toml')!r}))")
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, env=env,
                          timeout=300)


def test_import_contracts_hold():
    pytest.importorskip("importlinter")
    r = _lint(REPO / "src")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


@pytest.mark.parametrize("module, bad, contract", [
    ("core/training/quiz.py", "import pyvista", "core imports no vtk, pyvista or Qt"),
    ("qt/app.py", "from ..cli import errors", "cli over qt over app over render over core"),
    ("render/scene.py", "from ..app import events", "cli over qt over app over render over core"),
    ("core/model/atlas.py", "from ..engines import needle", "inside core: training over engines over model"),
    ("core/engines/slice.py", "from ..training import quiz", "inside core: training over engines over model"),
])
def test_a_forbidden_import_breaks_the_contracts(tmp_path, module, bad, contract):
    """The contracts really fail: a copy of the package with one forbidden import is refused."""
    pytest.importorskip("importlinter")
    shutil.copytree(REPO / "src" / "imssim", tmp_path / "imssim", ignore=shutil.ignore_patterns("__pycache__"))
    f = tmp_path / "imssim" / module
    text = f.read_text()
    head, sep, rest = text.partition("from __future__ import annotations\n")
    f.write_text(head + sep + f"\n{bad}  # injected by the test\n" + rest)
    r = _lint(tmp_path)
    assert r.returncode != 0, r.stdout[-2000:]
    assert f"{contract} BROKEN" in r.stdout


def test_package_init_files_hold_no_logic():
    """A package's ``__init__.py`` holds its docstring, imports and ``__all__`` only: the code
    lives in named modules (so a reader finds a function where its module says)."""
    import ast

    offenders = []
    for init in sorted((REPO / "src" / "imssim").rglob("__init__.py")):
        for node in ast.parse(init.read_text()).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                continue  # the docstring
            if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__all__"]:
                continue
            if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__version__"]:
                continue
            offenders.append(f"{init.relative_to(REPO)}:{node.lineno} {type(node).__name__}")
    assert not offenders, offenders

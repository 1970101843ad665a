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
from imssim.core import store
atlas = store.load_builtin()
bad = sorted(k for k in sys.modules if k.split(".")[0] in ("vtk", "vtkmodules", "pyvista", "PySide6", "pyvistaqt", "shiboken6"))
print(json.dumps({"modules": mods, "bad": bad, "structures": len(atlas)}))
"""


def test_core_imports_no_gui_or_vtk():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert "imssim.core.atlas" in res["modules"]
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

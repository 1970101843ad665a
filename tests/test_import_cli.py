"""``imssim atlas import|fetch|use|fit-report`` through the real entry point."""

from __future__ import annotations

import json

import pytest

from conftest import shared_dir
from imssim.cli import main


def _vhm_meshes():
    d = shared_dir()
    if d is None or not (d / "atlas-vhm-lowerlimb" / "meshes").is_dir():
        pytest.skip("shared/atlas-vhm-lowerlimb is not beside this checkout (set IMSSIM_SHARED_DIR; CI provides it)")
    return d / "atlas-vhm-lowerlimb" / "meshes"


def test_bad_manifest_is_one_line_error(tmp_path, capsys):
    p = tmp_path / "m.yaml"
    p.write_text("name: a\nattributions: []\nstructures: [{file: a.stl}]\n")
    assert main(["atlas", "import", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("imssim: error:") and "m.yaml" in err and "attributions" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_fetch_import_use_and_fit_report(tmp_path, capsys, atlas):
    from imssim.core import store

    src = _vhm_meshes()
    dest = tmp_path / "dl"
    assert main(["atlas", "fetch", "vhm-lowerlimb", "--mirror", str(src), "--dest", str(dest), "--import"]) == 0
    out = capsys.readouterr().out
    assert "18 files checked" in out and "gluteus_medius_r" in out
    assert main(["atlas", "use", "vhm-lowerlimb"]) == 0
    try:
        assert store.current_atlas_name() == "vhm-lowerlimb"
        assert main(["atlas", "info", "--json"]) == 0
        info = json.loads(capsys.readouterr().out.split("\n", 1)[1])
        assert info["name"] == "vhm-lowerlimb" and info["structures"] == 18
        assert any("CC BY 4.0" in a["licence"] for a in info["attributions"])
    finally:
        assert main(["atlas", "use", "builtin"]) == 0
    capsys.readouterr()
    assert main(["atlas", "fit-report", "vhm-lowerlimb", "--json"]) == 0
    fit = json.loads(capsys.readouterr().out)
    assert fit["structures"]["gluteus_medius_r"]["centroid_distance_mm"] < 30
    assert main(["--atlas", "vhm-lowerlimb", "atlas", "list", "--kind", "bone"]) == 0
    assert "fibula_r" in capsys.readouterr().out
    assert main(["atlas", "fit-report", "nope"]) == 2
    assert main(["atlas", "use", "nope"]) == 2

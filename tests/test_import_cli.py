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
    from imssim.core.model import store

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


def test_zanatomy_folder_import_names_skips_and_aligns(tmp_path, capsys, atlas):
    """A folder of Z-Anatomy objects exported one file each (Blender's own frame: metres,
    Z up), cut from the built-in atlas; unknown objects and groups are skipped and listed."""
    import numpy as np
    import trimesh

    from imssim.core.model import store

    folder = tmp_path / "z-anatomy export"
    folder.mkdir()
    files = {"gluteus_medius_r": "Gluteus medius muscle.r", "piriformis_r": "Piriformis muscle.r",
             "femur_r": "Femur.r", "sacrum": "Sacrum", "vertebra_L3": "Lumbar vertebra (L3)",
             "biceps_femoris_long_head_l": "Long head of biceps femoris.l", "hip_bone_l": "Hip bone.l"}
    for sid, zname in files.items():
        s = atlas.get(sid)
        trimesh.Trimesh((s.vertices + [0.0, 40.0, 900.0]) / 1000.0, s.faces).export(folder / f"{zname}.stl")
    box = trimesh.creation.box(extents=(0.01, 0.01, 0.01))
    box.export(folder / "Deep gluteal muscles.g.stl")  # a group
    box.export(folder / "Sacrotuberous ligament.r.stl")  # not a structure imssim knows
    (folder / "Gluteus medius muscle.r.txt").write_text("a Z-Def text, not a mesh")
    try:
        assert main(["atlas", "import", str(folder), "--profile", "zanatomy", "--name", "za"]) == 0
        out = capsys.readouterr().out
        assert "imported 7 structures" in out and "skipped 3 files" in out  # the .txt is listed too
        assert "Sacrotuberous ligament.r.stl" in out and "group or label" in out
        assert "Gluteus medius muscle.r.txt: not a mesh file" in out
        assert "source frame: m LPS (right-handed; detected from the anatomy" in out
        a = store.load_atlas("za")
        assert set(a.structures) == set(files)
        g = a.get("gluteus_medius_r")
        assert (g.kind, g.side, g.name) == ("muscle", "right", "right gluteus medius")
        assert g.innervation is not None and "L5" in g.innervation.roots
        assert a.get("vertebra_L3").level == "L3" and a.get("sacrum").side == "midline"
        assert a.get("biceps_femoris_long_head_l").side == "left"
        fit = a.meta["fit"]
        # metres -> mm and the shift are recovered; the copies land on the originals
        assert abs(fit["transform"]["scale"] - 1) < 0.01 and fit["rms_mm"] < 2.0
        assert all(d["centroid_distance_mm"] < 1.0 for d in fit["structures"].values())
        assert any("Z-Anatomy" in at.source and at.licence == "CC BY-SA 4.0" for at in a.attributions)
        assert np.allclose(a.get("femur_r").centroid, atlas.get("femur_r").centroid, atol=1.0)
    finally:
        store.imported_path("za").unlink(missing_ok=True)


def test_zanatomy_names():
    import pytest as _pytest

    from imssim.core.model.importer.profiles import zanatomy_identity

    assert zanatomy_identity("Thoracic vertebra (T12).obj").id == "vertebra_T12"
    assert zanatomy_identity("Atlas (C1).stl").id == "vertebra_C1"
    assert zanatomy_identity("Tibialis anterior muscle.l.ply").id == "tibialis_anterior_l"
    assert zanatomy_identity("Psoas major.r.glb").side == "right"
    assert zanatomy_identity("Gluteus_medius_muscle.r.stl").id == "gluteus_medius_r"  # sanitised names
    with _pytest.raises(KeyError, match="group or label"):
        zanatomy_identity("Back muscles.g.stl")
    with _pytest.raises(KeyError, match="does not know"):
        zanatomy_identity("Kidney.l.stl")


def test_zanatomy_folder_with_nothing_it_knows_is_a_one_line_error(tmp_path, capsys):
    import trimesh

    trimesh.creation.box().export(tmp_path / "Kidney.l.stl")
    (tmp_path / "notes.txt").write_text("not a mesh")
    assert main(["atlas", "import", str(tmp_path), "--profile", "zanatomy", "--name", "none"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("imssim: error:") and str(tmp_path) in err and "recognises" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1

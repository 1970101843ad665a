"""Import of the real Visible Human lower-limb meshes (read from ../shared, never copied)."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest

from conftest import shared_dir


def _vhm_dir() -> Path:
    d = shared_dir()
    if d is None or not (d / "atlas-vhm-lowerlimb" / "meshes").is_dir():
        pytest.skip("shared/atlas-vhm-lowerlimb is not beside this checkout (set IMSSIM_SHARED_DIR; CI provides it)")
    return d / "atlas-vhm-lowerlimb"


@pytest.fixture(scope="session")
def vhm(atlas):
    from imssim.core.model.importer import import_atlas

    return import_atlas(_vhm_dir() / "meshes", name="vhm-test", profile="vhm", reference=atlas)


def test_every_file_is_a_canonical_structure_with_innervation(vhm):
    rows = (_vhm_dir() / "index.csv").read_text().splitlines()[1:]
    assert len(vhm) == len(rows) == 18
    for row in rows:
        file, fma, name, kind, side = row.split(",")
        s = next(s for s in vhm if s.meta["file"] == Path(file).name)
        assert s.kind == kind and s.side == side
        if kind == "muscle":
            assert s.muscle and s.innervation and s.innervation.roots, s.id
    gm = vhm.get("right gluteus medius")
    assert gm.innervation.nerve.startswith("superior gluteal") and "L5" in gm.innervation.roots
    assert vhm.get("fibularis_longus_r").muscle == "fibularis longus"  # from "PeroneusLongus"


def test_decimated_and_watertight_flags(vhm):
    import trimesh

    n_closed = 0
    for s in vhm:
        # the source meshes have 2.5k-75k triangles: those over the 4000 target end near it
        c = s.meta["clean"]
        if c["faces_in"] > 4000:
            assert c["decimated"] and 3500 < len(s.faces) <= 4000, s.id
        else:
            assert not c["decimated"] and len(s.faces) == c["faces_in"], s.id
        closed = trimesh.Trimesh(s.vertices, s.faces, process=False).is_watertight
        assert s.meta["watertight"] is closed  # the flag the traversal engine trusts
        if not closed:
            assert "winding-number fallback" in " ".join(s.meta["clean"]["notes"])
        n_closed += closed
        assert s.volume > 0
    assert n_closed >= 15  # decimation may open a mesh (the sacrum here): flagged, not dropped


def test_alignment_puts_gluteus_medius_on_its_counterpart(vhm, atlas):
    fit = vhm.meta["fit"]
    st = fit["structures"]
    # measured 17 mm / Dice 0.42 (see docs/import.md); limits leave headroom, not slack
    assert st["gluteus_medius_r"]["centroid_distance_mm"] < 30
    assert st["gluteus_medius_r"]["dice"] > 0.3
    assert 0.8 < fit["transform"]["scale"] < 1.1
    # before alignment the VHM frame is metres away from the built-in one
    for sid in ("piriformis_r", "tibialis_anterior_r"):
        assert st[sid]["centroid_distance_mm"] < 150 and st[sid]["dice"] > 0.0
    # the imported atlas is an ordinary Atlas: lookups and landmarks work as on the built-in one
    assert vhm.landmark("fibular_head_r").structure == "fibula_r"
    assert vhm.landmark("L4_spinous").description.startswith("carried over")


def test_saved_atlas_loads_by_name(vhm):
    from imssim.core.model import store

    a = store.load_atlas("vhm-test")
    assert set(a.structures) == set(vhm.structures)
    assert a.attributions and "CC BY 4.0" in a.attributions[0].licence
    assert "vhm-test" in store.available_atlases()


def test_hand_written_manifest(tmp_path, atlas):
    from imssim.core.model.importer import import_atlas

    d = _vhm_dir() / "meshes"
    man = tmp_path / "m.yaml"
    man.write_text(f"""
name: hand
attributions:
  - source: Visible Human lower limb
    licence: CC BY 4.0
    attribution: Andreassen et al. 2022
frame: {{units: mm, axes: LAI}}
base: {d}
align: {{method: centroids}}
structures:
  - {{file: VHM_Right_Muscle_GluteusMedius_smooth.stl, id: gluteus_medius_r, name: right gluteus medius,
      kind: muscle, side: right, region: gluteal, muscle: gluteus medius}}
  - {{file: VHM_Right_Muscle_Piriformis_smooth.stl, id: piriformis_r, name: right piriformis, kind: muscle,
      side: right, region: gluteal, innervation: {{nerve: nerve to piriformis, roots: [S1, S2]}}}}
  - {{file: VHM_Left_Bone_Sacrum_smooth.stl, id: sacrum, name: sacrum, kind: bone, side: midline}}
""")
    a = import_atlas(man, reference=atlas, save=False)
    assert a.get("piriformis_r").innervation.roots == ("S1", "S2")
    assert a.get("gluteus medius" if False else "gluteus_medius_r").innervation.source
    assert a.meta["fit"]["structures"]["gluteus_medius_r"]["centroid_distance_mm"] < 60


def test_missing_and_corrupt_files_name_the_file_and_write_nothing(tmp_path, atlas):
    from imssim.core.model import store
    from imssim.core.model.importer import ManifestError, MeshFileError, import_atlas

    bad = tmp_path / "broken.stl"
    bad.write_bytes(b"solid x\nfacet normal 0 0 1\n garbage")
    man = tmp_path / "m.yaml"
    man.write_text("name: broken\nattributions: [{source: s, licence: l, attribution: a}]\n"
                   "structures:\n  - {file: broken.stl, id: b, name: b, kind: bone, side: midline}\n"
                   "  - {file: gone.stl, id: g, name: g, kind: bone, side: midline}\n")
    with pytest.raises(MeshFileError, match="broken.stl"):
        import_atlas(man, reference=atlas)
    assert not store.imported_path("broken").exists()
    man.write_text(man.read_text().replace("broken.stl", "gone2.stl"))
    with pytest.raises(MeshFileError, match="gone2.stl: file not found"):
        import_atlas(man, reference=atlas)
    man.write_text("name: x\nstructures: [{file: a.stl}]\n")
    with pytest.raises(ManifestError, match="attributions"):
        import_atlas(man, reference=atlas)


def test_fetch_through_a_local_http_mirror(tmp_path):
    from imssim.core.model.importer.fetch import fetch_vhm

    root = _vhm_dir() / "meshes"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    th.start()
    try:
        out = fetch_vhm(tmp_path / "dl", mirror=f"http://127.0.0.1:{srv.server_address[1]}",
                        only=["VHM_Right_Muscle_Piriformis_smooth.stl", "VHM_Left_Bone_Coccyx_smooth.stl"])
    finally:
        srv.shutdown()
        srv.server_close()
        th.join(timeout=5)
    assert sorted(p.name for p in out) == ["VHM_Left_Bone_Coccyx_smooth.stl", "VHM_Right_Muscle_Piriformis_smooth.stl"]
    assert all(p.read_bytes() == (root / p.name).read_bytes() for p in out)


def test_fetch_from_a_local_folder_checks_sha256(tmp_path):
    from imssim.core.model.importer.fetch import FetchError, fetch_vhm

    root = _vhm_dir() / "meshes"
    out = fetch_vhm(tmp_path / "a", mirror=str(root), only=["VHM_Right_Muscle_Piriformis_smooth.stl"])
    assert out[0].stat().st_size == (root / out[0].name).stat().st_size
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "VHM_Right_Muscle_Piriformis_smooth.stl").write_bytes(b"not it")
    with pytest.raises(FetchError, match="VHM_Right_Muscle_Piriformis_smooth.stl"):
        fetch_vhm(tmp_path / "b", mirror=str(fake), only=["VHM_Right_Muscle_Piriformis_smooth.stl"])


def test_needle_queries_run_unchanged_on_the_imported_atlas(vhm):
    """The traversal engine takes an imported atlas like the built-in one (no skin here)."""
    from imssim.core.engines.traversal import TissueIndex

    idx = TissueIndex(vhm)
    gm = vhm.get("gluteus_medius_r")
    c = gm.centroid
    # from 150 mm behind the gluteus medius centroid, straight anterior (-Y in LPS)
    hit = idx.snap_to_skin(c + [0, 150.0, 0], [0, -1.0, 0])
    assert hit is not None and not hit.on_skin  # no skin in this atlas: first surface hit
    tr = idx.query(c + [0, 150.0, 0], [0, -1.0, 0], 150.0)
    assert "gluteus_medius_r" in tr.at_tip
    assert "gluteus_medius_r" in tr.layers
    assert idx.structures_at(c) and "gluteus_medius_r" in idx.structures_at(c)
    # lateral to medial into the leg, 40 % of the way from fibular head to malleolus:
    # through fibularis longus onto the fibula (landmarks found on the imported bone)
    fh, lm = vhm.landmark("fibular_head_r").xyz, vhm.landmark("lateral_malleolus_r").xyz
    mid = 0.6 * fh + 0.4 * lm
    tr2 = idx.query(mid + [-80.0, 0, 0], [1.0, 0, 0], 120.0)
    assert tr2.layers[0] == "fibularis_longus_r"
    assert tr2.bone_contact is not None and tr2.bone_contact.structure == "fibula_r"


def test_filled_atlas_runs_every_library_scenario(atlas):
    """Filled with the built-in body, the imported atlas validates every shipped scenario
    and derives the S1 case's targets on the imported piriformis."""
    from imssim.core.model import store
    from imssim.core.model.importer import import_atlas
    from imssim.core.training.scenario import library, load_scenario, validate_file
    from imssim.core.training.scenario.targets import derive_targets

    import_atlas(_vhm_dir() / "meshes", name="vhm-filled", profile="vhm", reference=atlas, fill="builtin")
    a = store.load_atlas("vhm-filled")  # habitus view, like any run
    assert a.get("piriformis_r").meta.get("from") is None  # imported
    assert a.get("vertebra_L5").meta["from"] == "builtin" and "skin" in a
    assert a.landmark("L5_spinous").position == atlas.landmark("L5_spinous").position
    n_clean = 0
    for p in library():
        # exactly the problems the built-in atlas has with it (none once every structure exists)
        errs = {(i.path, i.line) for i in validate_file(p, a) if i.severity == "error"}
        ref = {(i.path, i.line) for i in validate_file(p, atlas) if i.severity == "error"}
        assert errs == ref, (p.name, sorted(errs ^ ref)[:3])
        n_clean += not errs
    assert n_clean >= 3
    sc = load_scenario(next(p for p in library() if p.name.startswith("s1-")), a)
    targets = derive_targets(sc, a)
    ids = {t.structure for t in targets}
    assert {"piriformis_r", "gluteus_maximus_r", "multifidus_S1_r"} <= ids  # imported + filled in (the body has S1 multifidus over the sacrum)
    assert a.get("piriformis_r").meta.get("from") is None

"""Manifest validation, mesh readers (incl. the vtk-free VTK/VTP parser), clean-up, profiles."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from conftest import shared_dir


def _box():
    m = trimesh.creation.icosphere(subdivisions=3, radius=20.0)
    return np.asarray(m.vertices), np.asarray(m.faces)


@pytest.mark.parametrize("fmt", ["ascii", "binary", "appended"])
def test_vtp_roundtrip_ours(tmp_path, fmt):
    from imssim.core.model.importer.readers import read_mesh
    from imssim.core.model.importer.vtkfiles import write_vtp

    v, f = _box()
    write_vtp(tmp_path / "a.vtp", v, f, fmt)
    v2, f2 = read_mesh(tmp_path / "a.vtp")
    assert np.allclose(v2, v, atol=1e-4) and (f2 == f).all()


@pytest.mark.parametrize("binary", [False, True])
def test_vtk_and_vtp_written_by_vtk(tmp_path, binary):
    pv = pytest.importorskip("pyvista")  # tests may use vtk; the reader itself does not
    from imssim.core.model.importer.vtkfiles import read_legacy_vtk, read_vtp

    v, f = _box()
    pd = pv.PolyData.from_regular_faces(v, f)
    pd.save(tmp_path / "a.vtk", binary=binary)
    pd.save(tmp_path / "a.vtp", binary=binary)  # binary: zlib-compressed appended data
    for reader, name in ((read_legacy_vtk, "a.vtk"), (read_vtp, "a.vtp")):
        v2, f2 = reader(tmp_path / name)
        assert np.allclose(v2, v, atol=1e-4) and (f2 == f).all(), name


@pytest.mark.parametrize("header", ["UInt32", "UInt64"])
@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("mode", ["inline", "appended-base64", "appended-raw"])
def test_vtp_every_xml_encoding_vtk_writes(tmp_path, header, compressed, mode):
    """Every data mode of vtk's own XML writer: inline binary (header and data base64-
    encoded separately), appended base64 or raw, with or without zlib, 32/64-bit headers."""
    import vtk

    pv = pytest.importorskip("pyvista")
    from imssim.core.model.importer.vtkfiles import read_vtp

    pd = pv.Sphere(theta_resolution=12, phi_resolution=12)
    w = vtk.vtkXMLPolyDataWriter()
    w.SetInputData(pd)
    w.SetFileName(str(tmp_path / "s.vtp"))
    w.SetHeaderTypeToUInt64() if header == "UInt64" else w.SetHeaderTypeToUInt32()
    if mode == "inline":
        w.SetDataModeToBinary()
    else:
        w.SetDataModeToAppended()
        w.SetEncodeAppendedData(mode == "appended-base64")
    if not compressed:
        w.SetCompressorTypeToNone()
    assert w.Write() == 1
    v, f = read_vtp(tmp_path / "s.vtp")
    assert np.allclose(v, pd.points, atol=1e-5)
    assert (f == pd.regular_faces).all()


def test_trimesh_formats_and_corrupt_file(tmp_path):
    from imssim.core.model.importer.readers import MeshFileError, read_mesh

    v, f = _box()
    m = trimesh.Trimesh(v, f)
    for ext in ("obj", "stl", "ply", "glb"):
        m.export(tmp_path / f"a.{ext}")
        v2, f2 = read_mesh(tmp_path / f"a.{ext}")
        assert abs(trimesh.Trimesh(v2, f2).volume - m.volume) < 1e-3 * m.volume, ext
    (tmp_path / "bad.vtp").write_text("<VTKFile type='PolyData'><oops")
    with pytest.raises(MeshFileError, match="bad.vtp: not a readable VTP mesh"):
        read_mesh(tmp_path / "bad.vtp")
    (tmp_path / "bad.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nend_header\n1 2\n")
    with pytest.raises(MeshFileError, match="bad.ply"):
        read_mesh(tmp_path / "bad.ply")


def test_cleanup_merges_and_drops_bad_faces():
    from imssim.core.model.importer.readers import clean_mesh

    v, f = _box()
    # unshared vertices (as in STL), one duplicate face, one degenerate face
    vv = v[f].reshape(-1, 3)
    ff = np.arange(len(vv)).reshape(-1, 3)
    ff = np.vstack([ff, ff[:1], [[0, 0, 1]]])
    v2, f2, rep = clean_mesh(vv, ff, target_faces=0)
    assert rep.duplicate_faces == 1 and rep.degenerate_faces == 1
    assert len(v2) == len(v) and len(f2) == len(f) and rep.watertight
    v3, f3, rep3 = clean_mesh(v, f, target_faces=300)
    assert rep3.decimated and len(f3) <= 300
    # an open mesh is kept and flagged
    v4, f4, rep4 = clean_mesh(v, f[10:], target_faces=0)
    assert not rep4.watertight and len(f4) == len(f) - 10 and rep4.notes


def test_frame_matrix_maps_vhm_axes_into_lps():
    from imssim.core.model.importer import frame_matrix

    M = frame_matrix("cm", "LAI")
    assert np.allclose(M @ [1, 0, 0], [10, 0, 0])  # +X left stays +X
    assert np.allclose(M @ [0, 1, 0], [0, -10, 0])  # anterior -> -Y (posterior is +Y)
    assert np.allclose(M @ [0, 0, 1], [0, 0, -10])  # inferior -> -Z
    assert np.linalg.det(frame_matrix("mm", "RAS")) > 0 and np.linalg.det(frame_matrix("mm", "LAS")) < 0


@pytest.mark.parametrize("text,field", [
    ("name: a\nstructures: [{file: a.stl, id: a, name: a, kind: bone, side: midline}]\n", "attributions"),
    ("name: a\nattributions: [{source: s, licence: '', attribution: a}]\n"
     "structures: [{file: a.stl, id: a, name: a, kind: bone, side: midline}]\n", "licence"),
    ("name: a\nattributions: [{source: s, licence: l, attribution: a}]\nframe: {axes: LLS}\n"
     "structures: [{file: a.stl, id: a, name: a, kind: bone, side: midline}]\n", "frame.axes"),
    ("name: a\nattributions: [{source: s, licence: l, attribution: a}]\n"
     "structures: [{file: a.stl, id: a, name: a, kind: bone, side: middle}]\n", "structures[0].side"),
    ("name: a\nattributions: [{source: s, licence: l, attribution: a}]\n"
     "structures: [{file: a.docx, id: a, name: a, kind: bone, side: midline}]\n", "structures[0].file"),
    ("name: a\nattributions: [{source: s, licence: l, attribution: a}]\nstructures: [{file: a.stl}]\n", "missing id"),
    ("!!python/object/apply:os.system ['true']\n", "not readable YAML"),
])
def test_manifest_errors_name_file_and_field(tmp_path, text, field):
    from imssim.core.model.importer import ManifestError, load_manifest

    p = tmp_path / "man.yaml"
    p.write_text(text)
    with pytest.raises(ManifestError) as e:
        load_manifest(p)
    assert str(p) in str(e.value) and field in str(e.value)


def test_bodyparts3d_profile_maps_fma_names():
    d = shared_dir()
    if d is None or not (d / "reference" / "bodyparts3d-v4-fma-to-file.csv").is_file():
        pytest.skip("shared/reference/bodyparts3d-v4-fma-to-file.csv is not beside this checkout")
    from imssim.core.model.importer.profiles import bodyparts3d_identity, read_parts_list

    parts = read_parts_list(d / "reference" / "bodyparts3d-v4-fma-to-file.csv")
    by_fma, unknown = {}, []
    for fj in parts:
        try:
            i, fma = bodyparts3d_identity(f"{fj}.obj", parts)
            by_fma[fma] = i
        except KeyError:  # muscles imssim has no facts for yet (e.g. longissimus capitis)
            unknown.append(fj)
    assert len(by_fma) >= 60 and len(unknown) <= 19
    assert by_fma["FMA22330"].id == "gluteus_medius_r" and by_fma["FMA22330"].muscle == "gluteus medius"
    assert by_fma["FMA13075"].id == "vertebra_L4" and by_fma["FMA13075"].level == "L4"
    assert by_fma["FMA45888"].id == "biceps_femoris_long_head_r"
    assert by_fma["FMA22740"].id == "iliocostalis_lumbar_part_r"
    assert by_fma["FMA16586"].id == "hip_bone_r" and by_fma["FMA16586"].kind == "bone"


def test_bodyparts3d_import_end_to_end(tmp_path, atlas):
    """A BodyParts3D-style folder (FJ files + parts list), with files cut from the built-in atlas."""
    from imssim.core.model.importer import import_atlas

    lines = ["name,fma_id,fj_file"]
    for k, (sid, fname) in enumerate([("gluteus_medius_r", "right gluteus medius"), ("sacrum", "sacrum"),
                                      ("femur_r", "right femur"), ("piriformis_r", "right piriformis")]):
        s = atlas.get(sid)
        # BodyParts3D-like frame: metres are not used, but shift it far away and make it cm
        trimesh.Trimesh((s.vertices + [300, -200, 100]) / 10.0, s.faces).export(tmp_path / f"FJ90{k}.obj")
        lines.append(f"{fname},FMA{9000 + k},FJ90{k}")
    (tmp_path / "parts.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "m.yaml").write_text(
        "name: bp\nprofile: bodyparts3d\nattributions: [{source: BodyParts3D, licence: CC BY-SA 2.1 JP, attribution: DBCLS}]\n"
        "frame: {units: cm, axes: LPS}\ndecimate: 0\n"
        "structures: [{file: FJ900.obj}, {file: FJ901.obj}, {file: FJ902.obj}, {file: FJ903.obj}]\n")
    a = import_atlas(tmp_path / "m.yaml", reference=atlas, save=False)
    fit = a.meta["fit"]
    # exact copies: the fit recovers the shift and cm->mm; the RMS left is the point-sampling spacing
    assert fit["rms_mm"] < 2.0 and abs(fit["transform"]["scale"] - 1) < 0.01
    assert all(d["centroid_distance_mm"] < 1.0 for d in fit["structures"].values())
    assert a.get("gluteus_medius_r").meta["fma_id"] == "FMA9000"
    assert fit["structures"]["piriformis_r"]["dice"] > 0.9


def test_docs_manifest_example_validates():
    import re
    from pathlib import Path

    from imssim.core.model.data import safe_yaml
    from imssim.core.model.importer import validate

    text = (Path(__file__).resolve().parents[1] / "docs" / "import.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    man = validate(safe_yaml().load(block), "docs/import.md")
    assert man.frame.axes == "LAI" and len(man.structures) == 3
    assert man.structures[1].innervation.roots == ["S1", "S2"]

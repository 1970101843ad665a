"""Real dataset folders import as they come (issue 20): other bodies and sides, the data
set's own spellings, unknown files skipped and listed, the source frame detected.

Every fixture is made here in tmp_path from the Visible Human files in ../shared (renamed,
re-framed, mirrored copies, plus junk); nothing derived from them is committed.
"""

from __future__ import annotations

import numpy as np
import pytest

from imssim.core.model.importer import ManifestError, import_atlas
from imssim.core.model.importer.profiles import vhm_identity

#: a subset of the shared files (pelvis, thigh, leg): enough to tell the frame, quick to import
SUBSET = ["VHM_Left_Bone_Sacrum_smooth.stl", "VHM_Right_Bone_Fibula_smooth.stl",
          "VHM_Right_Muscle_GluteusMedius_smooth.stl", "VHM_Right_Muscle_GluteusMaximus_smooth.stl",
          "VHM_Right_Muscle_TensorFasciaeLatae_smooth.stl", "VHM_Right_Muscle_BicepsFemorisLong_smooth.stl",
          "VHM_Right_Muscle_Semitendinosus_smooth.stl", "VHM_Right_Muscle_TibialisAnterior_smooth.stl",
          "VHM_Right_Muscle_GastrocnemiusMedial_smooth.stl"]

#: every mesh file name of the upstream data set's male body, both sides (the folder
#: listing of data/VHM_surfaces/Right|Left in ingvilddevold/muscle-growth), with its spellings
UPSTREAM_MUSCLES = (
    "AdductorBrevis AdductorLongus AdductorMagnus BicepsFemorisLong BicepsFemorisLongus BicepsFemorisShort "
    "ExtensorDigitorumLongus ExtensorHallucisLongus ExtensorHallicusLongus FlexorDigitorumLongus "
    "FlexorHallucisLongus FlexorHallicusLongus GastrocnemiusLateral GastrocnemiusMedial GluteusMaximus "
    "GluteusMedius GluteusMinimus Gracilis Illiacus InferiorGemellus ObturatorExternus ObturatorInternus "
    "Pectineus PeroneusLongus Piriformis Plantaris Popliteus PsoasMajor QuadratusFemoris QuadratisFemoris "
    "RectusFemoris Sartorius Semimembranosus Semitendinosus Semitendonosus Soleus SuperiorGemellus "
    "TensorFasciaeLatae TibialisAnterior TibialisPosterior VastusIntermedius VastusLateralis VastusMedialis").split()
UPSTREAM_BONES = ("Calcaneous Cuboid Fibula IntermediateCuneiform LateralCuneiform MedialCuneiform Navicular "
                  "Patella Phalanges Talus Femur Tibia Pelvis").split()
UPSTREAM_SKIPPED = ["Cartilage_FemurDistal", "Cartilage_FemurHead", "Cartilage_Patella", "Cartilage_PelvisAcetabulum",
                    "Cartilage_Talus", "Cartilage_TibiaDistal", "Cartilage_TibiaLateral", "Cartilage_TibialMedial",
                    "Ligament_ACL", "Ligament_LCL", "Ligament_MCL", "Ligament_PCL"]


def _src(shared):
    return shared / "atlas-vhm-lowerlimb" / "meshes"


def _write(path, v, f):
    import trimesh

    trimesh.Trimesh(v, f, process=False).export(str(path))


def _copy(shared, dest, files=SUBSET, rename=lambda n: n, xform=None, mirror=False):
    """Copies of shared files under new names, their vertices mapped by ``xform``."""
    import trimesh

    dest.mkdir(parents=True, exist_ok=True)
    for n in files:
        m = trimesh.load(str(_src(shared) / n), force="mesh", process=False)
        v, f = np.asarray(m.vertices, float), np.asarray(m.faces)
        if xform is not None:
            v = xform(v)
        if mirror:
            f = f[:, ::-1]
        _write(dest / rename(n), v, f)
    return dest


SACRUM_X = 348.9  # the Visible Human Male's midline, source x (mm)


def _left_side(n: str) -> str:
    """The right side's file name as the left side's (with the left side's spellings)."""
    return (n.replace("_Right_", "_Left_").replace("BicepsFemorisLong_", "BicepsFemorisLongus_")
            .replace("Semitendinosus", "Semitendonosus"))


# ---- names -------------------------------------------------------------------------


def test_every_upstream_muscle_and_bone_is_recognised_both_bodies_both_sides():
    for body in ("VHM", "VHF"):
        for side in ("Right", "Left"):
            for m in UPSTREAM_MUSCLES:
                ident = vhm_identity(f"{body}_{side}_Muscle_{m}_smooth.stl")
                assert ident.kind == "muscle" and ident.side == side.lower() and ident.muscle, m
                from imssim.core.model.innervation import lookup

                inn = lookup(ident.muscle if ident.muscle != "gemelli" else ident.name.split(" ", 1)[1])
                assert inn.roots and inn.sources, m
            for b in UPSTREAM_BONES:
                assert vhm_identity(f"{body}_{side}_Bone_{b}_smooth.stl").kind == "bone", b
            for k in UPSTREAM_SKIPPED:
                with pytest.raises(KeyError, match="not modelled"):
                    vhm_identity(f"{body}_{side}_{k}_smooth.stl")


@pytest.mark.parametrize("spelled, canonical", [
    ("BicepsFemorisLongus", "biceps_femoris_long_head"), ("ExtensorHallicusLongus", "extensor_hallucis_longus"),
    ("FlexorHallicusLongus", "flexor_hallucis_longus"), ("Illiacus", "iliacus"),
    ("Semitendonosus", "semitendinosus"), ("QuadratisFemoris", "quadratus_femoris"),
    ("PeroneusLongus", "fibularis_longus"), ("GastrocnemiusLateral", "gastrocnemius_lateral_head"),
])
def test_alias_table_reads_the_data_sets_spellings(spelled, canonical):
    assert vhm_identity(f"VHM_Left_Muscle_{spelled}_smooth.stl").id == canonical + "_l"
    assert vhm_identity(f"VHF_Right_Muscle_{spelled}_smooth.stl").id == canonical + "_r"


def test_new_muscles_have_cited_innervation():
    from imssim.core.model.innervation import lookup

    want = {"pectineus": ("femoral", "L2"), "popliteus": ("tibial", "L5"), "plantaris": ("tibial", "S1"),
            "superior gemellus": ("nerve to obturator internus", "S1"),
            "inferior gemellus": ("nerve to quadratus femoris", "L5"), "obturator externus": ("obturator", "L3")}
    for m, (nerve, root) in want.items():
        f = lookup(m)
        assert f.nerve.startswith(nerve) and root in f.roots and any("Gray" in s for s in f.sources), m
    # the built-in body has each gemellus as its own structure: they align by id
    assert vhm_identity("VHM_Right_Muscle_SuperiorGemellus_smooth.stl").id == "gemellus_superior_r"


# ---- folders -----------------------------------------------------------------------


def test_left_side_folder_imports_every_muscle(shared, tmp_path, atlas):
    """The right side mirrored onto the left (about the sacrum) and named as the left side is."""
    def mirror(v):
        v = v.copy()
        v[:, 0] = 2 * SACRUM_X - v[:, 0]
        return v

    folder = _copy(shared, tmp_path / "left", rename=_left_side, xform=mirror, mirror=True)
    a = import_atlas(folder, profile="vhm", name="vhm-left", reference=atlas, save=False)
    muscles = [s for s in a if s.kind == "muscle"]
    assert len(a.structures) == len(SUBSET) and a.meta["skipped_files"] == []
    assert {s.id for s in muscles} >= {"biceps_femoris_long_head_l", "semitendinosus_l", "gluteus_medius_l"}
    assert all(s.side == "left" and s.innervation and s.innervation.roots for s in muscles)
    fr = a.meta["frame"]
    assert (fr["axes"], fr["units"], fr["how"]) == ("LAI", "mm", "detected") and fr["confidence"] >= 0.9
    # landed on the left: lateral of the midline on +X (imssim's left), right way up
    assert a.structures["gluteus_medius_l"].centroid[0] > 40
    assert a.structures["sacrum"].centroid[2] > a.structures["fibula_l"].centroid[2] + 300
    assert a.meta["fit"]["transform"]["rotation_deg"] < 30


def test_female_named_folder_in_ras_lands_right_way_round(shared, tmp_path, atlas):
    """VHM files re-framed to right-anterior-superior and named VHF_ (the female body's frame)."""
    def to_ras(v):  # source LAI -> RAS: x -> -x, z -> -z (a half turn, no mirror)
        return v * np.array([-1.0, 1.0, -1.0])

    folder = _copy(shared, tmp_path / "vhf", rename=lambda n: n.replace("VHM_", "VHF_"), xform=to_ras)
    a = import_atlas(folder, profile="vhm", name="vhf", reference=atlas, save=False)
    fr = a.meta["frame"]
    assert (fr["axes"], fr["how"], fr["handedness"]) == ("RAS", "detected", "right")
    assert "agrees" in fr["note"]
    assert all(s.innervation for s in a if s.kind == "muscle")
    assert a.meta["fit"]["transform"]["rotation_deg"] < 30  # no 180 deg turn by the registration
    gm = a.structures["gluteus_medius_r"]
    assert gm.centroid[0] < -40  # right side is -X in LPS
    assert a.structures["tibialis_anterior_r"].centroid[1] < a.structures["gastrocnemius_medial_head_r"].centroid[1]


def test_detection_overrides_a_profiles_documented_frame_and_sees_a_mirror(shared, tmp_path, atlas):
    # VHF_-named files left in the male's LAI frame: the anatomy wins over the documented RAS
    folder = _copy(shared, tmp_path / "vhf-lai", rename=lambda n: n.replace("VHM_", "VHF_"))
    a = import_atlas(folder, profile="vhm", name="vhf-lai", reference=atlas, save=False)
    assert a.meta["frame"]["axes"] == "LAI" and "overrides" in a.meta["frame"]["note"]
    # a mirrored source frame (x flipped without renaming the side) is detected as left-handed
    from imssim.core.model.importer.frame import detect_frame

    ids = {n: vhm_identity(n) for n in SUBSET}
    items = []
    import trimesh

    for n, ident in ids.items():
        v = np.asarray(trimesh.load(str(_src(shared) / n), force="mesh").vertices)
        items.append((ident.match or ident.id, ident.side, v.mean(0) * np.array([-1.0, 1, 1])))
    d = detect_frame(items, atlas)
    assert d.axes == "RAI" and d.handedness == "left" and d.sure


def test_cannot_tell_refuses_and_a_contradicted_statement_refuses(shared, tmp_path, atlas):
    # three structures and no profile to fall back on: the frame cannot be told, say so
    folder = _copy(shared, tmp_path / "few", files=SUBSET[:3])
    man = tmp_path / "few.yaml"
    man.write_text(
        "name: few\nattributions: [{source: s, licence: CC BY 4.0, attribution: a}]\n"
        f"base: {folder}\nframe: {{units: auto, axes: auto}}\nstructures:\n"
        f"  - {{file: {SUBSET[0]}, id: sacrum, name: sacrum, kind: bone, side: midline}}\n"
        f"  - {{file: {SUBSET[1]}, id: fibula_r, name: right fibula, kind: bone, side: right}}\n"
        f"  - {{file: {SUBSET[2]}, id: gluteus_medius_r, name: right gluteus medius, kind: muscle, side: right}}\n")
    with pytest.raises(ManifestError, match="cannot tell the source frame") as e:
        import_atlas(man, reference=atlas, save=False)
    assert "\n" not in str(e.value) and "state frame.units and frame.axes" in str(e.value)
    # a frame stated wrongly (LPS for the LAI files) is refused, with what the anatomy says
    full = _copy(shared, tmp_path / "stated")
    man2 = tmp_path / "stated.yaml"
    man2.write_text("name: stated\nattributions: [{source: s, licence: CC BY 4.0, attribution: a}]\n"
                    f"base: {full}\nprofile: vhm\nframe: {{units: mm, axes: LPS}}\nstructures:\n"
                    + "".join(f"  - file: {n}\n" for n in SUBSET))
    with pytest.raises(ManifestError, match=r"stated as mm LPS, but the anatomy says mm LAI"):
        import_atlas(man2, reference=atlas, save=False)


def test_folder_with_cartilage_ligaments_and_junk_via_cli(shared, tmp_path, capsys, atlas):
    """The whole shared folder plus cartilage, ligament and junk files: the CLI imports the
    18 structures, lists every skipped file and prints the detected frame."""
    from imssim.cli import main

    folder = _copy(shared, tmp_path / "junk", files=sorted(p.name for p in _src(shared).glob("*.stl")))
    fib = _src(shared) / "VHM_Right_Bone_Fibula_smooth.stl"
    extra = ["VHM_Right_Cartilage_FemurHead_smooth.stl", "VHM_Right_Cartilage_TibialMedial_smooth.stl",
             "VHM_Right_Ligament_ACL_smooth.stl", "VHM_Right_Muscle_Unknownus_smooth.stl", "scan_0001.stl"]
    for n in extra:
        (folder / n).write_bytes(fib.read_bytes())
    (folder / "notes.txt").write_text("junk")
    (folder / ".DS_Store").write_bytes(b"\0\1")
    assert main(["atlas", "import", str(folder), "--profile", "vhm", "--name", "vhm-junk"]) == 0
    out = capsys.readouterr().out
    assert "imported 18 structures" in out
    assert "source frame: mm LAI (right-handed; detected from the anatomy, sure 1.00)" in out
    assert "superior/inferior: superior is source -Z" in out
    assert "skipped 7 files" in out
    for n in extra + ["notes.txt", ".DS_Store"]:
        assert n in out
    assert "cartilage is not modelled" in out and "ligaments are not modelled" in out
    assert "no innervation facts for the muscle 'unknownus'" in out
    from imssim.core.model import store

    a = store.load_atlas("vhm-junk")
    assert len(a.meta["skipped_files"]) == 7
    assert all(s.innervation for s in a if s.kind == "muscle") and len([s for s in a if s.kind == "muscle"]) == 15


def _error(err: str) -> str:
    """The error of a failed command (progress lines may come before it on stderr): one line."""
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("building atlas:")]
    assert len(lines) == 1 and lines[0].startswith("imssim: error:"), err
    return lines[0]


def test_corrupt_stl_and_empty_folder_are_one_line_errors(shared, tmp_path, capsys):
    from imssim.cli import main

    folder = _copy(shared, tmp_path / "corrupt", files=SUBSET[:5])
    bad = folder / "VHM_Right_Muscle_Soleus_smooth.stl"
    bad.write_bytes(b"solid x\nfacet normal 0 0 1\n outer loop\n vertex 1 2\nendsolid\n" + b"\x00" * 50)
    assert main(["atlas", "import", str(folder), "--profile", "vhm", "--name", "corrupt"]) == 2
    err = _error(capsys.readouterr().err)
    assert str(bad) in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["atlas", "import", str(empty), "--profile", "vhm", "--name", "empty"]) == 2
    err = _error(capsys.readouterr().err)
    assert str(empty) in err and "empty folder" in err
    # a folder of nothing usable names the folder and one reason
    (tmp_path / "junkonly").mkdir()
    (tmp_path / "junkonly" / "VHM_Right_Ligament_ACL_smooth.stl").write_bytes(bad.read_bytes())
    assert main(["atlas", "import", str(tmp_path / "junkonly"), "--profile", "vhm", "--name", "j"]) == 2
    err = _error(capsys.readouterr().err)
    assert "nothing to import" in err and "ligaments are not modelled" in err


def test_bodyparts3d_folder_as_it_comes_names_from_file_names_rest_listed(shared):
    """The shared BodyParts3D set (``FJ<n>_BP<n>_FMA<id>_<Name>.obj``, no parts list): files
    carry their names; the ones imssim does not know are skipped and listed, not an error."""
    from imssim.core.model.importer import manifest_for_folder
    from imssim.core.model.importer.profiles import bodyparts3d_identity

    skipped: list = []
    man = manifest_for_folder(shared / "atlas-bodyparts3d", "bodyparts3d", "bp", skipped)
    files = {s.file for s in man.structures}
    assert "bones/FJ103_BP4368_FMA24481_Left fibula.obj" in files and len(files) > 150
    assert bodyparts3d_identity("FJ103_BP4368_FMA24481_Left fibula.obj", None)[0].id == "fibula_l"
    reasons = dict(skipped)
    assert reasons["SOURCE.md"] == "not a mesh file"
    assert "does not know 'Sphenoid bone'" in reasons["bones/FJ119_BP4151_FMA52736_Sphenoid bone.obj"]
    assert "no FMA name" in reasons["muscles/grp1.obj"]
    assert len(files) + len(skipped) == sum(1 for p in (shared / "atlas-bodyparts3d").rglob("*") if p.is_file())


def _centroids(shared):
    import trimesh

    out = {}
    for p in sorted(_src(shared).glob("*.stl")):
        i = vhm_identity(p.name)
        out[p.name] = (i.match or i.id, i.side, np.asarray(trimesh.load(str(p), force="mesh").vertices).mean(0))
    return out


@pytest.mark.parametrize("label, keep, xform, want", [
    ("all, mm LAI", None, lambda c: c, ("LAI", "mm")),
    ("no midline bone", "Right", lambda c: c, ("LAI", "mm")),
    ("in cm", None, lambda c: c / 10, ("LAI", "cm")),
    ("in m, RAS", None, lambda c: c * np.array([-1.0, 1, -1]) / 1000, ("RAS", "m")),
    ("axes permuted (x<->z)", None, lambda c: c[[2, 1, 0]], ("IAL", "mm")),
])
def test_detect_frame_axes_units_and_handedness(shared, atlas, label, keep, xform, want):
    from imssim.core.model.importer.frame import detect_frame, handedness

    items = [(m, s, xform(c)) for n, (m, s, c) in _centroids(shared).items() if keep is None or keep in n]
    d = detect_frame(items, atlas)
    assert d.sure and (d.axes, d.units) == want, (label, d.evidence)
    assert d.handedness == handedness(want[0])
    assert handedness("LAI") == "right" and handedness("IAL") == "left"


def test_detect_frame_is_unsure_on_a_lone_leg(shared, atlas):
    """Six leg structures only: the margins are small, so the detection may or may not be sure
    (on the myo-sim body it was not; on the BodyParts3D body, whose leg muscles are real
    shapes, it is), but where it is sure it must be right (an import otherwise uses the
    documented frame or refuses)."""
    from imssim.core.model.importer.frame import detect_frame

    legs = ("Fibula", "Tibialis", "Peroneus", "Gastro", "Soleus")
    d = detect_frame([v for n, v in _centroids(shared).items() if any(k in n for k in legs)], atlas)
    assert d.axes == "LAI" or not d.sure

"""Profiles for known datasets: map their file names or FMA names to imssim's structures.

A profile fills in what a manifest entry leaves out (id, name, kind, side, muscle) and
gives the dataset's frame and attribution defaults.

* ``vhm``: the Visible Human lower-limb surfaces (Andreassen et al. 2022), file names
  ``VHM_<Side>_<Bone|Muscle>_<CamelName>_smooth.stl``; frame mm, +X left, +Y anterior,
  +Z inferior (``LAI``).
* ``zanatomy``: meshes exported from Z-Anatomy's Blender file, one file per object named
  after it: ``Gluteus medius muscle.r.stl``, ``Femur.l.stl``, ``Lumbar vertebra (L3).stl``
  (``.r``/``.l`` is the side; ``.g`` groups and other suffixes are not structures). Names
  are BodyParts3D/FMA English names, resolved by the same rules as ``bodyparts3d``; files
  it does not know (ligaments, vessels...) are skipped and listed. Frame: Blender's own,
  metres, +X left, +Y posterior, +Z up (``LPS``), as an STL or PLY export without axis
  conversion writes it; for Y-up exports (glTF, OBJ defaults) give a manifest with frame
  axes ``LSA``.
* ``bodyparts3d``: BodyParts3D files ``FJxxxx.obj``. Its parts list (a table of FMA id,
  English name and FJ file, as shipped with the data set) gives each file's FMA name; the
  rules in ``meshes/bodyparts3d_names.yaml`` turn FMA names into imssim ids.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..data import meshes_dir, read_yaml


@dataclass(frozen=True)
class Identity:
    """What a file is, in imssim's terms."""

    id: str
    name: str
    kind: str
    side: str
    muscle: str | None = None
    level: str | None = None
    region: str | None = None


def _canonical_id(key: str, side: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_")
    return base + {"right": "_r", "left": "_l"}.get(side, "")


def _human_name(key: str, side: str) -> str:
    return key if side == "midline" else f"{side} {key}"


def _muscle_identity(key: str, side: str) -> Identity:
    from ..innervation import lookup

    facts = lookup(key)  # raises KeyError for unknown muscles
    return Identity(_canonical_id(facts.key, side), _human_name(facts.key, side), "muscle", side,
                    muscle=facts.canonical, region=facts.region or None)


@lru_cache(maxsize=None)
def _table() -> dict:
    return read_yaml(meshes_dir() / "bodyparts3d_names.yaml")


# ---- Visible Human lower limb ----------------------------------------------------
VHM_FRAME = {"units": "mm", "axes": "LAI"}
VHM_ATTRIBUTION = {
    "source": "Visible Human Male lower-limb surfaces (University of Denver, Center for Orthopaedic Biomechanics)",
    "licence": "CC BY 4.0",
    "attribution": ("Andreassen TE, Hume DR, Hamilton LD, Walker KE, Higinbotham SE, Shelburne KB. "
                    "Three-dimensional lower extremity musculoskeletal geometry of the Visible Human Female "
                    "and Male. Sci Data 2022, doi:10.1038/s41597-022-01905-2; dataset doi:10.56902/COB.vh.2022.0. "
                    "Derived from the NLM Visible Human Project. Changed: decimated, aligned to imssim's frame."),
    "url": "https://doi.org/10.56902/COB.vh.2022.0",
}
_VHM_RE = re.compile(r"^VHM_(Right|Left)_(Bone|Muscle)_([A-Za-z]+?)(?:_smooth)?\.(stl|obj|ply|vtp|vtk)$", re.I)


def _split_camel(s: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", s).lower()


def vhm_identity(filename: str) -> Identity:
    """Identity of a Visible Human surface file from its name (KeyError if not recognised)."""
    m = _VHM_RE.match(Path(filename).name)
    if not m:
        raise KeyError(f"{filename}: not a Visible Human surface file name (VHM_<Side>_<Bone|Muscle>_<Name>_smooth.stl)")
    side, kind, camel = m.group(1).lower(), m.group(2).lower(), m.group(3)
    words = _split_camel(camel)
    vhm = _table()["vhm_names"]
    words = vhm.get(words, words)
    if kind == "bone":
        if words in _table()["midline_bones"]:
            return Identity(_canonical_id(words, "midline"), words, "bone", "midline", region="pelvis")
        return Identity(_canonical_id(words, side), _human_name(words, side), "bone", side)
    return _muscle_identity(words, side)


# ---- BodyParts3D ------------------------------------------------------------------
BODYPARTS3D_FRAME = {"units": "mm", "axes": "LPS"}
BODYPARTS3D_ATTRIBUTION = {
    "source": "BodyParts3D, (c) The Database Center for Life Science",
    "licence": "CC BY-SA 2.1 JP",
    "attribution": "BodyParts3D, (c) The Database Center for Life Science licensed under CC Attribution-Share Alike 2.1 Japan.",
    "url": "https://lifesciencedb.jp/bp3d/",
}

_ORD = {w: i + 1 for i, w in enumerate(
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth".split())}


def fma_name_identity(name: str) -> Identity:
    """Identity for an FMA English name such as 'right gluteus medius' or 'fourth lumbar vertebra'."""
    t = _table()
    n = " ".join(name.lower().replace(" muscle", "").split())
    n = t["fma_synonyms"].get(n, n)
    if n in t["special"]:
        e = t["special"][n]
        return Identity(e["id"], e.get("name", n), e["kind"], e.get("side", "midline"), level=e.get("level"),
                        region=e.get("region"))
    m = re.fullmatch(r"(\w+) (cervical|thoracic|lumbar) vertebra", n)
    if m and m.group(1) in _ORD:
        lvl = {"cervical": "C", "thoracic": "T", "lumbar": "L"}[m.group(2)] + str(_ORD[m.group(1)])
        return Identity(f"vertebra_{lvl}", f"{lvl} vertebra", "bone", "midline", level=lvl, region="spine")
    if n in t["midline_bones"]:
        return Identity(_canonical_id(n, "midline"), n, "bone", "midline")
    side = "midline"
    m = re.search(r"\b(right|left)\b", n)
    if m:
        side = m.group(1)
        n = " ".join((n[: m.start()] + n[m.end():]).split())
    # "long head of biceps femoris" -> "biceps femoris (long head)"; "descending part of trapezius" likewise
    m = re.fullmatch(r"(.+?) (head|part) of (.+)", n)
    if m:
        n = f"{m.group(3)} ({m.group(1)} {m.group(2)})"
    if n in t["paired_bones"]:
        return Identity(_canonical_id(n, side), _human_name(n, side), "bone", side)
    if re.fullmatch(r"\w+ rib", n):
        return Identity(_canonical_id(n, side), _human_name(n, side), "bone", side, region="thoracic")
    n = t["fma_synonyms"].get(n, n)
    try:
        return _muscle_identity(n, side)
    except KeyError:
        m = re.fullmatch(r"(.+) \((.+) (?:part|head)\)", n)
        if not m:
            raise
        whole = _muscle_identity(m.group(1), side)  # a part of a muscle imssim knows whole
        return Identity(_canonical_id(n, side), _human_name(n, side), "muscle", side, muscle=whole.muscle,
                        region=whole.region)


def read_parts_list(path: str | Path) -> dict[str, tuple[str, str]]:
    """FJ file id -> (FMA id, FMA name) from a BodyParts3D parts list.

    Accepts the data set's tab-separated ``*_element_parts.txt`` (concept id, representation
    id, English name, element file id) or a CSV with columns name, fma_id, fj_file.
    """
    path = Path(path)
    out: dict[str, tuple[str, str]] = {}
    text = path.read_text(encoding="utf-8", errors="replace")
    if "\t" in text.splitlines()[0]:
        for row in csv.reader(text.splitlines()[1:], delimiter="\t"):
            if len(row) >= 4:
                out[row[3].strip()] = (row[0].strip(), row[2].strip())
    else:
        for row in csv.DictReader(text.splitlines()):
            out[row["fj_file"].strip()] = (row["fma_id"].strip(), row["name"].strip())
    return out


def bodyparts3d_identity(filename: str, parts: dict[str, tuple[str, str]]) -> tuple[Identity, str]:
    stem = Path(filename).stem
    if stem not in parts:
        raise KeyError(f"{filename}: {stem} is not in the BodyParts3D parts list")
    fma, name = parts[stem]
    return fma_name_identity(name), fma


# ---- Z-Anatomy ----------------------------------------------------------------------
ZANATOMY_FRAME = {"units": "m", "axes": "LPS"}
ZANATOMY_ATTRIBUTION = {
    "source": "Z-Anatomy (Gauthier Kervyn and contributors), based on BodyParts3D",
    "licence": "CC BY-SA 4.0",
    "attribution": ("Z-Anatomy, https://www.z-anatomy.com, licensed CC BY-SA 4.0; based on BodyParts3D, "
                    "(c) The Database Center for Life Science, licensed CC BY-SA 2.1 Japan. "
                    "Changed: decimated, aligned to imssim's frame."),
    "url": "https://github.com/Z-Anatomy/Models-of-human-anatomy",
}
MESH_SUFFIXES = (".stl", ".obj", ".ply", ".off", ".glb", ".gltf", ".vtp", ".vtk")
_ZA_SIDES = {"r": "right", "l": "left"}
_ZA_VERTEBRA = re.compile(r"(?:(?:cervical|thoracic|lumbar) vertebra|atlas|axis) \(([ctl])(\d{1,2})\)")


def zanatomy_identity(filename: str) -> Identity:
    """Identity of a Z-Anatomy object exported to a file named after it (KeyError if unknown)."""
    name = Path(filename).name
    stem = Path(name).stem if Path(name).suffix.lower() in MESH_SUFFIXES else name
    side = None
    m = re.fullmatch(r"(.+)\.([A-Za-z]{1,2})", stem)
    if m:
        if m.group(2).lower() not in _ZA_SIDES:
            raise KeyError(f"{filename}: a Z-Anatomy group or label ('.{m.group(2)}'), not a structure")
        stem, side = m.group(1), _ZA_SIDES[m.group(2).lower()]
    n = " ".join(stem.replace("_", " ").lower().split())
    v = _ZA_VERTEBRA.fullmatch(n)
    if v:
        lvl = v.group(1).upper() + str(int(v.group(2)))
        return Identity(f"vertebra_{lvl}", f"{lvl} vertebra", "bone", "midline", level=lvl, region="spine")
    try:
        return fma_name_identity(f"{side} {n}" if side else n)
    except KeyError:
        raise KeyError(f"{filename}: imssim does not know {n!r}") from None


#: per profile: the source frame, the attribution, which files of a folder to read, and
#: ``identify`` (file name -> Identity, KeyError if unknown) where names alone say what a
#: file is (bodyparts3d needs its parts list); ``skip_unknown``: a folder's unknown files
#: are skipped and listed rather than an error
PROFILES = {
    "vhm": {"frame": VHM_FRAME, "attribution": VHM_ATTRIBUTION, "glob": "VHM_*", "identify": vhm_identity},
    "bodyparts3d": {"frame": BODYPARTS3D_FRAME, "attribution": BODYPARTS3D_ATTRIBUTION, "glob": "FJ*.obj"},
    # every mesh file; those it cannot name are skipped (and listed) when a folder is read
    "zanatomy": {"frame": ZANATOMY_FRAME, "attribution": ZANATOMY_ATTRIBUTION, "glob": "*",
                 "identify": zanatomy_identity, "skip_unknown": True},
}

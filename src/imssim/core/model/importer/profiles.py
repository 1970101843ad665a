"""Profiles for known datasets: map their file names or FMA names to imssim's structures.

A profile fills in what a manifest entry leaves out (id, name, kind, side, muscle) and
gives the dataset's frame and attribution defaults.

* ``vhm``: the Visible Human lower-limb surfaces (Andreassen et al. 2022), either body
  and either side: ``VH<M|F>_<Right|Left>_<Bone|Muscle>_<CamelName>_smooth.stl``, with the
  data set's own misspellings read through an alias table; cartilage and ligament files
  are skipped. Frame: the male's files are mm ``LAI``, the female's mm ``RAS``; an import
  checks (or, unsure, keeps) that by :mod:`.frame` detection.
* ``zanatomy``: meshes exported from Z-Anatomy's Blender file, one file per object named
  after it: ``Gluteus medius muscle.r.stl``, ``Femur.l.stl``, ``Lumbar vertebra (L3).stl``
  (``.r``/``.l`` is the side; ``.g`` groups and other suffixes are not structures). Names
  are BodyParts3D/FMA English names, resolved by the same rules as ``bodyparts3d``; files
  it does not know (ligaments, vessels...) are skipped and listed. Frame: Blender's own,
  metres, +X left, +Y posterior, +Z up (``LPS``), as an STL or PLY export without axis
  conversion writes it; for Y-up exports (glTF, OBJ defaults) give a manifest with frame
  axes ``LSA``.
* ``bodyparts3d``: BodyParts3D files ``FJxxxx.obj``. Its parts list (a table of FMA id,
  English name and FJ file, as shipped with the data set) gives each file's FMA name, or
  the file name carries it (``FJ103_BP4368_FMA24481_Left fibula.obj``); the rules in
  ``meshes/bodyparts3d_names.yaml`` turn FMA names into imssim ids.
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
    match: str | None = None  # the built-in structure to align with, when its id differs


def _canonical_id(key: str, side: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_")
    return base + {"right": "_r", "left": "_l"}.get(side, "")


def _human_name(key: str, side: str) -> str:
    return key if side == "midline" else f"{side} {key}"


def _muscle_identity(key: str, side: str) -> Identity:
    from ..innervation import lookup

    from ..innervation import all_muscles

    facts = lookup(key)  # raises KeyError for unknown muscles
    # a part whose whole muscle imssim models as one (superior gemellus -> gemelli) aligns with it
    match = (_canonical_id(facts.canonical, side)
             if facts.canonical != facts.key and facts.canonical in all_muscles() else None)
    return Identity(_canonical_id(facts.key, side), _human_name(facts.key, side), "muscle", side,
                    muscle=facts.canonical, region=facts.region or None, match=match)


@lru_cache(maxsize=None)
def _table() -> dict:
    return read_yaml(meshes_dir() / "bodyparts3d_names.yaml")


# ---- Visible Human lower limb ----------------------------------------------------
#: the frames the data set's two bodies come in (measured from the meshes; see docs/import.md):
#: the male's files are mm, +X left, +Y anterior, +Z inferior; the female's mm, RAS
VH_FRAMES = {"VHM": {"units": "mm", "axes": "LAI"}, "VHF": {"units": "mm", "axes": "RAS"}}
VHM_FRAME = VH_FRAMES["VHM"]
VHM_ATTRIBUTION = {
    "source": "Visible Human lower-limb surfaces (University of Denver, Center for Orthopaedic Biomechanics)",
    "licence": "CC BY 4.0",
    "attribution": ("Andreassen TE, Hume DR, Hamilton LD, Walker KE, Higinbotham SE, Shelburne KB. "
                    "Three-dimensional lower extremity musculoskeletal geometry of the Visible Human Female "
                    "and Male. Sci Data 2022, doi:10.1038/s41597-022-01905-2; dataset doi:10.56902/COB.vh.2022.0. "
                    "Derived from the NLM Visible Human Project. Changed: decimated, aligned to imssim's frame."),
    "url": "https://doi.org/10.56902/COB.vh.2022.0",
}
_VH_RE = re.compile(r"^(VH[MF])_(Right|Left)_([A-Za-z]+)_([A-Za-z0-9]+?)(?:_smooth)?\.(stl|obj|ply|vtp|vtk|off)$", re.I)
#: kinds of file in the data set that imssim does not model (skipped and listed)
VH_SKIPPED_KINDS = {"cartilage": "cartilage is not modelled in imssim", "ligament": "ligaments are not modelled in imssim",
                    "tendon": "tendons are not modelled separately in imssim"}


def _split_camel(s: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", s).lower()


def vh_body(filename: str) -> str | None:
    """'VHM' or 'VHF' for a Visible Human surface file name, else None."""
    m = _VH_RE.match(Path(filename).name)
    return m.group(1).upper() if m else None


def vh_alias(words: str) -> str:
    """The data set's wording (CamelCase split into words) -> imssim's name: its known
    misspellings and older terms (``meshes/bodyparts3d_names.yaml``, ``vhm_names``)."""
    return _table()["vhm_names"].get(words, words)


def vhm_identity(filename: str) -> Identity:
    """Identity of a Visible Human surface file (either body, either side) from its name.

    ``VH<M|F>_<Right|Left>_<Bone|Muscle>_<CamelName>_smooth.stl``. KeyError (with the
    reason) for other names, for kinds imssim does not model (cartilage, ligaments) and
    for muscles it has no innervation facts for.
    """
    m = _VH_RE.match(Path(filename).name)
    if not m:
        raise KeyError(f"{filename}: not a Visible Human surface file name (VH<M|F>_<Right|Left>_<Bone|Muscle>_<Name>_smooth.stl)")
    side, kind, camel = m.group(2).lower(), m.group(3).lower(), m.group(4)
    if kind in VH_SKIPPED_KINDS:
        raise KeyError(f"{filename}: {VH_SKIPPED_KINDS[kind]}")
    if kind not in ("bone", "muscle"):
        raise KeyError(f"{filename}: imssim does not know the kind {m.group(3)!r} (expected Bone or Muscle)")
    words = vh_alias(_split_camel(camel))
    if kind == "bone":
        if words in _table()["midline_bones"]:
            return Identity(_canonical_id(words, "midline"), words, "bone", "midline", region="pelvis")
        if words not in _table()["paired_bones"]:
            raise KeyError(f"{filename}: imssim does not know the bone {words!r}")
        foot = _table().get("foot_bones", {}).get(words)  # built-in counterpart: the foot or toe bones
        return Identity(_canonical_id(words, side), _human_name(words, side), "bone", side,
                        region="foot" if foot else None, match=_canonical_id(foot, side) if foot else None)
    try:
        return _muscle_identity(words, side)
    except KeyError:
        raise KeyError(f"{filename}: no innervation facts for the muscle {words!r}") from None


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


#: BodyParts3D files renamed with their FMA id and name, as some redistributions ship them:
#: ``FJ103_BP4368_FMA24481_Left fibula.obj`` (no parts list needed)
_BP3D_NAMED = re.compile(r"^FJ\d+(?:_BP\d+)?_FMA(\d+)_(.+)$", re.I)


def bodyparts3d_identity(filename: str, parts: dict[str, tuple[str, str]] | None) -> tuple[Identity, str]:
    """(Identity, FMA id) of a BodyParts3D file: from the name it carries, else the parts list."""
    stem = Path(filename).stem
    m = _BP3D_NAMED.match(stem)
    if m:
        fma, name = f"FMA{m.group(1)}", m.group(2).replace("_", " ")
    elif parts is None:
        raise KeyError(f"{filename}: no FMA name in the file name and no parts list to look {stem} up in")
    elif stem not in parts:
        raise KeyError(f"{filename}: {stem} is not in the BodyParts3D parts list")
    else:
        fma, name = parts[stem]
    try:
        return fma_name_identity(name), fma
    except KeyError as e:
        raise KeyError(f"{filename}: imssim does not know {name!r} ({str(e.args[0]) if e.args else e})") from None


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


#: per profile: the documented source frame (used when the anatomy does not say for sure),
#: the attribution, and ``identify`` (file name -> Identity, KeyError with the reason if
#: unknown) where names alone say what a file is (bodyparts3d: the file name or its parts
#: list). Every profile reads every file of a folder and skips and lists those it does not
#: know (``meta["skipped_files"]``).
PROFILES = {
    "vhm": {"frame": VHM_FRAME, "attribution": VHM_ATTRIBUTION, "identify": vhm_identity},
    "bodyparts3d": {"frame": BODYPARTS3D_FRAME, "attribution": BODYPARTS3D_ATTRIBUTION},
    "zanatomy": {"frame": ZANATOMY_FRAME, "attribution": ZANATOMY_ATTRIBUTION,
                 "identify": zanatomy_identity},
}


def profile_frame(profile: str, files: list[str]) -> dict:
    """The frame a profile documents for these files (Visible Human: per body)."""
    if profile == "vhm":
        bodies = {vh_body(f) for f in files} - {None}
        if len(bodies) == 1:
            return dict(VH_FRAMES[bodies.pop()])
    return dict(PROFILES[profile]["frame"])

"""The built-in body's source: BodyParts3D bones and muscles, turned into closed volumes.

``tools/build_bodyparts3d.py`` runs :func:`build_shipped` on the ``atlas-bodyparts3d``
folder (decimated BodyParts3D 3.0 OBJ files, one body; see its SOURCE.md) and writes the
compact result that imssim ships in ``meshes/bodyparts3d/``. The runtime never reads the
source folder: :func:`load_shipped` reads the shipped arrays (``builtin.py`` adds the
derived stages on top and caches the whole).

What happens to the source:
- files are checked against the folder's ``SHA256SUMS.txt`` (a changed file is an error);
- names are parsed into ids, sides and canonical muscle names (``parse_name``);
- every structure becomes a closed, watertight volume through a voxel grid
  (:mod:`.voxel`): bones at 0.6 mm, muscles at 0.6-1.2 mm (by size);
- small bones that only make sense together are merged (skull, hand and foot bones);
- the segmental muscles (multifidus, rotatores) are solidified per side and then split by
  level: each voxel goes to the vertebra whose bone is nearest (its fibres arise from that
  lamina and spinous process; the medial branch of that level's dorsal ramus supplies
  them), so a needle resting on the L5 lamina is in ``multifidus_L5_r``;
- files given for both sides at once (intercostals, thoracic rotatores, the unnamed
  ``grp1``) are split at the midline.

BodyParts3D's frame is already imssim's (mm, +X left, +Y posterior, +Z superior).
"""

from __future__ import annotations

import hashlib
import json
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..atlas import Atlas, Attribution, Structure
from . import voxel

Progress = Callable[[str, float], None]

ATTRIBUTION = Attribution(
    source="BodyParts3D 3.0 (decimated OBJ set), bones and muscles of one adult male body",
    licence="CC BY-SA 2.1 JP",
    attribution=(
        "BodyParts3D, (c) The Database Center for Life Science, licensed under CC Attribution-Share Alike 2.1 Japan; "
        "decimation (c) Nikola Lukic, same licence; closed volumes, per-level split and compaction by imssim (same licence)"
    ),
    url="https://dbarchive.biosciencedbc.jp/en/bodyparts3d/",
)

ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12,
}
SKULL = {"frontal bone", "parietal bone", "occipital bone", "temporal bone", "sphenoid bone", "ethmoid",
         "nasal bone", "maxilla", "zygomatic bone", "lacrimal bone", "palatine bone", "vomer", "inferior nasal concha"}
PAIRED_BONES = {"scapula", "clavicle", "humerus", "radius", "ulna", "hip bone", "femur", "tibia", "fibula",
                "patella", "talus", "calcaneus"}
HAND = re.compile(r"(scaphoid|lunate|triquetral|pisiform|trapezium|trapezoid|capitate|hamate|metacarpal|"
                  r"phalanx of (left|right) (thumb|index finger|middle finger|ring finger|little finger))")
FOOT = re.compile(r"(navicular|cuneiform|cuboid|metatarsal|phalanx of (left|right) .*toe|sesamoid bone of (left|right) foot)")
#: Segmental muscles split per level: canonical name -> id stem.
SEGMENTAL = {"multifidus": "multifidus", "rotatores": "rotatores"}
#: Files that hold both sides at once: canonical muscle they become.
BOTH_SIDES = {
    "internal intercostal muscle": "internal intercostal",
    "innermost intercostal muscle": "innermost intercostal",
    "thoracic rotator": "rotatores",
    "grp1": "external intercostal",
}
MIDLINE_MUSCLES = {"diaphragm", "orbicularis oris", "external anal sphincter"}
#: FMA spellings -> the canonical key in meshes/muscles.yaml (where they differ).
FMA_TO_KEY = {
    "cervical rotator": "rotatores",
    "lumbar rotator": "rotatores",
    "iliocostalis lumborum": "iliocostalis (lumbar part)",
    "iliocostalis thoracis": "iliocostalis (thoracic part)",
    "longissimus thoracis": "longissimus (thoracic part)",
}


def slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


def _sfx(side: str) -> str:
    return {"right": "_r", "left": "_l"}.get(side, "")


def parse_name(path: str | Path, kind: str) -> dict:
    """What a source file is: ``{kind, side, key, id, name, group}``.

    ``group`` is the id of the structure the file becomes part of (several files merge into
    one skull, hand or foot); ``key`` the canonical muscle name for muscles.
    """
    stem = Path(path).stem
    m = re.match(r"FJ\d+_BP\d+_FMA(\d+)_(.+)$", stem)
    fma, raw = (m.group(1), m.group(2)) if m else (None, stem)
    words = raw.replace("_", " ").strip()
    low = words.lower()
    side = "midline"
    for s in ("right", "left"):
        if re.search(rf"\b{s}\b", low):
            side = s
    bare = re.sub(r"\b(right|left)\b ?", "", low).replace("  ", " ").strip()
    out = {"kind": kind, "side": side, "fma": fma, "source_name": words}
    if kind == "bone":
        vm = re.match(r"(\w+) (cervical|thoracic|lumbar) vertebra$", bare)
        if vm or bare in ("atlas", "axis"):
            lvl = {"atlas": "C1", "axis": "C2"}.get(bare) or {"cervical": "C", "thoracic": "T", "lumbar": "L"}[vm.group(2)] + str(ORDINALS[vm.group(1)])
            name = f"{lvl} vertebra" + {"atlas": " (atlas)", "axis": " (axis)"}.get(bare, "")
            return {**out, "side": "midline", "id": f"vertebra_{lvl}", "group": f"vertebra_{lvl}", "name": name, "level": lvl, "region": "spine"}
        rm = re.match(r"(\w+) rib$", bare)
        if rm:
            n = ORDINALS[rm.group(1)]
            return {**out, "id": f"rib_{n}{_sfx(side)}", "group": f"rib_{n}{_sfx(side)}", "name": f"{side} rib {n}",
                    "region": "thorax", "rib": n, "aliases": [f"{side} {rm.group(1)} rib"]}
        if bare == "sacrum":
            return {**out, "side": "midline", "id": "sacrum", "group": "sacrum", "name": "sacrum", "region": "pelvis"}
        if bare in SKULL:
            return {**out, "side": "midline", "id": "skull", "group": "skull", "name": "skull", "region": "head"}
        if bare in ("mandible", "hyoid bone"):
            sid = slug(bare.replace(" bone", ""))
            return {**out, "side": "midline", "id": sid, "group": sid, "name": bare, "region": "head"}
        if HAND.search(low):
            return {**out, "id": f"hand_bones{_sfx(side)}", "group": f"hand_bones{_sfx(side)}", "name": f"{side} hand bones", "region": "hand"}
        if FOOT.search(low):
            return {**out, "id": f"foot_bones{_sfx(side)}", "group": f"foot_bones{_sfx(side)}", "name": f"{side} foot bones", "region": "foot"}
        b = bare.replace(" of foot", "")
        if b in PAIRED_BONES:
            region = {"scapula": "shoulder", "clavicle": "shoulder", "humerus": "arm", "radius": "forearm", "ulna": "forearm",
                      "hip bone": "pelvis", "femur": "thigh", "patella": "knee", "tibia": "leg", "fibula": "leg",
                      "talus": "foot", "calcaneus": "foot"}[b]
            sid = f"{slug(b)}{_sfx(side)}"
            return {**out, "id": sid, "group": sid, "name": f"{side} {b}", "region": region}
        raise ValueError(f"{path}: no rule for the bone {words!r}")
    # muscles
    if bare in BOTH_SIDES or low in BOTH_SIDES:
        key = BOTH_SIDES.get(bare, BOTH_SIDES.get(low))
        return {**out, "side": "both", "key": key, "id": slug(key), "group": slug(key), "name": key}
    if bare in MIDLINE_MUSCLES:
        return {**out, "side": "midline", "key": bare, "id": slug(bare), "group": slug(bare), "name": bare}
    # "first lumbrical of left foot" -> key "first lumbrical of foot"
    key = FMA_TO_KEY.get(bare, bare)
    sid = f"{slug(key)}{_sfx(side)}"
    name = low if side != "midline" else bare
    return {**out, "key": key, "id": sid, "group": sid, "name": name}


# ---------------------------------------------------------------------------------------
# reading and checking the source folder


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and triangles of a Wavefront OBJ (positions only), duplicates merged."""
    import trimesh

    m = trimesh.load(path, force="mesh", process=False)
    m = trimesh.Trimesh(np.asarray(m.vertices, float), np.asarray(m.faces, np.int64), process=False)
    m.merge_vertices(digits_vertex=3)
    return np.asarray(m.vertices, float), np.asarray(m.faces, np.int64)


def check_sums(src: Path, files: Iterable[Path]) -> None:
    """Every file we read must be listed in SHA256SUMS.txt with that hash."""
    sums = {}
    for line in (src / "SHA256SUMS.txt").read_text().splitlines():
        if line.strip():
            h, name = line.split(None, 1)
            sums[name.strip().lstrip("*").removeprefix("./")] = h
    for f in files:
        rel = f.relative_to(src).as_posix()
        want = sums.get(rel)
        if want is None:
            raise ValueError(f"{src / 'SHA256SUMS.txt'}: no checksum for {rel}")
        got = hashlib.sha256(f.read_bytes()).hexdigest()
        if got != want:
            raise ValueError(f"{f}: sha256 {got[:12]}... does not match SHA256SUMS.txt ({want[:12]}...)")


def source_files(src: Path) -> list[tuple[Path, dict]]:
    out = []
    for kind, folder in (("bone", "bones"), ("muscle", "muscles")):
        for f in sorted((src / folder).glob("*.obj")):
            out.append((f, parse_name(f, kind)))
    return out


# ---------------------------------------------------------------------------------------
# solidifying


def _solid_job(args) -> list[dict]:
    """One output structure (or several, for files holding both sides): closed meshes."""
    gid, info, parts, close_mm = args
    V = np.vstack([p[0] for p in parts])
    offs = np.cumsum([0] + [len(p[0]) for p in parts])
    F = np.vstack([p[1] + o for p, o in zip(parts, offs[:-1])])
    jobs = []
    if info.get("side") == "both":
        cen = V[F].mean(axis=1)[:, 0]
        for side, sel in (("right", cen < 0), ("left", cen >= 0)):
            jobs.append((f"{gid}{_sfx(side)}", side, V, F[sel]))
    else:
        jobs.append((gid, info["side"], V, F))
    out = []
    for sid, side, v, f in jobs:
        used = np.unique(f)
        remap = np.full(len(v), -1)
        remap[used] = np.arange(len(used))
        v2, f2 = v[used], remap[f]
        Vc, Fc, meta = voxel.closed_mesh(v2, f2, close_mm=close_mm, simplify_mm=0.4)
        out.append({"id": sid, "side": side, "V": Vc.astype(np.float32), "F": Fc.astype(np.int32), "meta": meta})
    return out


#: How far from the midline the multifidus fills the paraspinal gutter (mm), by region,
#: and how far it may lie from the bone it arises from.
GUTTER_HALF_WIDTH = {"C": 24.0, "T": 24.0, "L": 32.0, "S": 32.0}
GUTTER_DEPTH = {"C": 22.0, "T": 20.0, "L": 34.0, "S": 30.0}


def _segmental_job(args) -> list[dict]:
    """Multifidus or rotatores of one side: one solid, then split per level.

    The source's multifidus is a cloud of thin fascicle fragments; closing joins them,
    and for multifidus the paraspinal gutter is then filled: every voxel beside the
    spinous processes, behind the laminae (no deeper than the lamina's back surface less
    5 mm) and within ``GUTTER_HALF_WIDTH`` of the midline and ``GUTTER_DEPTH`` of its bone,
    that no other muscle or bone occupies, is multifidus (as on a cross-section, where it
    fills the gutter down to the laminae under the erector spinae). Each voxel then goes
    to the level of the nearest vertebra.
    """
    stem, side, V, F, bones, others, laminae, tips, close_mm = args
    from scipy import ndimage as ndi
    from scipy.spatial import cKDTree

    from .geometry import is_watertight, simplify_manifold

    lat = -1.0 if side == "right" else 1.0
    lo, hi = V.min(axis=0), V.max(axis=0)
    if stem == "multifidus":
        lo[0], hi[0] = (-40.0, 0.0) if side == "right" else (0.0, 40.0)
    h = 0.8
    grid = voxel.Grid.around(lo, hi, h, pad_mm=close_mm + 3)
    solid = voxel.solidify(voxel.rasterise(V, F, grid), close_mm / h)
    bone = np.zeros_like(solid)
    labels, pts = [], []
    for lvl, (bv, bf) in bones.items():
        s = voxel.surface_samples(bv, bf, 1.0)
        pts.append(s)
        labels += [lvl] * len(s)
        bone |= voxel.solidify(voxel.rasterise(bv, bf, grid), 0.0)
    P = None
    if stem == "multifidus":
        occupied = np.zeros_like(solid)
        for ov, of in others:
            occupied |= voxel.solidify(voxel.rasterise(ov, of, grid), 0.0)
        P = grid.points(np.indices(grid.shape).reshape(3, -1).T).reshape(*grid.shape, 3)
        z = P[..., 2]
        # per level: lamina height and back surface (y), interpolated along z
        lz = np.array([p[2] for _l, p in laminae])
        ly = np.array([p[1] for _l, p in laminae])
        reg = np.array([_l[0] for _l, _p in laminae])
        order = np.argsort(lz)
        lz, ly, reg = lz[order], ly[order], reg[order]
        y_floor = np.interp(z, lz, ly) - 5.0
        k = np.clip(np.searchsorted(lz, z), 0, len(lz) - 1)
        half = np.vectorize(GUTTER_HALF_WIDTH.get)(reg)[k]
        depth = np.vectorize(GUTTER_DEPTH.get)(reg)[k]
        dist_bone = ndi.distance_transform_edt(~bone) * h
        # no further back than the spinous tips (+3 mm), and narrowing toward them: the
        # column's cross-section is rounded like the real muscle's, not a box
        tz = np.array([p[2] for p in tips])
        ty = np.array([p[1] for p in tips])
        o2 = np.argsort(tz)
        y_roof = np.interp(z, tz[o2], ty[o2]) + 3.0
        frac = np.clip((P[..., 1] - y_floor) / np.maximum(y_roof - y_floor, 1.0), 0.0, 1.0)
        half_here = half * (1.0 - 0.45 * frac**2)
        gutter = (lat * P[..., 0] >= 1.0) & (lat * P[..., 0] <= half_here) & (P[..., 1] >= y_floor)
        gutter &= (P[..., 1] <= y_roof) & (dist_bone <= depth)
        gutter &= (z >= lz.min() - 15) & (z <= lz.max() + 10)
        # on the bone (the deepest 6 mm) multifidus wins over the muscles BodyParts3D lays
        # too deep (semispinalis thoracis, longissimus at T11-T12): the laminar fibres are there
        solid = (solid | gutter) & ~(occupied & (dist_bone > 6.0))
    if P is None:
        P = grid.points(np.indices(grid.shape).reshape(3, -1).T).reshape(*grid.shape, 3)
    solid &= lat * P[..., 0] >= 0.5  # each side's muscle stays on its side of the midline
    solid &= ~bone
    tree = cKDTree(np.vstack(pts))
    labels = np.array(labels)
    ijk = np.argwhere(solid)
    _, near = tree.query(grid.points(ijk))
    lvl_of = labels[near]
    out = []
    for lvl in sorted(set(lvl_of)):
        sel = ijk[lvl_of == lvl]
        a, b = sel.min(axis=0) - 2, sel.max(axis=0) + 3  # a box around this level only
        sub = voxel.Grid(grid.origin + a * h, h, tuple(int(n) for n in b - a))
        m = np.zeros(sub.shape, bool)
        q = sel - a
        m[q[:, 0], q[:, 1], q[:, 2]] = True
        m = voxel.keep_largest_components(m, 0.05)
        if m.sum() * h**3 < 50:  # a few voxels at the end of the column
            continue
        Vc, Fc = voxel.surface(m, sub, 0.6)
        Vc, Fc = simplify_manifold(Vc, Fc, 0.3)
        out.append({"id": f"{stem}_{lvl}{_sfx(side)}", "side": side, "level": lvl, "V": Vc.astype(np.float32),
                    "F": Fc.astype(np.int32), "meta": {"voxel_mm": h, "close_mm": close_mm, "gutter": stem == "multifidus",
                                                       "watertight": bool(is_watertight(Vc, Fc))}})
    return out


def build_segmental(src: Path, structures: list[dict], workers: int = 2, only: set[str] | None = None) -> list[dict]:
    """Multifidus and rotatores per level and side (needs the solid bones and muscles)."""
    from .landmarks import lamina_point

    src = Path(src)
    files = [(f, i) for f, i in source_files(src) if i["kind"] == "muscle" and i.get("key") in SEGMENTAL]
    verts = {s["level"]: (np.asarray(s["V"], float), s["F"]) for s in structures if s.get("level") and s["kind"] == "bone"}
    sac = next((s for s in structures if s["id"] == "sacrum"), None)
    if sac is not None:
        verts["S1"] = (np.asarray(sac["V"], float), sac["F"])
    from .landmarks import spinous_tip

    laminae = {}
    for side in ("right", "left"):
        laminae[side] = [(lvl, lamina_point(v, side)) for lvl, (v, _f) in verts.items()]
    tips = [spinous_tip(v) for lvl, (v, _f) in verts.items()]
    by_stem: dict[str, list[Path]] = {}
    for f, info in files:
        by_stem.setdefault(info["key"], []).append(f)
    stems = [st for st in ("rotatores", "multifidus") if only is None or any(o.startswith(st) for o in only)]
    structures = [s for s in structures if not s["id"].startswith(tuple(f"{st}_" for st in stems))]
    out: list[dict] = []
    for stem in stems:  # rotatores first: multifidus fills the gutter around them
        paths = by_stem[stem]
        parts = [read_obj(p) for p in paths]
        V = np.vstack([p[0] for p in parts])
        offs = np.cumsum([0] + [len(p[0]) for p in parts])
        F = np.vstack([p[1] + o for p, o in zip(parts, offs[:-1])])
        cen = V[F].mean(axis=1)[:, 0]
        jobs = []
        for side, sel in (("right", cen < 0), ("left", cen >= 0)):
            others = []
            if stem == "multifidus":
                lo, hi = V.min(0) - 40, V.max(0) + 40
                for s in structures + out:
                    if s["kind"] != "muscle" or s["id"].startswith("multifidus_"):
                        continue
                    sv = np.asarray(s["V"], float)
                    if np.all(sv.max(0) >= lo) and np.all(sv.min(0) <= hi):
                        others.append((sv, s["F"]))
            jobs.append((stem, side, V, F[sel], verts, others, laminae[side], tips, 3.0 if stem == "multifidus" else 2.5))
        info = {"kind": "muscle", "key": stem, "files": [p.name for p in paths], "fma": None}
        with ProcessPoolExecutor(max_workers=workers) as ex:
            for res in ex.map(_segmental_job, jobs):
                for r in res:
                    out.append({**_meta_for({**info, "side": r["side"]}, r), "V": r["V"], "F": r["F"]})
    return out


def build_shipped(src: Path, progress: Progress = lambda m, f: None, workers: int = 2, only: set[str] | None = None) -> dict:
    """Closed meshes and metadata for every structure of the source folder.

    ``only`` limits the build to some output ids (tests build a few structures).
    Returns ``{"structures": [...], "meta": {...}}`` ready for :func:`save_shipped`.
    """
    src = Path(src)
    files = source_files(src)
    check_sums(src, [f for f, _ in files])
    groups: dict[str, tuple[dict, list]] = {}
    for f, info in files:
        g = info["group"]
        if info["kind"] == "muscle" and info.get("key") in SEGMENTAL or info.get("key") == "rotatores":
            g = f"seg:{SEGMENTAL.get(info['key'], 'rotatores')}"
        groups.setdefault(g, (info, []))[1].append(f)
    structures: list[dict] = []
    infos: dict[str, dict] = {}
    # bones and ordinary muscles
    jobs = []
    for gid, (info, paths) in groups.items():
        if gid.startswith("seg:"):
            continue
        if only is not None and not any(gid == o or o.startswith(gid) for o in only):
            continue
        parts = [read_obj(p) for p in paths]
        close = 1.0 if info["kind"] == "bone" else 1.5
        if info.get("key") in ("internal intercostal", "innermost intercostal", "external intercostal"):
            close = 2.0
        jobs.append((gid, info, parts, close))
        infos[gid] = {**info, "files": [p.name for p in paths]}
    done = 0
    total = len(jobs) + 2
    with ProcessPoolExecutor(max_workers=workers) as ex:
        for res in ex.map(_solid_job, jobs):
            for r in res:
                base = infos[r["id"]] if r["id"] in infos else infos[r["id"].rsplit("_", 1)[0]]
                structures.append({**_meta_for(base, r), "V": r["V"], "F": r["F"]})
            done += 1
            progress(f"solid {res[0]['id'] if res else ''}", done / total)
    # segmental muscles, after the vertebrae and their neighbours exist (rotatores first:
    # multifidus fills the gutter around them)
    structures += build_segmental(src, structures, workers, only)
    progress("segmental muscles", 1.0)
    return {"structures": structures, "meta": {"source": "BodyParts3D 3.0 decimated OBJ", "files": len(files)}}


def _meta_for(info: dict, r: dict) -> dict:
    side = r["side"]
    d = {
        "id": r["id"],
        "kind": info["kind"],
        "side": side,
        "level": r.get("level") or info.get("level"),
        "key": info.get("key"),
        "source_files": info.get("files", []),
        "fma": info.get("fma"),
        "build": r["meta"],
        "region": info.get("region"),
        "rib": info.get("rib"),
        "aliases": info.get("aliases", []),
    }
    if info["kind"] == "bone":
        d["name"] = info["name"]
    else:
        key = info["key"]
        lvl = r.get("level")
        pre = f"{side} " if side in ("left", "right") else ""
        if lvl:
            d["name"] = f"{pre}{key} {lvl}"
        elif info.get("side") == "both":
            d["name"] = f"{pre}{key}"
        else:
            d["name"] = info["name"]
    return d


# ---------------------------------------------------------------------------------------
# the shipped, compact form


def save_shipped(result: dict, folder: Path) -> Path:
    """Write ``structures.json`` + ``meshes.npz`` (quantised to 1/64 mm, compressed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    Q = 64.0
    headers, arrays = [], {}
    for i, s in enumerate(sorted(result["structures"], key=lambda s: s["id"])):
        V, F = s["V"], s["F"]
        lo = np.floor(V.min(axis=0) * Q) / Q
        q = np.rint((V - lo) * Q)
        if q.max() >= 2**32:
            raise ValueError(f"{s['id']}: too large to quantise")
        arrays[f"v{i}"] = q.astype(np.uint32)
        arrays[f"f{i}"] = F.astype(np.uint16 if len(V) < 65536 else np.uint32)
        headers.append({k: v for k, v in s.items() if k not in ("V", "F")} | {"offset": lo.tolist()})
    np.savez_compressed(folder / "meshes.npz", **arrays)
    digest = hashlib.sha256((folder / "meshes.npz").read_bytes()).hexdigest()
    meta = {"format": 1, "quantum_mm": 1.0 / Q, "meshes_sha256": digest, "meta": result.get("meta", {}), "structures": headers}
    (folder / "structures.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    (folder / "LICENCE.md").write_text(LICENCE_TEXT)
    return folder


LICENCE_TEXT = """# Licence of the built-in body (this folder)

`structures.json` and `meshes.npz` are built by `tools/build_bodyparts3d.py` from:

1. **BodyParts3D** 3.0 (decimated OBJ set of bones and muscles of one adult male body).
   "BodyParts3D, (c) The Database Center for Life Science, licensed under CC Attribution-
   Share Alike 2.1 Japan"; decimation (c) Nikola Lukic, same licence.
   https://dbarchive.biosciencedbc.jp/en/bodyparts3d/ -
   licence: https://creativecommons.org/licenses/by-sa/2.1/jp/deed.en
2. **Visible Human Male lower-limb surfaces** (vastus lateralis, biceps femoris long and
   short heads, gastrocnemius heads): Andreassen TE et al., Three-dimensional lower
   extremity musculoskeletal geometry of the Visible Human Female and Male, Sci Data 2022,
   doi:10.1038/s41597-022-01905-2; dataset doi:10.56902/COB.vh.2022.0. Licence: CC BY 4.0
   (https://creativecommons.org/licenses/by/4.0/). Registered to the BodyParts3D skeleton
   and mirrored for the left side by imssim.

What imssim changed: every surface was rebuilt as a closed volume on a voxel grid (see
docs/atlas.md), small bones were merged (skull, hand, foot), multifidus and rotatores were
split by vertebral level, the muscles listed in docs/atlas.md were added (registered or
reconstructed), and coordinates were quantised to 1/64 mm.

This folder is a derivative of BodyParts3D and is distributed under the same licence,
**CC BY-SA 2.1 JP**, separately from imssim's Apache-2.0 code. Keep this attribution with
it and with anything built from it.
"""


def load_shipped(folder: Path) -> tuple[list[dict], dict]:
    """The shipped structures as dicts with ``V`` (float64 mm) and ``F`` (int32)."""
    folder = Path(folder)
    try:
        head = json.loads((folder / "structures.json").read_text())
        q = head["quantum_mm"]
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{folder / 'structures.json'}: the shipped body is missing or unreadable ({e})") from e
    out = []
    with np.load(folder / "meshes.npz", allow_pickle=False) as z:
        for i, s in enumerate(head["structures"]):
            V = z[f"v{i}"].astype(np.float64) * q + np.asarray(s["offset"])
            F = z[f"f{i}"].astype(np.int32)
            out.append({**s, "V": V, "F": F})
    return out, head.get("meta", {})

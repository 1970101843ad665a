"""Between the layers: a labelled partition of the soft tissue the segmented meshes leave empty.

BodyParts3D has bones and muscles only: fascia, fat, ligaments, discs and the viscera are
not in it, so along a needle a fifth of the length inside the skin met no structure. This
stage labels every voxel inside the body (2 mm grid, :data:`H_MM`) with the tissue that is
there when no mesh is:

1. every bone, muscle and danger structure is rasterised (solid) into an occupancy grid;
   the body is the inside of the lean skin's outer surface;
2. **the spine**: an empty voxel with one vertebra above it and the next one below it
   (within :data:`SPINE_REACH_MM` along the body axis) is an *intervertebral disc* in front
   of the canal, the *ligamentum flavum* just behind the canal and the *interspinous
   ligament* on the midline further back; empty space around the dural sac inside the
   vertebral foramen is the *epidural space*;
3. **muscles meet their neighbours**: empty voxels within :data:`GROW_MM` of a muscle are
   that muscle (the nearest one), so a cleft narrower than twice that closes;
4. **subcutaneous fat** reaches down from the skin to the deep fascia: empty voxels joined
   to the body surface through empty space, no deeper than :data:`FAT_REACH_MM`;
5. **thoracolumbar fascia**: over the paraspinal muscles from T10 to the sacrum, the
   empty (or fat) voxels within :data:`TLF_MM` of erector spinae or multifidus on their
   superficial side, and the medial, aponeurotic part of latissimus dorsi there
   (BodyParts3D's latissimus mesh carries its aponeurosis across the lumbar paraspinals;
   it is the posterior layer of this fascia, so a needle there reads "thoracolumbar
   fascia", not "latissimus dorsi");
6. **cavities**: what is left and lies more than :data:`CAVITY_MM` from any structure seeds
   the body cavities (cranial cavity, the neck's visceral spaces above the thoracic inlet,
   mediastinum, abdominal and pelvic cavity), grown
   back over the rest of their space;
7. everything else is *intermuscular fat and fascia*.

The grid is kept with the atlas (``atlas.volumes["fill"]`` plus ``atlas.meta["fill"]``);
the traversal engine uses it only where no mesh covers the needle (see docs/needle.md), so
the meshes stay exact and the grid decides what the gaps are. Each connective label is
also surfaced (marching cubes, simplified) so the 3-D view and the slice can draw it;
those meshes carry ``meta["fill"] = True`` and stay out of the ray-casting index.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..atlas import VERTEBRAE, Atlas, Structure
from .voxel import Grid, surface_samples

H_MM = 2.0
GROW_MM = 3.0
FAT_REACH_MM = 40.0
FAT_GAP_MM = 6.0
TLF_MM = 4.0
CAVITY_MM = 8.0
SPINE_REACH_MM = 16.0
SRC = "imssim (labelled partition of the space between the BodyParts3D meshes)"

#: fill-only tissues: id -> (name, kind, region)
CONNECTIVE = {
    "thoracolumbar_fascia": ("thoracolumbar fascia", "connective", "back"),
    "intermuscular_fascia": ("intermuscular fat and fascia", "connective", "whole body"),
    "epidural_space": ("epidural space (fat and veins)", "connective", "spine"),
    "cranial_cavity": ("cranial cavity (brain)", "organ", "head"),
    "mediastinum": ("mediastinum (heart and great vessels)", "organ", "thorax"),
    "neck_viscera": ("viscera, vessels and fat of the neck (trachea, oesophagus, carotid sheath)", "organ", "neck"),
    "abdominal_cavity": ("abdominal and pelvic cavity (viscera)", "organ", "abdomen"),
}
SPINE_KINDS = {
    "disc": ("intervertebral_disc_{a}_{b}", "intervertebral disc {a}-{b}"),
    "flavum": ("ligamentum_flavum_{a}_{b}", "ligamentum flavum {a}-{b}"),
    "interspinous": ("interspinous_ligament_{a}_{b}", "interspinous ligament {a}-{b}"),
}
#: the feel a connective tissue gives the needle (physiology reads it)
FEEL = {"thoracolumbar_fascia": "fascia", "intermuscular_fascia": "fascia", "epidural_space": "loss of resistance",
        "disc": "ligament", "flavum": "ligament", "interspinous": "ligament"}


def _solid(s: Structure, grid: Grid) -> tuple[tuple[slice, ...], np.ndarray] | None:
    """The structure's voxels (surface rasterised, enclosed space filled) in its own box."""
    v = s.vertices
    lo = np.maximum(grid.index(v.min(axis=0)) - 1, 0)
    hi = np.minimum(grid.index(v.max(axis=0)) + 2, np.array(grid.shape))
    if np.any(hi <= lo):
        return None
    sub = Grid(grid.origin + lo * grid.h, grid.h, tuple(int(x) for x in hi - lo))
    pts = surface_samples(v, s.faces, 0.6 * grid.h)
    ijk = sub.index(pts)
    ok = np.all((ijk >= 0) & (ijk < np.array(sub.shape)), axis=1)
    m = np.zeros(sub.shape, bool)
    ijk = ijk[ok]
    m[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = True
    m = ndimage.binary_fill_holes(m)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi)), m


def _shell_solids(s: Structure, grid: Grid):
    """The solid of each closed surface of a layered mesh (XOR them for the layer)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = s.faces
    n = len(s.vertices)
    adj = coo_matrix((np.ones(3 * len(f)), (np.concatenate([f[:, 0], f[:, 1], f[:, 2]]),
                                            np.concatenate([f[:, 1], f[:, 2], f[:, 0]]))), shape=(n, n))
    k, comp = connected_components(adj, directed=False)
    fc = comp[f[:, 0]]
    for c in range(k):
        sub = f[fc == c]
        if len(sub) < 4:
            continue
        r = _solid(Structure(s.id, s.name, s.kind, s.side, s.region, s.vertices, sub), grid)
        if r is not None:
            yield r


def _fat_reaches_fascia(atlas: Atlas, fat_id: str) -> bool:
    """Whether the fat mesh's deep surface is the deep fascia (the built-in body's skin
    stage, build/skin.py, marks it): then the grid adds no fat of its own under it."""
    return bool(atlas.structures[fat_id].meta.get("deep_surface") == "fascia")


def _skin_id(atlas: Atlas, kind: str, habitus: str) -> str | None:
    for sid in (f"{kind}@{habitus}", kind):
        if sid in atlas.structures:
            return sid
    return None


def build_fill(atlas: Atlas, progress=lambda m, f: None) -> tuple[np.ndarray, dict]:
    """Label grid (uint16, 0 = outside the body), the same labels in the gaps only (for
    drawing), and the header: ``origin``, ``h``, ``shape`` and ``labels`` (structure id of
    each label value, index 0 unused)."""
    skin_id = _skin_id(atlas, "skin", "lean")
    if skin_id is None:
        raise ValueError("the fill stage needs the skin (run it after the skin stage)")
    skin = atlas.structures[skin_id]
    lo, hi = skin.vertices.min(axis=0), skin.vertices.max(axis=0)
    grid = Grid.around(lo, hi, H_MM, pad_mm=2 * H_MM)
    shape = grid.shape
    progress("fill: body", 0.0)
    body = np.zeros(shape, bool)
    sl, m = _solid(skin, grid)
    # a voxel in from the skin's surface (its raster reaches up to a voxel outside it, and
    # the labels' surfaces would poke through the skin): the skin and fat meshes cover that
    body[sl] |= ndimage.binary_erosion(m)
    labels: list[str] = [""]
    lab_of: dict[str, int] = {}

    def label(sid: str) -> int:
        if sid not in lab_of:
            lab_of[sid] = len(labels)
            labels.append(sid)
        return lab_of[sid]

    # 1. occupancy: owner label of every voxel a mesh covers (danger over bone over muscle)
    occ = np.zeros(shape, np.uint16)
    order = {"muscle": 0, "bone": 1, "organ": 2, "canal": 3, "vessel": 4, "nerve": 4}
    structs = [s for s in atlas if s.kind in order and not s.meta.get("fill")]
    structs.sort(key=lambda s: order[s.kind])
    is_muscle_lab = np.zeros(1, bool)
    for k, s in enumerate(structs):
        if k % 50 == 0:
            progress("fill: rasterising the structures", 0.05 + 0.35 * k / len(structs))
        r = _solid(s, grid)
        if r is None:
            continue
        sl, m = r
        occ[sl][m] = label(s.id)
    kinds = {s.id: s.kind for s in atlas}
    lab_kind = np.array([""] + [kinds.get(x, "") for x in labels[1:]])
    is_muscle_lab = lab_kind == "muscle"
    occupied = occ > 0
    # the body: inside the skin, muscles poking through a thin skin included, and closed
    # slice by slice (the skin's envelope can reach into the trunk through the pelvic outlet)
    body |= occupied
    disk = np.add.outer(np.arange(-4, 5) ** 2, np.arange(-4, 5) ** 2) <= 16
    for k in range(shape[2]):
        body[:, :, k] = ndimage.binary_fill_holes(ndimage.binary_closing(body[:, :, k], disk, border_value=0) | body[:, :, k])
    gap = body & ~occupied
    fill = np.zeros(shape, np.uint16)
    z = grid.origin[2] + np.arange(shape[2]) * H_MM
    y = grid.origin[1] + np.arange(shape[1]) * H_MM
    x = grid.origin[0] + np.arange(shape[0]) * H_MM

    # 2. the spine
    progress("fill: the spine", 0.45)
    _spine(atlas, grid, occ, labels, lab_of, gap, fill, label, x, y, z)

    # 3a. the fat reaches the deep fascia: the fat mesh's layer (average build) and the
    # space just under it (up to FAT_GAP_MM) before any muscle grows into it
    fat_lab = label("subcutaneous")
    fat_id = _skin_id(atlas, "subcutaneous", "average")
    if fat_id is not None:
        fm = np.zeros(shape, bool)
        for sl, m in _shell_solids(atlas.structures[fat_id], grid):
            fm[sl] ^= m
        fm &= gap & (fill == 0)
        fill[fm] = fat_lab
        if not _fat_reaches_fascia(atlas, fat_id):
            seed = np.where(fm, fat_lab, 0).astype(np.uint16)
            # a voxel's breadth from every muscle: the fat does not leak through a thin sheet
            wall = ndimage.binary_dilation(is_muscle_lab[occ])
            _propagate(seed, gap & (fill == 0) & ~wall, int(round(FAT_GAP_MM / H_MM)))
            del wall
            fill[gap & (fill == 0) & (seed > 0)] = fat_lab
            del seed
        del fm

    # 3. muscles meet their neighbours (nearest muscle within GROW_MM)
    progress("fill: muscles meet their neighbours", 0.55)
    seed = np.where(is_muscle_lab[occ], occ, 0).astype(np.uint16)
    # not toward the skin: a voxel touching the fat stays fat (the muscle's surface under the
    # fat is its mesh, so skin-to-muscle depths stay true)
    by_fat = ndimage.binary_dilation(fill == fat_lab) if fat_id is not None else np.zeros(shape, bool)
    _propagate(seed, gap & (fill == 0) & ~by_fat, int(round(GROW_MM / H_MM)))
    del by_fat
    grow = gap & (fill == 0) & (seed > 0)
    fill[grow] = seed[grow]
    del seed

    # depth below the body surface
    depth = _coarse_edt(body)

    # 4. subcutaneous fat: free space joined to the surface, no deeper than FAT_REACH_MM
    progress("fill: fat", 0.65)
    # (not when the fat mesh itself reaches the deep fascia, build/skin.py: the space under
    # it, between muscles, is intermuscular fat and fascia, never subcutaneous fat again)
    if fat_id is None or not _fat_reaches_fascia(atlas, fat_id):
        free = gap & (fill == 0)
        near = free & (depth <= FAT_REACH_MM)
        lab, _n = ndimage.label(near)
        surf = near & (depth <= 2.5 * H_MM)
        keep = np.unique(lab[surf])
        fat = np.isin(lab, keep[keep > 0]) & near
        fill[fat] = fat_lab

    # 5. thoracolumbar fascia over the paraspinals (T10 to the sacrum)
    progress("fill: thoracolumbar fascia", 0.72)
    # latissimus's aponeurosis over the lumbar paraspinals (the fascia's posterior layer)
    aponeurosis = _latissimus_aponeurosis(atlas, grid, occ, lab_of, z)
    _tlf(atlas, grid, occ, lab_of, gap, fill, label, z, aponeurosis)

    # 6. cavities
    progress("fill: cavities", 0.8)
    free = gap & (fill == 0)
    d_occ = _coarse_edt(~occupied)
    seeds = free & (d_occ > CAVITY_MM)
    slab, n = ndimage.label(seeds)
    if n:
        sizes = ndimage.sum(seeds, slab, index=np.arange(1, n + 1))
        big = np.flatnonzero(sizes * H_MM**3 >= 20_000) + 1  # >= 20 cm^3
        objs = ndimage.find_objects(slab)
        cav = np.zeros(shape, np.uint16)
        for comp in big:
            box = objs[comp - 1]
            part = slab[box] == comp
            c = (np.argwhere(part).mean(axis=0) + [b.start for b in box]) * H_MM + grid.origin
            cav[box][part] = label(_cavity_for(atlas, c))
        if big.size:
            _propagate(cav, free, int(round(3 * CAVITY_MM / H_MM)))
            grow_c = free & (cav > 0)
            fill[grow_c] = cav[grow_c]
        # one space runs from the neck into the chest: the thoracic inlet (T1) divides it
        if "vertebra_T1" in atlas.structures:
            ka = int(np.searchsorted(z, atlas.structures["vertebra_T1"].bounds[1][2]))
            for part, was, now in ((fill[:, :, ka:], "mediastinum", "neck_viscera"),
                                   (fill[:, :, :ka], "neck_viscera", "mediastinum")):
                if was in lab_of:
                    m = part == lab_of[was]
                    if m.any():
                        part[m] = label(now)

    # 7. the rest
    rest = gap & (fill == 0)
    fill[rest] = label("intermuscular_fascia")
    # 8. inside the meshes: the nearest gap label (only sampled within a voxel of a gap)
    progress("fill: finishing", 0.9)
    between = fill.copy()  # what is drawn: the gaps only
    over = fill
    _propagate(over, body, 3)
    # deeper inside a muscle's raster (where its exact mesh still leaves a gap, e.g. between
    # two leaves of the same muscle): that muscle; anything else: the nearest label, or fascia
    rem = body & (over == 0)
    mus = rem & is_muscle_lab[occ]
    over[mus] = occ[mus]
    _propagate(over, body, 4)
    over[body & (over == 0)] = label("intermuscular_fascia")
    # latissimus's aponeurosis over the lumbar paraspinals reads as the fascia
    if aponeurosis is not None:
        ap, lat_labs = aponeurosis
        # the aponeurosis and what grew from it (in its columns)
        ap |= np.isin(over, lat_labs) & ap.any(axis=1, keepdims=True)
        tl = label("thoracolumbar_fascia")
        over[ap] = tl
        between[ap & gap] = tl
    header = {"origin": [float(v) for v in grid.origin], "h": H_MM, "shape": [int(s) for s in shape],
              "labels": labels, "relabel": ["latissimus_dorsi_r", "latissimus_dorsi_l"]}
    return over, between, header


def _coarse_edt(mask: np.ndarray) -> np.ndarray:
    """Distance (mm) to the nearest voxel outside ``mask``, on a grid twice as coarse (a
    coarse voxel is inside when all of its voxels are): good to a voxel, 8x cheaper."""
    s = [n - n % 2 for n in mask.shape]
    m = mask[: s[0], : s[1], : s[2]].reshape(s[0] // 2, 2, s[1] // 2, 2, s[2] // 2, 2).all(axis=(1, 3, 5))
    d = ndimage.distance_transform_edt(m, sampling=2 * H_MM).astype(np.float32)
    d = d.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    out = np.zeros(mask.shape, np.float32)
    out[: s[0], : s[1], : s[2]] = d
    return out


def _propagate(lab: np.ndarray, allowed: np.ndarray, steps: int) -> None:
    """Grow labels into unlabelled ``allowed`` voxels, one face-neighbour layer per step (in place)."""
    for _ in range(steps):
        todo = allowed & (lab == 0)
        if not todo.any():
            return
        new = np.zeros_like(lab)
        for ax in range(3):
            for sgn in (1, -1):
                src = [slice(None)] * 3
                dst = [slice(None)] * 3
                src[ax] = slice(0, -1) if sgn == 1 else slice(1, None)
                dst[ax] = slice(1, None) if sgn == 1 else slice(0, -1)
                d, sv = new[tuple(dst)], lab[tuple(src)]
                np.copyto(d, sv, where=(d == 0) & (sv > 0))
        m = todo & (new > 0)
        lab[m] = new[m]


def _cavity_for(atlas: Atlas, c: np.ndarray) -> str:
    if "skull" in atlas.structures:
        b = atlas.structures["skull"].bounds
        if np.all(c >= b[0]) and np.all(c <= b[1]):
            return "cranial_cavity"
    if "vertebra_T1" in atlas.structures and c[2] > atlas.structures["vertebra_T1"].bounds[1][2]:
        return "neck_viscera"  # above the thoracic inlet: not the mediastinum
    for lvl in ("T12", "T11"):
        if f"vertebra_{lvl}" in atlas.structures:
            if c[2] > atlas.structures[f"vertebra_{lvl}"].bounds[1][2] + 20:
                return "mediastinum"
            break
    return "abdominal_cavity" if "vertebra_L5" not in atlas.structures or c[2] > atlas.structures["sacrum"].bounds[0][2] - 40 \
        else "intermuscular_fascia"


def _spine(atlas, grid, occ, labels, lab_of, gap, fill, label, x, y, z) -> None:
    levels = [lv for lv in VERTEBRAE if f"vertebra_{lv}" in lab_of] + (["S1"] if "sacrum" in lab_of else [])
    if len(levels) < 2:
        return
    vid = {lv: lab_of["sacrum" if lv == "S1" else f"vertebra_{lv}"] for lv in levels}
    vidx = np.zeros(len(labels) + 1, np.int16)
    for k, lv in enumerate(levels):
        vidx[vid[lv]] = k + 1
    # the spine's box
    pts = np.concatenate([atlas.structures["sacrum" if lv == "S1" else f"vertebra_{lv}"].vertices for lv in levels])
    lo = np.maximum(grid.index(pts.min(axis=0)) - 2, 0)
    hi = np.minimum(grid.index(pts.max(axis=0)) + 3, np.array(grid.shape))
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    V = vidx[np.minimum(occ[box], len(vidx) - 1)]
    V[occ[box] >= len(vidx)] = 0
    reach = int(round(SPINE_REACH_MM / grid.h))
    above = np.zeros(V.shape, np.int16)
    below = np.zeros(V.shape, np.int16)
    for s in range(1, reach + 1):
        up = np.zeros_like(V)
        up[:, :, :-s] = V[:, :, s:]
        above = np.where(above == 0, up, above)
        dn = np.zeros_like(V)
        dn[:, :, s:] = V[:, :, :-s]
        below = np.where(below == 0, dn, below)
    between = (above > 0) & (below == above + 1) & gap[box]
    # the canal per slice: centre (x, y) and its front/back (from the dural sac / canal mesh)
    canal_lab = lab_of.get("spinal_canal")
    Xb, Yb, Zb = x[box[0]], y[box[1]], z[box[2]]
    canal = (occ[box] == canal_lab) if canal_lab else np.zeros(V.shape, bool)
    front = np.full(V.shape[2], np.nan)
    back = np.full(V.shape[2], np.nan)
    for k in range(V.shape[2]):
        ys = np.flatnonzero(canal[:, :, k].any(axis=0))
        if len(ys):
            front[k], back[k] = Yb[ys.min()], Yb[ys.max()]
    ok = np.isfinite(front)
    if ok.sum() < 2:
        return
    front = np.interp(Zb, Zb[ok], front[ok])
    back = np.interp(Zb, Zb[ok], back[ok])
    YY = Yb[None, :, None]
    XX = Xb[:, None, None]
    disc = between & (YY < front[None, None, :]) & (np.abs(XX) < 35)
    post = between & (YY > back[None, None, :])
    inter = post & (np.abs(XX) <= 3.0)
    flav = post & ~inter & (YY <= back[None, None, :] + 8.0) & (np.abs(XX) <= 25)
    inter &= YY > back[None, None, :] + 4.0
    for name, m in (("disc", disc), ("flavum", flav), ("interspinous", inter)):
        up = above[m]
        for k in np.unique(up):
            a, b = levels[k - 1], levels[k]
            sid = SPINE_KINDS[name][0].format(a=a, b=b)
            sel = np.zeros(V.shape, bool)
            sel[m] = up == k
            sub = fill[box]
            sub[sel & (sub == 0)] = label(sid)
    # epidural space: free voxels hugging the canal inside the foramen
    if canal_lab:
        dcan = ndimage.distance_transform_edt(~canal, sampling=grid.h)
        epi = gap[box] & (dcan <= 4.0) & (fill[box] == 0) & (np.abs(XX) < 15)
        sub = fill[box]
        sub[epi] = label("epidural_space")


def _tlf(atlas, grid, occ, lab_of, gap, fill, label, z, ap) -> None:
    """Thoracolumbar fascia (step 5); ``ap``: latissimus's aponeurosis (mask, its labels) or None."""
    para = [lab_of[s.id] for s in atlas if s.kind == "muscle" and s.id in lab_of and s.muscle and (
        s.muscle.startswith(("iliocostalis", "longissimus", "multifidus", "spinalis")) or s.muscle == "erector spinae")]
    if not para or "vertebra_T10" not in atlas.structures:
        return
    z_top = atlas.structures["vertebra_T10"].bounds[1][2]
    z_lo = atlas.structures["sacrum"].bounds[0][2] if "sacrum" in atlas.structures else z.min()
    k0, k1 = np.searchsorted(z, [z_lo, z_top])
    sub = occ[:, :, k0:k1]
    pm = np.isin(sub, para)
    f = fill[:, :, k0:k1]
    g = gap[:, :, k0:k1]
    fat = lab_of.get("subcutaneous", -1)
    grown_para = g & np.isin(f, para)
    # the superficial side: voxels posterior (+y) of a paraspinal voxel within TLF_MM; a
    # paraspinal muscle grown (step 3) over the back of another one is the fascia there
    n = int(round(TLF_MM / grid.h))
    zone = np.zeros(pm.shape, bool)
    over_other = np.zeros(pm.shape, bool)
    for s in range(1, n + 1):
        zone[:, s:, :] |= pm[:, :-s, :]
        over_other[:, s:, :] |= pm[:, :-s, :] & (sub[:, :-s, :] != f[:, s:, :])
    # ... and everything empty behind the paraspinals up to the fat, through latissimus's
    # aponeurosis (which the finishing step relabels as this fascia): no sliver of
    # "intermuscular" tissue is left between the fat and the fascia
    ap_sub = np.zeros(pm.shape, bool)
    if ap is not None:  # the aponeurosis and what grew from it (in its columns)
        ap_sub = ap[0][:, :, k0:k1]
        ap_sub = ap_sub | (g & np.isin(f, ap[1]) & ap_sub.any(axis=1, keepdims=True))
    passable = (g & ((f == 0) | grown_para)) | ap_sub
    behind = np.zeros(pm.shape, bool)
    for j in range(1, pm.shape[1]):
        behind[:, j, :] = passable[:, j, :] & (pm[:, j - 1, :] | behind[:, j - 1, :])
    # the fascia is the superficial TLF_MM of that run (under the fat or the aponeurosis);
    # deeper, the paraspinal muscle under it reaches up to it (the gutter is full of muscle)
    ny = pm.shape[1]
    from_top = np.zeros(pm.shape, np.int16)
    for j in range(ny - 2, -1, -1):
        from_top[:, j, :] = np.where(behind[:, j, :] & behind[:, j + 1, :] & ~ap_sub[:, j + 1, :],
                                     from_top[:, j + 1, :] + 1, 0)
    base = np.zeros(pm.shape, sub.dtype)
    for j in range(1, ny):
        base[:, j, :] = np.where(pm[:, j - 1, :], sub[:, j - 1, :], np.where(behind[:, j - 1, :], base[:, j - 1, :], 0))
    muscle = behind & ~ap_sub & (from_top >= n) & ((f == 0) | grown_para) & (base > 0)
    f[muscle] = base[muscle]
    fascia = g & ~pm & ~muscle & (
        (zone & ((f == 0) | (f == fat) | (grown_para & over_other))) | (behind & (f == 0)))
    f[fascia] = label("thoracolumbar_fascia")


def _latissimus_aponeurosis(atlas, grid, occ, lab_of, z):
    """Latissimus voxels medial to the lateral edge of the erector spinae, below T10."""
    labs = [lab_of[s] for s in ("latissimus_dorsi_r", "latissimus_dorsi_l") if s in lab_of]
    if not labs or "vertebra_T10" not in atlas.structures:
        return None
    para = [lab_of[s.id] for s in atlas if s.kind == "muscle" and s.id in lab_of and s.muscle and
            s.muscle.startswith(("iliocostalis", "longissimus", "multifidus"))]
    z_top = atlas.structures["vertebra_T10"].bounds[0][2]
    k1 = int(np.searchsorted(z, z_top))
    lat = np.isin(occ[:, :, :k1], labs)
    pm = np.isin(occ[:, :, :k1], para)
    # columns (x, z) where a paraspinal muscle lies in front: the aponeurosis covers them
    cover = pm.any(axis=1)
    out = np.zeros(occ.shape, bool)
    out[:, :, :k1] = lat & cover[:, None, :]
    return out, labs


def surface_fill(atlas: Atlas, grid_arr: np.ndarray, header: dict, progress=lambda m, f: None) -> list[Structure]:
    """A closed mesh per connective label (for drawing; the index never casts against them)."""
    from .geometry import is_watertight, simplify_manifold
    from .voxel import surface

    origin = np.asarray(header["origin"])
    h = float(header["h"])
    labels = header["labels"]
    out = []
    wanted = [(k, sid) for k, sid in enumerate(labels) if k and sid not in atlas.structures and sid != "subcutaneous"]
    boxes = ndimage.find_objects(grid_arr)
    for n, (k, sid) in enumerate(wanted):
        progress(f"fill: surfacing {sid}", n / max(len(wanted), 1))
        if k > len(boxes) or boxes[k - 1] is None:
            continue
        lo = np.array([b.start for b in boxes[k - 1]])
        sub = grid_arr[boxes[k - 1]] == k
        if sub.sum() < 2:
            continue
        g = Grid(origin + lo * h, h, sub.shape)
        try:
            V, F = surface(sub, g, sigma_vox=0.6)
            V, F = simplify_manifold(V, F, 0.6 if sub.size < 2e5 else 1.5)
        except ValueError:
            continue
        if len(F) < 4:
            continue
        name, kind, region, level = _describe(sid)
        out.append(Structure(sid, name, kind, _side_of(V), region, V, F, level=level, source=SRC,
                             meta={"fill": True, "feel": _feel(sid), "watertight": bool(is_watertight(V, F))}))
    return out


def _describe(sid: str) -> tuple[str, str, str, str | None]:
    if sid in CONNECTIVE:
        name, kind, region = CONNECTIVE[sid]
        return name, kind, region, None
    for key, (pat, npat) in SPINE_KINDS.items():
        stem = pat.split("{")[0]
        if sid.startswith(stem):
            a, b = sid[len(stem):].split("_")
            return npat.format(a=a, b=b), "connective", "spine", a
    return sid.replace("_", " "), "connective", "whole body", None


def _feel(sid: str) -> str:
    for key, feel in FEEL.items():
        if sid == key or sid.startswith(SPINE_KINDS.get(key, (key,))[0].split("{")[0]):
            return feel
    return "soft"


def _side_of(V: np.ndarray) -> str:
    cx = float(V[:, 0].mean())
    span = float(np.ptp(V[:, 0]))
    if span > 20 and abs(cx) < span / 4:
        return "midline"
    return "left" if cx > 0 else "right"


def add_fill(atlas: Atlas, progress=lambda m, f: None) -> None:
    grid_arr, between, header = build_fill(atlas, lambda m, f: progress(m, 0.7 * f))
    for s in surface_fill(atlas, between, header, lambda m, f: progress(m, 0.7 + 0.3 * f)):
        atlas.add(s)
    atlas.volumes["fill"] = grid_arr
    atlas.meta["fill"] = header

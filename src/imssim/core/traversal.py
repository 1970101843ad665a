"""Tissue traversal: what a needle passes through, where its tip is, how close danger is.

One :class:`TissueIndex` is built per atlas (once, at load). It holds a single Embree
scene over every triangle of every structure, a triangle -> structure map, and KD-trees
over densely sampled surfaces of the danger structures.

Inside/outside rule (documented in docs/needle.md):

1. A line is cast from where it enters the atlas's bounding box (outside everything)
   through the entry point to the tip. Every surface crossing is recorded; a structure is
   inside between its 1st and 2nd crossing, 3rd and 4th, ... (ray parity). Crossings of
   the same structure closer than ``EPS`` are merged (a ray through a shared edge).
2. Structures still "open" at the tip (an odd count) are confirmed by casting on past the
   tip until each is crossed once more. One that never closes has broken parity (a missed
   crossing at a touching surface, or a hole): it is re-cast alone against its own mesh,
   and if its mesh is not watertight the sub-segments between its crossings are classified
   by the generalised winding number instead of parity. Nothing is assumed silently:
   ``Traversal.fallbacks`` lists the structures that needed it.
3. Intervals are closed: a tip within ``TOUCH_MM`` of a surface counts as inside that
   structure (the needle touches it).
4. Bone stops the needle: the tip is clamped to the first bone surface after the entry
   and the contact is reported (the bone itself is not "containing" the tip).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from .atlas import Atlas, Structure

EPS = 1e-4  # mm: step past a crossing before casting again
TOUCH_MM = 1e-3  # mm: a tip this close to a surface touches it
NEARBY_MM = 100.0  # danger structures within this distance are reported
SAMPLE_EDGE_MM = 2.0  # danger surfaces are sampled at least this densely (clearance accuracy ~1 mm)
COARSE_EDGE_MM = 8.0  # coarse danger samples bound the fine search (pruning only)
FINE_WITHIN_MM = 30.0  # closer than this, clearances come from the fine samples
SHAFT_STEP_MM = 1.0  # the shaft is sampled this densely for its clearance (error <= 0.5 mm)
BATCH_COARSE_STEP_MM = 4.0  # batch clearances: the coarse pass samples the shaft this densely
FAT_TO_FASCIA_MM = 40.0  # fat extends over gaps up to this long to the first muscle (see _fat_to_fascia)
MAX_HITS = 256
FILL_STEP_MM = 0.5  # the fill grid is sampled this densely along a gap
SEAM_MM = 1.0  # a gap between meshes shorter than this is a seam: the structure before spans it
NORMAL_RADIUS_MM = 30.0  # the skin normal is averaged over this radius (a palm-sized patch)

#: Tip-structure priority: the most specific kind wins when several contain the tip.
KIND_PRIORITY = {"nerve": 6, "vessel": 6, "canal": 6, "organ": 5, "muscle": 4, "bone": 3, "subcutaneous": 2, "skin": 1}


@dataclass(frozen=True)
class Interval:
    """A stretch of the shaft inside one structure (depths in mm from the entry point)."""

    structure: str
    kind: str
    entry_depth: float
    exit_depth: float
    exited: bool  # False if the structure still contains the tip
    filled: bool = False  # named by the fill grid (the tissue between the meshes), not a mesh


@dataclass(frozen=True)
class Breach:
    structure: str
    harm: str
    depth: float  # depth at which the needle entered it


@dataclass(frozen=True)
class Clearance:
    structure: str
    harm: str
    tip_mm: float  # 0 when the tip is inside
    shaft_mm: float  # min over the inserted shaft, 0 when breached


@dataclass(frozen=True)
class BoneContact:
    structure: str
    depth: float
    point: tuple[float, float, float]


@dataclass
class Traversal:
    """Everything the simulator knows about one needle pose."""

    entry: np.ndarray
    direction: np.ndarray
    requested_depth: float
    depth: float  # actual depth (less than requested when bone stopped the needle)
    tip: np.ndarray
    intervals: list[Interval]
    at_tip: list[str]  # structures containing the tip, most specific first
    bone_contact: BoneContact | None
    breaches: list[Breach]
    clearances: list[Clearance]
    fallbacks: list[str] = field(default_factory=list)

    @property
    def structure_at_tip(self) -> str | None:
        return self.at_tip[0] if self.at_tip else None

    @property
    def layers(self) -> list[str]:
        """Structure ids in the order the shaft enters them."""
        out: list[str] = []
        for iv in self.intervals:
            if iv.structure not in out:
                out.append(iv.structure)
        if self.bone_contact:
            out.append(self.bone_contact.structure)
        return out

    def clearance_to(self, structure: str) -> Clearance | None:
        for c in self.clearances:
            if c.structure == structure:
                return c
        return None

    @property
    def min_clearance(self) -> Clearance | None:
        return min(self.clearances, key=lambda c: c.shaft_mm) if self.clearances else None


@dataclass(frozen=True)
class SkinHit:
    point: np.ndarray
    normal: np.ndarray  # outward surface normal at the hit
    structure: str
    distance: float
    on_skin: bool  # False when the atlas has no skin and another surface was hit


@dataclass
class BatchResult:
    """Compact results of many needles (arrays of length n)."""

    depth: np.ndarray  # actual depth
    tip: np.ndarray  # (n, 3)
    tip_structure: np.ndarray  # index into TissueIndex.ids, -1 for none
    bone_contact: np.ndarray  # index of the bone hit, -1 for none
    breach: np.ndarray  # index of the first danger structure entered, -1 for none
    breach_depth: np.ndarray


class _Buffers:
    """One thread's output buffers for the compiled query."""

    def __init__(self, n_danger: int, max_hits: int):
        self.iv_s = np.empty(512, np.int64)
        self.iv_a = np.empty(512)
        self.iv_b = np.empty(512)
        self.iv_in = np.empty(512, np.bool_)
        self.tip_s = np.empty(256, np.int64)
        self.buf_t = np.empty(max_hits)
        self.buf_s = np.empty(max_hits, np.int64)
        self.cl_shaft = np.empty(n_danger)
        self.cl_tip = np.empty(n_danger)
        self.tail = ()


def _merge_runs(ivs: list[Interval]) -> list[Interval]:
    """Join an interval to the one before it when both are the same structure and touch."""
    out: list[Interval] = []
    for iv in ivs:
        if out and out[-1].structure == iv.structure and iv.entry_depth <= out[-1].exit_depth + EPS:
            p = out[-1]
            out[-1] = Interval(p.structure, p.kind, p.entry_depth, max(p.exit_depth, iv.exit_depth),
                               iv.exited if iv.exit_depth >= p.exit_depth else p.exited, p.filled and iv.filled)
        else:
            out.append(iv)
    return out


def _shaft_mm(c: Clearance) -> float:
    return c.shaft_mm


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    n = np.linalg.norm(v)
    if not np.isfinite(n) or n < 1e-12:
        raise ValueError(f"direction {v.tolist()} has no length")
    return v / n


def _ray_box(origin: np.ndarray, d: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[float, float]:
    """Parametric [tmin, tmax] of a line within a box (may be empty: tmin > tmax)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t1 = (lo - origin) * inv
        t2 = (hi - origin) * inv
    tmin = np.nanmax(np.minimum(t1, t2))
    tmax = np.nanmin(np.maximum(t1, t2))
    return float(tmin), float(tmax)


def _ray_hits_triangles(origin, d, tris: np.ndarray, t_expect: float, tol: float = 1e-6) -> np.ndarray:
    """Which triangles (k,3,3) the line origin + t d crosses at ~t_expect (edges included)."""
    k = len(tris)
    return _rays_hit_triangles(np.broadcast_to(origin, (k, 3)), np.broadcast_to(d, (k, 3)), tris,
                               np.full(k, t_expect), tol)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross product of (k,3) arrays (np.cross has a large fixed overhead)."""
    out = np.empty(np.broadcast_shapes(a.shape, b.shape))
    out[:, 0] = a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1]
    out[:, 1] = a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2]
    out[:, 2] = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    return out


def _rays_hit_triangles(origin, d, tris, t_expect, tol: float = 1e-6) -> np.ndarray:
    """Row-wise: does line i (origin[i], d[i]) cross triangle i at ~t_expect[i]?"""
    e1 = tris[:, 1] - tris[:, 0]
    e2 = tris[:, 2] - tris[:, 0]
    p = _cross(d, e2)
    det = np.einsum("ij,ij->i", e1, p)
    ok = np.abs(det) > 1e-12
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = origin - tris[:, 0]
    u = np.einsum("ij,ij->i", s, p) * inv
    q = _cross(s, e1)
    v = np.einsum("ij,ij->i", q, d) * inv
    t = np.einsum("ij,ij->i", e2, q) * inv
    return ok & (u >= -tol) & (v >= -tol) & (u + v <= 1 + tol) & (np.abs(t - t_expect) < 1e-3)


def _line_params(origin, d, tris: np.ndarray, t_guess: np.ndarray) -> np.ndarray:
    """Exact line parameters of the crossings of origin + t d with triangles (k,3,3)
    (t_guess where the line is parallel to a triangle)."""
    e1 = tris[:, 1] - tris[:, 0]
    e2 = tris[:, 2] - tris[:, 0]
    s = origin - tris[:, 0]
    p = _cross(np.broadcast_to(d, e2.shape), e2)
    q = _cross(s, e1)
    det = np.einsum("ij,ij->i", e1, p)
    ok = np.abs(det) > 1e-12
    t = np.einsum("ij,ij->i", e2, q) / np.where(ok, det, 1.0)
    return np.where(ok, t, t_guess)


def winding_number(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Generalised winding number (Jacobson et al. 2013) of points w.r.t. a triangle mesh.

    ~1 inside, ~0 outside, and well-behaved for open or non-manifold meshes.
    """
    pts = np.atleast_2d(points)
    out = np.empty(len(pts))
    for i, p in enumerate(pts):
        a = vertices[faces[:, 0]] - p
        b = vertices[faces[:, 1]] - p
        c = vertices[faces[:, 2]] - p
        la, lb, lc = (np.linalg.norm(x, axis=1) for x in (a, b, c))
        det = np.einsum("ij,ij->i", a, np.cross(b, c))
        div = la * lb * lc + np.einsum("ij,ij->i", a, b) * lc + np.einsum("ij,ij->i", b, c) * la + np.einsum("ij,ij->i", c, a) * lb
        out[i] = np.arctan2(det, div).sum() / (2 * np.pi)
    return out


def _load_or_build_bvh(triangles: np.ndarray, owner: np.ndarray, danger: np.ndarray) -> dict:
    """The compiled engine's BVHs (see TissueIndex._build_native), from the cache folder
    when the same triangles were indexed before."""
    import hashlib

    from . import native
    from .store import cache_dir

    h = hashlib.sha1()
    for a in (triangles, owner, danger):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(b"bvh-2-sah")
    path = None
    try:
        path = cache_dir() / "bvh" / f"{h.hexdigest()}.npz"
        if path.exists():
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
    except Exception:  # an unreadable cache is rebuilt
        pass
    tri = np.ascontiguousarray(triangles.reshape(-1, 3, 3), dtype=np.float32)
    perm, lo, hi, child, start, count = native.build_bvh(tri)
    out = dict(lo=lo, hi=hi, child=child, start=start, count=count, tri=np.ascontiguousarray(tri[perm]),
               tri_owner=np.ascontiguousarray(owner[perm].astype(np.int64)))
    parts = []
    n_nodes = n_tri = 0
    roots, blo, bhi = [], [], []
    for i in danger.tolist():
        dt = np.ascontiguousarray(tri[owner == i])
        p, l, hh, c, st, ct = native.build_bvh(dt)
        parts.append((l, hh, np.where(c >= 0, c + n_nodes, -1), st + n_tri, ct, dt[p]))
        roots.append(n_nodes)
        blo.append(dt.reshape(-1, 3).min(axis=0))
        bhi.append(dt.reshape(-1, 3).max(axis=0))
        n_nodes += len(l)
        n_tri += len(dt)
    cat = (lambda k, shape, dtype: np.ascontiguousarray(np.concatenate([q[k] for q in parts]))
           if parts else np.zeros(shape, dtype))
    out.update(dlo_n=cat(0, (0, 3), np.float32), dhi_n=cat(1, (0, 3), np.float32), dchild=cat(2, 0, np.int64),
               dstart=cat(3, 0, np.int64), dcount=cat(4, 0, np.int64), dtri=cat(5, (0, 3, 3), np.float32),
               droots=np.array(roots, np.int64), dbox_lo=np.array(blo, float).reshape(-1, 3),
               dbox_hi=np.array(bhi, float).reshape(-1, 3))
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, **out)
            tmp.replace(path)
        except OSError:
            pass
    return out


class TissueIndex:
    """A spatial index over every structure of an atlas, built once."""

    def __init__(self, atlas: Atlas):
        from embreex import rtcore_scene
        from embreex.mesh_construction import TriangleMesh

        from .build.geometry import is_watertight

        self.atlas = atlas
        structs: list[Structure] = list(atlas)
        self.ids = [s.id for s in structs]
        self._sidx = {sid: i for i, sid in enumerate(self.ids)}
        self.kinds = np.array([s.kind for s in structs])
        self.is_bone = self.kinds == "bone"
        self.harm = [s.harm for s in structs]
        # a segmental paraspinal muscle (multifidus/rotatores, with its level) wins over another
        # muscle that overlaps it: real segmented muscles overlap a little where they touch
        self.priority = np.array([KIND_PRIORITY.get(k, 0) + (0.5 if k == "muscle" and getattr(s, "level", None) else 0.0)
                                  for k, s in zip(self.kinds, structs)])
        tris, owner = [], []
        # tissue between the meshes (build/fill.py) is answered from its voxel grid: its
        # drawing meshes stay out of the ray casting
        self.is_fill = np.array([bool(s.meta.get("fill")) for s in structs], dtype=bool)
        for i, s in enumerate(structs):
            if self.is_fill[i]:
                continue
            tris.append(s.vertices[s.faces])
            owner.append(np.full(len(s.faces), i, dtype=np.int32))
        self.triangles = np.concatenate(tris).astype(np.float32)
        self.owner = np.concatenate(owner)
        self.scene = rtcore_scene.EmbreeScene()
        TriangleMesh(self.scene, self.triangles)
        self.lo = self.triangles.reshape(-1, 3).min(axis=0).astype(float) - 1.0
        self.hi = self.triangles.reshape(-1, 3).max(axis=0).astype(float) + 1.0
        # watertightness decides parity vs winding number (cached on the structure)
        self.watertight = np.zeros(len(structs), dtype=bool)
        for i, s in enumerate(structs):
            wt = s.meta.get("watertight")
            if wt is None:
                wt = is_watertight(s.vertices, s.faces)
                s.meta["watertight"] = bool(wt)
            self.watertight[i] = wt
        self.skin_ids = {i for i, s in enumerate(structs) if s.kind == "skin"}
        # bones only ever stop the needle (first surface crossing), so their closedness
        # does not matter; other open meshes always go through the winding-number fallback
        self.open_ids = np.nonzero(~self.watertight & ~self.is_bone & ~self.is_fill)[0]
        self.open_boxes = np.array([[structs[i].vertices.min(axis=0), structs[i].vertices.max(axis=0)]
                                    for i in self.open_ids]).reshape(-1, 2, 3)
        self.coincident = self._coincident_table()
        # the same table in CSR form for the vectorised batch path
        self._co_ptr = np.zeros(len(self.triangles) + 1, np.int64)
        flat = []
        for t, part in sorted(self.coincident.items()):
            self._co_ptr[t + 1] = len(part)
            flat.append(part)
        self._co_ptr = np.cumsum(self._co_ptr)
        self._co_flat = np.concatenate(flat).astype(np.int64) if flat else np.zeros(0, np.int64)
        self._dkeys = np.array([i for i, s in enumerate(structs) if s.harm], dtype=np.int64)
        self._danger_cache: dict[int, tuple] | None = None
        self._own: dict[int, object] = {}
        self._normal_trees: dict[int, tuple] = {}
        self._init_fill(atlas)
        self._build_native()

    # -- the tissue between the meshes ------------------------------------------------
    def _init_fill(self, atlas: Atlas) -> None:
        """The fill grid (build/fill.py): a label per 2 mm voxel for the space no mesh covers."""
        vol = atlas.volumes.get("fill") if hasattr(atlas, "volumes") else None
        head = atlas.meta.get("fill")
        self._fill = None
        self.fat_reach = FAT_TO_FASCIA_MM
        if vol is None or not isinstance(head, dict):
            return
        fat = next((i for i, s in enumerate(self.ids) if self.kinds[i] == "subcutaneous"), -1)
        lut = np.full(len(head["labels"]), -1, np.int64)
        for k, sid in enumerate(head["labels"]):
            if k == 0:
                continue
            i = self._sidx.get(sid, -1)
            if i < 0 and sid == "subcutaneous":
                i = fat
            lut[k] = i
        self._fill = vol
        self._fill_lut = lut
        self._fill_o = np.asarray(head["origin"], float)
        self._fill_h = float(head["h"])
        self._fill_hi = np.array(vol.shape) - 1
        self._relabel = {self._sidx[r] for r in head.get("relabel", ()) if r in self._sidx}
        self.fat_reach = 0.0  # the grid says where the fat ends and the fascia begins

    def fill_at(self, points) -> np.ndarray:
        """Structure index (into :attr:`ids`) of the tissue between the meshes at each point
        (-1 outside the body or without a fill grid)."""
        P = np.asarray(points, float).reshape(-1, 3)
        if self._fill is None:
            return np.full(len(P), -1, np.int64)
        ijk = np.rint((P - self._fill_o) / self._fill_h).astype(np.int64)
        ok = np.all((ijk >= 0) & (ijk <= self._fill_hi), axis=1)
        out = np.full(len(P), -1, np.int64)
        if ok.any():
            q = ijk[ok]
            out[ok] = self._fill_lut[self._fill[q[:, 0], q[:, 1], q[:, 2]]]
        return out

    def _runs(self, e, d, a: float, b: float) -> list[tuple[int, float, float]]:
        """(structure, from, to) runs of the fill grid along the shaft between depths a and b."""
        n = max(1, int(math.ceil((b - a) / FILL_STEP_MM)))
        t = a + (np.arange(n) + 0.5) * ((b - a) / n)
        lab = self.fill_at(e + np.outer(t, d))
        cut = np.flatnonzero(lab[1:] != lab[:-1]) + 1
        starts = np.concatenate([[0], cut])
        ends = np.concatenate([cut, [n]])
        edges = np.concatenate([[a], (t[:-1] + t[1:]) / 2, [b]])
        return [(int(lab[i]), float(edges[i]), float(edges[j])) for i, j in zip(starts.tolist(), ends.tolist())]

    def _between(self, e, d, intervals: list[Interval], at_tip: list[str], actual: float, on_bone: bool = False):
        """Name the tissue between the meshes along the shaft (in the gaps the meshes leave,
        from the fill grid), and the aponeurotic part of a relabelled muscle.

        A gap with skin on both sides, or before the first skin crossing, or after the
        needle has left through the skin, is outside the body and stays empty."""
        if self._fill is None:
            return intervals, at_tip
        skin = "skin"
        ivs = sorted(intervals, key=lambda iv: (iv.entry_depth, iv.exit_depth))
        out: list[Interval] = []
        kinds = self.kinds
        ids = self.ids
        if self._relabel:
            for iv in ivs:
                si = self._sidx[iv.structure]
                if si in self._relabel:
                    runs = self._runs(e, d, iv.entry_depth, iv.exit_depth)
                    if any(r[0] >= 0 and r[0] != si and kinds[r[0]] == "connective" for r in runs):
                        for k, (lab, x, y) in enumerate(runs):
                            s2 = lab if lab >= 0 and kinds[lab] == "connective" else si
                            last = k == len(runs) - 1
                            out.append(Interval(ids[s2], str(kinds[s2]), x, y, iv.exited or not last, s2 != si))
                        continue
                out.append(iv)
            # a piece of the relabelled muscle touching the fascia it became is fascia too
            tl = [iv for iv in out if iv.kind == "connective"]
            for k, iv in enumerate(out):
                if self._sidx[iv.structure] in self._relabel and any(
                        abs(iv.entry_depth - f.exit_depth) < 1.0 or abs(iv.exit_depth - f.entry_depth) < 1.0 for f in tl):
                    f = tl[0]
                    out[k] = Interval(f.structure, f.kind, iv.entry_depth, iv.exit_depth, iv.exited, True)
            ivs = _merge_runs(sorted(out, key=lambda iv: (iv.entry_depth, iv.exit_depth)))
            out = []
        # the gaps
        cover_end = 0.0
        gaps: list[tuple[float, float, Interval | None, Interval | None]] = []
        prev: Interval | None = None
        for iv in ivs:
            if iv.entry_depth > cover_end + EPS:
                gaps.append((cover_end, iv.entry_depth, prev, iv))
            if iv.exit_depth >= cover_end:
                cover_end = iv.exit_depth
                prev = iv
        if actual > cover_end + EPS:
            gaps.append((cover_end, actual, prev, None))
        added: list[Interval] = []
        for a, b, before, after in gaps:
            if before is None or before.kind == skin and (after is None or after.kind == skin):
                continue  # outside the skin
            if b - a < SEAM_MM and before.kind != skin:
                # a seam between meshes, finer than the grid: the structure before goes on
                runs = [(self._sidx[before.structure], a, b)]
            else:
                runs = self._runs(e, d, a, b)
            for lab, x, y in runs:
                if lab < 0:
                    continue
                at_end = y >= actual - EPS and after is None
                added.append(Interval(ids[lab], str(kinds[lab]), x, y, not at_end, True))
        merged = _merge_runs(sorted(ivs + added, key=lambda iv: (iv.entry_depth, iv.exit_depth))) if added else ivs
        if not at_tip and actual > 0 and not on_bone:
            # the tip in no mesh: the grid names it (the same rule as query_batch); on bone
            # the readout names the bone and the muscle above it (scoring.muscle_above_bone)
            lab = int(self.fill_at(e + d * actual)[0])
            if lab >= 0:
                at_tip = [ids[lab]]
        return merged, at_tip

    # -- the compiled engine ----------------------------------------------------------
    def _build_native(self) -> None:
        """BVHs for the compiled kernels (core/native.py): one over every triangle, one per
        danger structure (concatenated into one node array with a root per structure).
        Built once per atlas and cached on disk next to the atlas (keyed by the triangles)."""
        from . import native

        self.is_fat = self.kinds == "subcutaneous"
        self.is_harm = np.array([h is not None for h in self.harm], dtype=bool)
        self._nat = _load_or_build_bvh(self.triangles, self.owner, self._dkeys)
        nd = self._nat
        self._nat_args = (nd["lo"], nd["hi"], nd["child"], nd["start"], nd["count"], nd["tri"], nd["tri_owner"])
        self._nat_dargs = (nd["dlo_n"], nd["dhi_n"], nd["dchild"], nd["dstart"], nd["dcount"], nd["dtri"])
        self._nat_flags = (self.is_bone.astype(np.bool_), self.watertight.astype(np.bool_),
                           np.rint(self.priority * 2).astype(np.int64), self.is_fat.astype(np.bool_))
        self._open_boxes64 = np.ascontiguousarray(self.open_boxes, dtype=np.float64).reshape(-1, 2, 3)
        self._tls = threading.local()  # per-thread result buffers (queries from several threads)
        self._native = native
        self._dkeys_l = self._dkeys.tolist()
        self._nat_full_head = (*self._nat_args, *self._nat_flags, self._open_boxes64, self.lo, self.hi)

    def _bufs(self) -> "_Buffers":
        b = getattr(self._tls, "b", None)
        if b is None:
            b = self._tls.b = _Buffers(len(self._dkeys), self._native.MAX_HITS)
            nd = self._nat
            b.tail = (TOUCH_MM, EPS, self.fat_reach, b.iv_s, b.iv_a, b.iv_b, b.iv_in, b.tip_s, b.buf_t, b.buf_s,
                      *self._nat_dargs, nd["droots"], nd["dbox_lo"], nd["dbox_hi"], NEARBY_MM, b.cl_shaft, b.cl_tip)
        return b

    @property
    def _danger(self) -> dict[int, tuple]:
        """KD-trees over the danger surfaces, for the reference clearance only (lazy)."""
        if self._danger_cache is None:
            structs = list(self.atlas)
            self._danger_cache = {int(i): self._danger_tree(structs[int(i)]) for i in self._dkeys}
            self._dlo = np.array([v[3] for v in self._danger_cache.values()]).reshape(-1, 3)
            self._dhi = np.array([v[4] for v in self._danger_cache.values()]).reshape(-1, 3)
        return self._danger_cache

    # -- building helpers -------------------------------------------------------------
    @staticmethod
    def _danger_tree(s: Structure):
        """Two KD-trees over a danger surface: ``fine`` (the mesh subdivided to edges of at
        most SAMPLE_EDGE_MM, its vertices and face centres) and ``coarse`` (the vertices of
        the mesh subdivided to COARSE_EDGE_MM), with the coarse cloud's coverage radius
        ``rc`` (every fine point lies within rc of a coarse point), so a coarse distance
        ``dc`` bounds the fine one: dc - rc <= fine <= dc + SAMPLE_EDGE_MM."""
        from scipy.spatial import cKDTree
        import trimesh

        v, f = s.vertices, s.faces
        try:
            v, f = trimesh.remesh.subdivide_to_size(v, f, max_edge=SAMPLE_EDGE_MM, max_iter=12)
        except ValueError:
            pass
        pts = np.vstack([v, v[f].mean(axis=1)])
        fine = cKDTree(pts)
        cv = s.vertices
        try:
            cv, _ = trimesh.remesh.subdivide_to_size(s.vertices, s.faces, max_edge=COARSE_EDGE_MM, max_iter=8)
        except ValueError:
            pass
        coarse = cKDTree(np.asarray(cv, float))
        rc = float(coarse.query(pts)[0].max())
        return fine, coarse, rc, pts.min(axis=0), pts.max(axis=0)

    def _coincident_table(self) -> dict[int, np.ndarray]:
        """Triangles of *different* structures lying in the same plane and overlapping.

        A ray crossing such a shared surface is reported by Embree for one triangle only;
        the table lets a query test the partners too, so touching structures (a skin shell
        on the fat layer, boxes sharing a face) each get their crossing.
        """
        tri = self.triangles.astype(np.float64)
        nrm = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        ln = np.linalg.norm(nrm, axis=1)
        ok = ln > 1e-12
        nrm[ok] /= ln[ok, None]
        # canonical sign: largest-magnitude component positive
        big = np.argmax(np.abs(nrm), axis=1)
        sign = np.sign(nrm[np.arange(len(nrm)), big])
        sign[sign == 0] = 1
        nrm *= sign[:, None]
        off = np.einsum("ij,ij->i", nrm, tri[:, 0])
        q = np.column_stack([np.round(nrm * 1e4), np.round(off * 1e2)]).astype(np.int64)
        # one 64-bit hash per plane (a collision only adds a candidate that the query's
        # exact ray-triangle test then rejects)
        key = (q[:, 0] * 73856093) ^ (q[:, 1] * 19349663) ^ (q[:, 2] * 83492791) ^ (q[:, 3] * 2654435761)
        key[~ok] = np.arange(np.count_nonzero(~ok)) - (1 << 62)
        _, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
        inv = inv.ravel()
        multi = np.nonzero(counts[inv] > 1)[0]
        table: dict[int, np.ndarray] = {}
        if not len(multi):
            return table
        lo, hi = tri.min(axis=1), tri.max(axis=1)
        order = multi[np.argsort(inv[multi], kind="stable")]
        gid = inv[order]
        starts = np.r_[0, np.nonzero(np.diff(gid))[0] + 1]
        sizes = np.diff(np.r_[starts, len(order)])
        # pairs (the common case: one surface shared by two structures), vectorised
        two = starts[sizes == 2]
        a, b = order[two], order[two + 1]
        ok2 = (self.owner[a] != self.owner[b]) & np.all((lo[a] <= hi[b] + 1e-6) & (hi[a] >= lo[b] - 1e-6), axis=1)
        for x, y in zip(a[ok2].tolist(), b[ok2].tolist()):
            table[x] = np.array([y])
            table[y] = np.array([x])
        for st, sz in zip(starts[sizes > 2], sizes[sizes > 2]):
            g = order[st : st + sz]
            owners = self.owner[g]
            if len(np.unique(owners)) < 2 or len(g) > 5000:
                continue
            for k, t in enumerate(g):
                other = g[owners != owners[k]]
                ov = np.all((lo[other] <= hi[t] + 1e-6) & (hi[other] >= lo[t] - 1e-6), axis=1)
                if ov.any():
                    table[int(t)] = other[ov]
        return table

    def _with_coincident(self, origin: np.ndarray, d: np.ndarray, ts: np.ndarray, tris: np.ndarray):
        """Crossings (t, structure) including partners of hit triangles on shared surfaces."""
        ss = self.owner[tris].astype(np.int64) if len(tris) else np.zeros(0, np.int64)
        if not self.coincident or not len(ts):
            return ts, ss
        tris = np.asarray(tris, np.int64)
        cnt = self._co_ptr[tris + 1] - self._co_ptr[tris]
        h = np.nonzero(cnt)[0]
        if not len(h):
            return ts, ss
        rep = np.repeat(h, cnt[h])
        starts = np.repeat(self._co_ptr[tris[h]], cnt[h])
        within = np.arange(len(rep)) - np.repeat(np.cumsum(cnt[h]) - cnt[h], cnt[h])
        part = self._co_flat[starts + within]
        k = len(part)
        hit = _rays_hit_triangles(np.broadcast_to(origin, (k, 3)), np.broadcast_to(d, (k, 3)),
                                  self.triangles[part].astype(np.float64), ts[rep])
        if not hit.any():
            return ts, ss
        add_t = ts[rep][hit]
        add_s = self.owner[part[hit]].astype(np.int64)
        t_all = np.concatenate([ts, add_t])
        s_all = np.concatenate([ss, np.asarray(add_s, np.int64)])
        # one crossing per structure per place
        key = np.round(t_all / (10 * EPS)).astype(np.int64) * (len(self.ids) + 1) + s_all
        _, first = np.unique(key, return_index=True)
        first.sort()
        t_all, s_all = t_all[first], s_all[first]
        o = np.argsort(t_all, kind="stable")
        return t_all[o], s_all[o]

    def _own_intersector(self, i: int):
        if i not in self._own:
            import trimesh

            s = self.atlas.structures[self.ids[i]]
            self._own[i] = trimesh.Trimesh(s.vertices, s.faces, process=False)
        return self._own[i]

    # -- casting ----------------------------------------------------------------------
    def _cast(self, origin: np.ndarray, d: np.ndarray, t_start: float, t_end: float) -> tuple[np.ndarray, np.ndarray]:
        """All crossings (t, structure index) of one ray between t_start and t_end, in order
        (including structures sharing a surface with the triangle hit)."""
        ts, tris = self._cast_tris(origin, d, t_start, t_end)
        return self._with_coincident(origin, d, ts, tris)

    def _cast_tris(self, origin: np.ndarray, d: np.ndarray, t_start: float, t_end: float):
        ts, ss = [], []
        t = t_start
        o32 = np.empty((1, 3), np.float32)
        d32 = d.astype(np.float32).reshape(1, 3)
        dist = np.empty(1, np.float32)
        for _ in range(MAX_HITS):
            if t >= t_end:
                break
            o32[0] = origin + d * t
            dist[0] = t_end - t
            r = self.scene.run(o32, d32, dists=dist, output=1)
            prim = int(r["primID"][0])
            if prim < 0:
                break
            th = t + float(r["tfar"][0])
            ts.append(th)
            ss.append(prim)
            t = th + EPS
        ts, ss = np.asarray(ts), np.asarray(ss, dtype=np.int64)
        if len(ts):
            # Embree answers in float32 (~1e-4 mm at body scale): the crossing of each
            # triangle found is recomputed exactly (float64) on the same float32 triangles
            ts = _line_params(origin, d, self.triangles[ss].astype(np.float64), ts)
        return ts, ss

    @staticmethod
    def _merge_close(ts: np.ndarray, ss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Drop repeated crossings of the same structure within 10*EPS (shared edges)."""
        if len(ts) < 2:
            return ts, ss
        keep = np.ones(len(ts), bool)
        last: dict[int, float] = {}
        for k in range(len(ts)):
            s = int(ss[k])
            if s in last and ts[k] - last[s] < 10 * EPS:
                keep[k] = False
            last[s] = ts[k]
        return ts[keep], ss[keep]

    # -- queries ----------------------------------------------------------------------
    def query(self, entry, direction, depth: float, stop_at_bone: bool = True) -> Traversal:
        """Traverse a needle inserted ``depth`` mm from ``entry`` along ``direction``.

        One call of the compiled kernel (core/native.py) collects every crossing along the
        line and applies the rules of docs/needle.md; a second one measures the exact
        clearances. Needles that need the per-structure fallback (rule 3) go through
        :meth:`query_reference`'s Python rules (with the compiled clearances)."""
        e = np.array(entry, dtype=float)
        d = np.array(direction, dtype=float)
        depth = float(depth)
        if e.shape != (3,) or not math.isfinite(e[0] + e[1] + e[2]):
            raise ValueError(f"entry {np.asarray(entry).tolist()} is not a 3D point")
        if d.shape != (3,):
            raise ValueError(f"direction {d.tolist()} has no length")
        nrm = math.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
        if not math.isfinite(nrm) or nrm < 1e-12:
            raise ValueError(f"direction {d.tolist()} has no length")
        d /= nrm
        if not math.isfinite(depth) or depth < 0:
            raise ValueError(f"depth {depth} must be a non-negative number of mm")
        b = self._bufs()
        st, niv, nt, actual, bone = self._native.full(*self._nat_full_head, e, d, depth, bool(stop_at_bone), *b.tail)
        if st != 0:
            return self.query_reference(e, d, depth, stop_at_bone=stop_at_bone, reference_clearances=False)
        ids, kinds, harm = self.ids, self.kinds, self.harm
        ivs = b.iv_s[:niv].tolist()
        intervals = [Interval(ids[s], str(kinds[s]), x, y, not c) for s, x, y, c in
                     zip(ivs, b.iv_a[:niv].tolist(), b.iv_b[:niv].tolist(), b.iv_in[:niv].tolist())]
        tip_l = b.tip_s[:nt].tolist()
        tip_set = set(tip_l)
        at_tip = [ids[s] for s in tip_l]
        if self._fill is not None:
            intervals, at_tip = self._between(e, d, intervals, at_tip, actual, bone >= 0)
        breaches, seen = [], set()
        if self._fill is not None:
            ivs = [self._sidx[iv.structure] for iv in intervals]
        for s, iv in zip(ivs, intervals):
            if harm[s] and s not in seen:
                seen.add(s)
                breaches.append(Breach(iv.structure, harm[s], iv.entry_depth))
        tip = e + d * actual
        clearances = []
        for r in np.flatnonzero(b.cl_shaft <= NEARBY_MM).tolist():
            i = self._dkeys_l[r]
            clearances.append(Clearance(ids[i], harm[i], 0.0 if i in tip_set else float(b.cl_tip[r]),
                                        0.0 if i in seen else float(b.cl_shaft[r])))
        clearances.sort(key=_shaft_mm)
        contact = None
        if bone >= 0:
            contact = BoneContact(ids[bone], actual, tuple(float(x) for x in tip))
        return Traversal(entry=e, direction=d, requested_depth=depth, depth=actual, tip=tip, intervals=intervals,
                         at_tip=at_tip, bone_contact=contact, breaches=breaches, clearances=clearances)

    def _native_clearances(self, e, d, depth, breached, at_tip) -> list[Clearance]:
        """Exact distances from the shaft and the tip to every danger structure within
        NEARBY_MM (``breached``/``at_tip``: structure indices or ids)."""
        if not len(self._dkeys):
            return []
        nd = self._nat
        b = self._bufs()
        self._native.clearances(*self._nat_dargs, nd["droots"], nd["dbox_lo"], nd["dbox_hi"], e, d, float(depth),
                                NEARBY_MM, b.cl_shaft, b.cl_tip)
        out = []
        for r in np.nonzero(np.isfinite(b.cl_shaft))[0].tolist():
            i = int(self._dkeys[r])
            sid = self.ids[i]
            shaft_mm, tip_mm = float(b.cl_shaft[r]), float(b.cl_tip[r])
            if i in breached or sid in breached:
                shaft_mm = 0.0
            if i in at_tip or sid in at_tip:
                tip_mm = 0.0
            out.append(Clearance(sid, self.harm[i], tip_mm, shaft_mm))
        out.sort(key=lambda c: c.shaft_mm)
        return out

    def query_reference(self, entry, direction, depth: float, stop_at_bone: bool = True,
                        reference_clearances: bool = True) -> Traversal:
        """The reference implementation of :meth:`query` (Embree, first hit per call, and
        the rules in Python; clearances from KD-trees over resampled danger surfaces). Kept
        for the tests, which hold :meth:`query` to it, and as the fallback path."""
        e = np.asarray(entry, dtype=float)
        d = _unit(direction)
        depth = float(depth)
        if not np.isfinite(e).all() or e.shape != (3,):
            raise ValueError(f"entry {np.asarray(entry).tolist()} is not a 3D point")
        if not np.isfinite(depth) or depth < 0:
            raise ValueError(f"depth {depth} must be a non-negative number of mm")
        tmin, tmax = _ray_box(e, d, self.lo, self.hi)
        back = max(0.0, -tmin) + 1.0  # line parameter of the entry point
        origin = e - d * back
        t_exit = max(tmax + back, back + depth) + 1.0
        t_tip = back + depth
        ts, ss = self._merge_close(*self._cast(origin, d, 0.0, t_tip + TOUCH_MM))
        for k in range(1, len(ts)):  # crossings within 1e-9 mm are one place (a shared surface)
            if ts[k] - ts[k - 1] < 1e-9:
                ts[k] = ts[k - 1]
        # bone stop: first bone crossing at or after the entry
        bone = None
        if stop_at_bone and len(ts):
            # the first bone surface met after the entry stops the needle (parity is not
            # needed: bone meshes from some sources are not closed)
            cand = np.nonzero(self.is_bone[ss] & (ts >= back - TOUCH_MM))[0]
            if len(cand):
                k = cand[0]
                bone = (int(ss[k]), float(ts[k]))
        if bone is not None:
            t_tip = bone[1]
            keep = ts < t_tip - TOUCH_MM
            # keep crossings of non-bone structures that coincide with the bone surface
            keep |= (np.abs(ts - t_tip) <= TOUCH_MM) & ~self.is_bone[ss]
            ts, ss = ts[keep], ss[keep]
        # close every open structure by casting on past the tip
        counts: dict[int, int] = {}
        for s in ss:
            counts[int(s)] = counts.get(int(s), 0) + 1
        open_ = {s for s, c in counts.items() if c % 2 == 1}
        if bone is not None:
            open_.discard(bone[0])
        closing: dict[int, float] = {}
        fallbacks: list[str] = []
        if open_:
            t = max(ts[-1] + EPS if len(ts) else 0.0, t_tip + TOUCH_MM)
            more_t, more_s = self._cast(origin, d, t, t_exit)
            for tt, s2 in zip(more_t, more_s):
                s2 = int(s2)
                if s2 in open_ and s2 not in closing:
                    closing[s2] = float(tt)
                    if len(closing) == len(open_):
                        break
        # per-structure crossings
        per: dict[int, list[float]] = {}
        for tt, s in zip(ts, ss):
            per.setdefault(int(s), []).append(float(tt))
        for s, tt in closing.items():
            per[s].append(tt)
        # open (non-watertight) meshes near the shaft always go through the fallback
        if len(self.open_ids):
            a, b = e, e + d * (t_tip - back)
            slo, shi = np.minimum(a, b), np.maximum(a, b)
            near = np.all((self.open_boxes[:, 0] <= shi) & (self.open_boxes[:, 1] >= slo), axis=1)
            for s in self.open_ids[near]:
                per.setdefault(int(s), [])
        for s in list(per):
            if bone is not None and s == bone[0]:
                del per[s]
                continue
            broken = (len(per[s]) % 2 == 1) or (not self.watertight[s] and not self.is_bone[s])
            if broken:
                fallbacks.append(self.ids[s])
                per[s] = self._fallback_intervals(s, origin, d, t_exit)
        intervals: list[Interval] = []
        at_tip: list[int] = []
        for s, tt in per.items():
            if not tt:
                continue
            pairs = [(tt[k], tt[k + 1]) for k in range(0, len(tt) - 1, 2)]
            for a, b in pairs:
                if b < back - TOUCH_MM or a > t_tip + TOUCH_MM:
                    continue
                contains_tip = a <= t_tip + TOUCH_MM and b >= t_tip - TOUCH_MM
                if contains_tip and s not in at_tip:
                    at_tip.append(s)
                intervals.append(
                    Interval(
                        self.ids[s],
                        str(self.kinds[s]),
                        max(a - back, 0.0),
                        min(b, t_tip) - back,
                        exited=not contains_tip,
                    )
                )
        # ties (a shared surface) in structure index order, as the compiled query
        intervals.sort(key=lambda iv: (iv.entry_depth, iv.exit_depth, self._sidx[iv.structure]))
        self._fat_to_fascia(intervals, at_tip, t_tip - back)
        # most specific first; among equals the one entered last (innermost)
        entry_of = {iv.structure: iv.entry_depth for iv in intervals}
        at_tip.sort(key=lambda s: (-self.priority[s], -entry_of.get(self.ids[s], 0.0), s))
        actual = t_tip - back
        tip = e + d * actual
        if self._fill is not None:
            intervals, tip_ids = self._between(e, d, intervals, [self.ids[s] for s in at_tip], actual, bone is not None)
            at_tip = [self._sidx[s] for s in tip_ids]
        breaches = [
            Breach(iv.structure, self.harm[self._sidx[iv.structure]], iv.entry_depth)
            for iv in intervals
            if self.harm[self._sidx[iv.structure]]
        ]
        seen = set()
        breaches = [b for b in breaches if not (b.structure in seen or seen.add(b.structure))]
        breached = {b.structure for b in breaches}
        clearances = self._clearances(e, d, actual, breached, set(self.ids[s] for s in at_tip)) if reference_clearances \
            else self._native_clearances(e, d, actual, breached, set(self.ids[s] for s in at_tip))
        contact = None
        if bone is not None:
            contact = BoneContact(self.ids[bone[0]], actual, tuple(float(x) for x in tip))
        return Traversal(
            entry=e,
            direction=d,
            requested_depth=depth,
            depth=actual,
            tip=tip,
            intervals=intervals,
            at_tip=[self.ids[s] for s in at_tip],
            bone_contact=contact,
            breaches=breaches,
            clearances=clearances,
            fallbacks=fallbacks,
        )

    def _fat_to_fascia(self, intervals: list[Interval], at_tip: list[int], actual: float) -> None:
        """The subcutaneous fat reaches the first muscle or bone (in place).

        The fat mesh's deep surface is contoured on a 4.5 mm grid a little off the muscles
        and bridges the dips between them, so a needle leaving it often meets nothing for a
        few millimetres (median 5 mm over the back) before the first muscle. That space is
        fat down to the deep fascia: the first fat interval is extended to the next
        structure's entry, or to the tip if nothing follows within FAT_TO_FASCIA_MM."""
        k = next((k for k, iv in enumerate(intervals) if iv.kind == "subcutaneous"), None)
        while k is not None:
            fat = intervals[k]
            if not fat.exited:
                return
            after = [(iv.entry_depth, j) for j, iv in enumerate(intervals)
                     if j != k and iv.entry_depth >= fat.exit_depth - EPS]
            if after:
                nxt, j = min(after)
                if nxt - fat.exit_depth > self.fat_reach:
                    return
                intervals[k] = Interval(fat.structure, fat.kind, fat.entry_depth, max(nxt, fat.exit_depth), True)
                # more of the fat mesh further on (a fold): the layer goes on from there
                k = j if intervals[j].kind == "subcutaneous" else None
            else:
                if actual - fat.exit_depth <= self.fat_reach:
                    intervals[k] = Interval(fat.structure, fat.kind, fat.entry_depth, actual, exited=False)
                    if self._sidx[fat.structure] not in at_tip:
                        at_tip.append(self._sidx[fat.structure])
                return

    def _fallback_intervals(self, s: int, origin: np.ndarray, d: np.ndarray, t_exit: float) -> list[float]:
        """Exact crossings of one structure alone; winding number where parity fails."""
        mesh = self._own_intersector(s)
        locs, _, _ = mesh.ray.intersects_location(origin[None, :], d[None, :], multiple_hits=True)
        tt = np.sort((locs - origin) @ d) if len(locs) else np.zeros(0)
        tt = tt[(tt >= 0) & (tt <= t_exit)]
        # merge near-duplicates
        if len(tt):
            tt = tt[np.concatenate([[True], np.diff(tt) > 10 * EPS])]
        if len(tt) % 2 == 0 and self.watertight[s]:
            return [float(x) for x in tt]
        # classify each gap between crossings by its winding number
        bounds = np.concatenate([[0.0], tt, [t_exit]])
        mids = (bounds[:-1] + bounds[1:]) / 2
        st = self.atlas.structures[self.ids[s]]
        inside = winding_number(st.vertices, st.faces, origin + np.outer(mids, d)) > 0.5
        out: list[float] = []
        for k, ins in enumerate(inside):
            if ins:
                out += [float(bounds[k]), float(bounds[k + 1])]
        # merge touching pairs
        merged: list[float] = []
        for k in range(0, len(out), 2):
            if merged and abs(merged[-1] - out[k]) < 1e-9:
                merged[-1] = out[k + 1]
            else:
                merged += [out[k], out[k + 1]]
        return merged

    def _clearances(self, e, d, depth, breached: set, at_tip: set) -> list[Clearance]:
        """Clearance from the tip and the shaft to every danger structure within NEARBY_MM.

        The shaft is sampled every SHAFT_STEP_MM. Per structure: a box test culls far ones;
        the coarse tree bounds the distance of every sample; only the samples that can
        hold the minimum (coarse lower bound <= best coarse upper bound) and the tip are
        measured on the fine tree (bounded search, so far queries stay cheap). Structures
        certainly farther than FINE_WITHIN_MM are answered by the coarse tree alone (never
        closer than the truth, at most its coverage radius rc farther).
        """
        if not self._danger:
            return []
        n = max(2, int(np.ceil(depth / SHAFT_STEP_MM)) + 1)
        shaft = e + np.outer(np.linspace(0.0, depth, n), d)
        gap = np.maximum(self._dlo[:, None, :] - shaft[None], 0.0) + np.maximum(shaft[None] - self._dhi[:, None, :], 0.0)
        boxd = np.sqrt(np.einsum("kij,kij->ki", gap, gap)).min(axis=1)
        out = []
        for k in np.nonzero(boxd <= NEARBY_MM)[0]:
            i = int(self._dkeys[k])
            fine, coarse, rc = self._danger[i][:3]
            dc, _ = coarse.query(shaft, distance_upper_bound=NEARBY_MM + rc)
            lower = dc - rc
            if not (lower <= NEARBY_MM).any():
                continue
            best_up = float(dc.min())
            tip_mm = None
            if best_up - rc > FINE_WITHIN_MM:
                # certainly far: the coarse samples answer (at most rc too far)
                shaft_mm = best_up
            else:
                cand = np.nonzero(lower <= best_up)[0]
                df, _ = fine.query(shaft[cand], distance_upper_bound=best_up + SAMPLE_EDGE_MM)
                shaft_mm = float(df.min())
                if cand[-1] == n - 1 and np.isfinite(df[-1]):
                    tip_mm = float(df[-1])
            if shaft_mm > NEARBY_MM:
                continue
            if tip_mm is None:
                tip_up = float(dc[-1]) if np.isfinite(dc[-1]) else float(coarse.query(shaft[-1])[0])
                if tip_up - rc > FINE_WITHIN_MM:
                    tip_mm = tip_up
                else:
                    tip_mm = float(fine.query(shaft[-1], distance_upper_bound=tip_up + SAMPLE_EDGE_MM)[0])
            tip_mm = max(tip_mm, shaft_mm)
            sid = self.ids[i]
            if sid in at_tip:
                tip_mm = 0.0
            if sid in breached:
                shaft_mm = 0.0
            out.append(Clearance(sid, self.harm[i], tip_mm, shaft_mm))
        out.sort(key=lambda c: c.shaft_mm)
        return out

    def snap_to_skin(self, origin, direction, max_distance: float = 5000.0) -> SkinHit | None:
        """First crossing of the skin along a ray from outside (for picking in the view).

        Without a skin in the atlas the first surface hit is returned with
        ``on_skin=False``. Returns None if the ray misses the body.
        """
        o = np.asarray(origin, float)
        d = _unit(direction)
        ts, ss = self._cast(o, d, 0.0, max_distance)
        if not len(ts):
            return None
        k = 0
        on_skin = False
        if self.skin_ids:
            hits = [j for j, s in enumerate(ss) if int(s) in self.skin_ids]
            if not hits:
                return None
            k, on_skin = hits[0], True
        p = o + d * ts[k]
        # the normal of the triangle hit, pointing back toward the ray origin
        r = self.scene.run(
            (o + d * (ts[k] - 0.5)).astype(np.float32)[None, :], d.astype(np.float32)[None, :], output=1
        )
        ng = np.asarray(r["Ng"][0], float)
        ng = ng / (np.linalg.norm(ng) or 1.0)
        if ng @ d > 0:
            ng = -ng
        ng = self._smooth_normal(p, ng, int(ss[k]))
        return SkinHit(p, ng, self.ids[int(ss[k])], float(ts[k]), on_skin)

    def _smooth_normal(self, p: np.ndarray, n0: np.ndarray, s: int, radius: float = NORMAL_RADIUS_MM) -> np.ndarray:
        """Area-weighted mean normal of the surface around ``p`` (the skin's local
        orientation, not one facet's): "perpendicular to the skin" means this."""
        from scipy.spatial import cKDTree

        if s not in self._normal_trees:
            tri = self.triangles[self.owner == s].astype(np.float64)
            nrm = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 x area
            self._normal_trees[s] = (cKDTree(tri.mean(axis=1)), nrm)
        tree, nrm = self._normal_trees[s]
        idx = tree.query_ball_point(p, radius)
        if not idx:
            return n0
        nn = nrm[idx]
        # only the facets facing the same way (a shell's inner surface lies just below)
        nn = nn[nn @ n0 > 0]
        if not len(nn):
            return n0
        m = nn.sum(axis=0)
        return m / np.linalg.norm(m)

    def structures_at(self, point) -> list[str]:
        """Structures containing a point: the majority of three ray-parity tests along
        different axes (a ray grazing a surface cannot flip the answer on its own)."""
        p = np.asarray(point, float)
        votes: dict[str, int] = {}
        for d in ([0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]):
            for sid in self.query(p, d, 0.0, stop_at_bone=False).at_tip:
                votes[sid] = votes.get(sid, 0) + 1
        inside = [sid for sid, n in votes.items() if n >= 2]
        if not inside and self._fill is not None:
            lab = int(self.fill_at(p)[0])
            return [self.ids[lab]] if lab >= 0 else []
        return sorted(inside, key=lambda sid: -self.priority[self._sidx[sid]])

    # -- batches ----------------------------------------------------------------------
    @property
    def danger_ids(self) -> list[str]:
        """Ids of the danger structures, in the order of :meth:`shaft_clearances` rows."""
        return [self.ids[int(i)] for i in self._dkeys]

    def shaft_clearances(self, entries, directions, depths, within: float = NEARBY_MM) -> np.ndarray:
        """Exact distance (mm) from each needle's shaft, entry to tip, to every danger
        structure, for many needles at once (compiled, in parallel): an array
        (len(danger_ids), n), ``inf`` beyond ``within``. Breaches are not known here: the
        caller sets those to 0."""
        E = np.ascontiguousarray(np.asarray(entries, float).reshape(-1, 3))
        D = np.asarray(directions, float).reshape(-1, 3)
        D = np.ascontiguousarray(D / np.linalg.norm(D, axis=1, keepdims=True))
        dep = np.ascontiguousarray(np.broadcast_to(np.asarray(depths, float), (len(E),)))
        out = np.full((len(self._dkeys), len(E)), np.inf)
        if not len(E) or not len(self._dkeys):
            return out
        nd = self._nat
        self._native.clearances_batch(*self._nat_dargs, nd["droots"], nd["dbox_lo"], nd["dbox_hi"], E, D, dep,
                                      float(within), out)
        return out

    def shaft_clearances_reference(self, entries, directions, depths, within: float = NEARBY_MM) -> np.ndarray:
        """Distance (mm) from each needle's shaft, entry to tip, to every danger structure,
        for many needles at once: an array (len(danger_ids), n), ``inf`` beyond ``within``.

        Per danger structure: needles whose segment's bounding box is farther than
        ``within`` from the structure's box are skipped; the coarse tree, on shaft samples
        every BATCH_COARSE_STEP_MM, bounds the distance; where it can be under
        FINE_WITHIN_MM the fine tree measures it on 1 mm samples around the coarse
        samples that can hold the minimum (as :meth:`query` does: same accuracy there).
        Farther clearances come from the coarse pass (at most rc + half a coarse step too
        far). Breaches are not known here: the caller sets those to 0."""
        E = np.asarray(entries, float).reshape(-1, 3)
        D = np.asarray(directions, float).reshape(-1, 3)
        D = D / np.linalg.norm(D, axis=1, keepdims=True)
        dep = np.broadcast_to(np.asarray(depths, float), (len(E),))
        n = len(E)
        out = np.full((len(self._dkeys), n), np.inf)
        if not n or not len(self._dkeys):
            return out
        T = E + D * dep[:, None]
        slo, shi = np.minimum(E, T), np.maximum(E, T)
        R = int(round(BATCH_COARSE_STEP_MM / SHAFT_STEP_MM))
        half = 0.5 * BATCH_COARSE_STEP_MM
        mf = max(2, int(np.ceil(dep.max() / SHAFT_STEP_MM)) + 1)
        mc = (mf - 1 + R - 1) // R + 1
        for row, i in enumerate(self._dkeys.tolist()):
            fine, coarse, rc, lo, hi = self._danger[i]
            gap = np.maximum(lo - shi, 0.0) + np.maximum(slo - hi, 0.0)  # box-to-box: a lower bound
            cand = np.nonzero(np.sqrt(np.einsum("nk,nk->n", gap, gap)) <= within)[0]
            if not len(cand):
                continue
            e, d, dp = E[cand], D[cand], dep[cand]
            tc = np.minimum(np.arange(mc)[None, :] * BATCH_COARSE_STEP_MM, dp[:, None])
            dc = coarse.query((e[:, None, :] + tc[..., None] * d[:, None, :]).reshape(-1, 3),
                              distance_upper_bound=within + rc + half, workers=-1)[0].reshape(len(cand), mc)
            best_up = dc.min(axis=1)
            res = best_up.copy()
            near = np.nonzero(best_up - rc - half <= FINE_WITHIN_MM)[0]
            if len(near):
                # fine samples that can hold the minimum: a fine sample |f - c| mm from its
                # nearest coarse sample c is at least dc[c] - rc - |f - c| from the surface
                fi = np.arange(mf)
                ci = np.minimum((fi + R // 2) // R, mc - 1)
                lower = dc[near][:, ci] - rc - np.abs(fi - ci * R)[None, :] * SHAFT_STEP_MM
                rows, cols = np.nonzero(lower <= best_up[near, None])
                tf = np.minimum(cols * SHAFT_STEP_MM, dp[near][rows])
                pts = e[near][rows] + tf[:, None] * d[near][rows]
                df = fine.query(pts, distance_upper_bound=FINE_WITHIN_MM + rc + SAMPLE_EDGE_MM + half, workers=-1)[0]
                best = np.full(len(near), np.inf)
                np.minimum.at(best, rows, df)
                res[near] = np.where(np.isfinite(best), best, res[near])
            out[row, cand] = np.where(res <= within, res, np.inf)
        return out

    def query_batch(self, entries, directions, depths, stop_at_bone: bool = True) -> BatchResult:
        """Many needles at once: the tip structure, bone contact and first breach of each.

        The same compiled kernel as :meth:`query` (so the same answers), run over the
        needles in parallel; needles that need the per-structure fallback (rule 3) are
        answered by :meth:`query` itself. Clearances: :meth:`shaft_clearances`.
        """
        E = np.ascontiguousarray(np.asarray(entries, float).reshape(-1, 3))
        D = np.asarray(directions, float).reshape(-1, 3)
        D = np.ascontiguousarray(D / np.linalg.norm(D, axis=1, keepdims=True))
        dep = np.ascontiguousarray(np.broadcast_to(np.asarray(depths, float), (len(E),)), dtype=float)
        n = len(E)
        status = np.zeros(n, np.int64)
        depth_out = np.zeros(n)
        tip_struct = np.full(n, -1, np.int64)
        bone_out = np.full(n, -1, np.int64)
        breach = np.full(n, -1, np.int64)
        breach_depth = np.full(n, np.nan)
        if n:
            # neighbouring needles one after the other: they visit the same BVH nodes (cache)
            q = np.floor((E - self.lo) / 40.0).astype(np.int64)
            order = np.lexsort((q[:, 0], q[:, 1], q[:, 2]))
            outs = (status, depth_out, tip_struct, bone_out, breach, breach_depth)
            tmp = [np.empty_like(a) for a in outs]
            self._native.needles_batch(*self._nat_args, *self._nat_flags, self.is_harm, self._open_boxes64,
                                       self.lo, self.hi, np.ascontiguousarray(E[order]),
                                       np.ascontiguousarray(D[order]), np.ascontiguousarray(dep[order]),
                                       bool(stop_at_bone), TOUCH_MM, EPS, self.fat_reach, *tmp)
            for a, t in zip(outs, tmp):
                a[order] = t
        for i in np.nonzero(status != 0)[0]:
            tr = self.query_reference(E[i], D[i], dep[i], stop_at_bone=stop_at_bone, reference_clearances=False)
            depth_out[i] = tr.depth
            tip_struct[i] = self._sidx[tr.at_tip[0]] if tr.at_tip else -1
            bone_out[i] = self._sidx[tr.bone_contact.structure] if tr.bone_contact else -1
            if tr.breaches:
                breach[i] = self._sidx[tr.breaches[0].structure]
                breach_depth[i] = tr.breaches[0].depth
        tips = E + D * depth_out[:, None]
        if self._fill is not None:
            miss = np.flatnonzero((tip_struct < 0) & (depth_out > 0) & (bone_out < 0))
            if len(miss):
                tip_struct[miss] = self.fill_at(tips[miss])
        return BatchResult(depth_out, tips, tip_struct, bone_out, breach, breach_depth)

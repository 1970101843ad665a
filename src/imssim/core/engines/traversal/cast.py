"""Casting: the one BVH over every triangle (compiled, ``native.py``), the Embree scene of the
reference path, coincident triangles, and the exact ray-triangle helpers."""

from __future__ import annotations

import threading

import numpy as np


from .results import EPS, TOUCH_MM, NEARBY_MM, MAX_HITS


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
        # the intervals after the fill grid's naming of the gaps (native.between)
        self.bw_s = np.empty(1024, np.int64)
        self.bw_a = np.empty(1024)
        self.bw_b = np.empty(1024)
        self.bw_ex = np.empty(1024, np.bool_)
        self.bw_fl = np.empty(1024, np.bool_)
        self.tail = ()


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


def _rays_hit_triangles(origin, d, tris, t_expect, tol: float = 1e-6, any_t: bool = False) -> np.ndarray:
    """Row-wise: does line i (origin[i], d[i]) cross triangle i at ~t_expect[i] (anywhere
    with ``any_t``)?"""
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
    return ok & (u >= -tol) & (v >= -tol) & (u + v <= 1 + tol) & (any_t | (np.abs(t - t_expect) < 1e-3))


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
    from ...model.store import cache_dir

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


class CastMixin:
    """Casting methods of :class:`~.index.TissueIndex`."""

    # -- the compiled engine ----------------------------------------------------------
    def _build_native(self) -> None:
        """BVHs for the compiled kernels (core/engines/traversal/native.py): one over every triangle, one per
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
        # the fill grid's rule (gaps.py) for the compiled path: native.between's fixed arguments
        self._nat_fill = None
        if self._fill is not None:
            rel = np.zeros(len(self.ids), np.bool_)
            rel[list(self._relabel)] = True
            self._nat_fill = (bool(len(self._relabel)), rel, (self.kinds == "connective").astype(np.bool_),
                              (self.kinds == "skin").astype(np.bool_), np.ascontiguousarray(self._fill),
                              np.ascontiguousarray(self._fill_lut, dtype=np.int64),
                              np.ascontiguousarray(self._fill_o, dtype=np.float64), float(self._fill_h),
                              np.ascontiguousarray(self._fill_hi, dtype=np.int64))

    def _bufs(self) -> "_Buffers":
        b = getattr(self._tls, "b", None)
        if b is None:
            b = self._tls.b = _Buffers(len(self._dkeys), self._native.MAX_HITS)
            nd = self._nat
            b.tail = (TOUCH_MM, EPS, self.fat_reach, b.iv_s, b.iv_a, b.iv_b, b.iv_in, b.tip_s, b.buf_t, b.buf_s,
                      *self._nat_dargs, nd["droots"], nd["dbox_lo"], nd["dbox_hi"], NEARBY_MM, b.cl_shaft, b.cl_tip)
        return b

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
            ts, ss = self._crossings_near_hits(origin, d, ts, ss, t_start, t_end)
        return ts, ss

    # triangles are grouped by the radius of their bounding sphere (mm) for the window search
    _WINDOW_LEVELS = (2.0, 8.0, 32.0)

    def _window_trees(self):
        """KD-trees over triangle centres, one per size class (bounding-sphere radius up to
        each of _WINDOW_LEVELS), and the few larger triangles (tested every time). Built on
        first use: only the reference caster needs them."""
        wt = getattr(self, "_wtrees", None)
        if wt is None:
            from scipy.spatial import cKDTree

            T = self.triangles.astype(np.float64)
            c = T.mean(axis=1)
            r = np.sqrt(((T - c[:, None, :]) ** 2).sum(axis=2).max(axis=1))
            levels, lo = [], 0.0
            for hi in self._WINDOW_LEVELS:
                idx = np.flatnonzero((r > lo) & (r <= hi)) if lo > 0 else np.flatnonzero(r <= hi)
                levels.append((hi, idx, cKDTree(c[idx]) if len(idx) else None))
                lo = hi
            big = np.flatnonzero(r > lo)
            wt = self._wtrees = (levels, big)
        return wt

    def _crossings_near_hits(self, origin, d, ts, ss, t_start: float, t_end: float):
        """The crossings the one-hit-per-call loop steps over: after each hit the next call
        starts EPS further on, so another surface crossed within EPS of a hit (a muscle
        lying on a bone, 1e-5 mm apart) would be missed. Every triangle that can be crossed
        within [t - EPS, t + 2 EPS] of a hit is tested exactly (float64, the compiled
        caster's edge tolerance); the ones not already found are added."""
        levels, big = self._window_trees()
        P = origin + np.outer(ts, d)
        cand = [big]
        for hi, idx, tree in levels:
            if tree is None:
                continue
            for lst in tree.query_ball_point(P, hi + 2 * EPS + 1e-6):
                if lst:
                    cand.append(idx[np.asarray(lst, np.int64)])
        cand = np.setdiff1d(np.unique(np.concatenate(cand)), ss)
        if not len(cand):
            return ts, ss
        tris = self.triangles[cand].astype(np.float64)
        k = len(cand)
        hit = _rays_hit_triangles(np.broadcast_to(origin, (k, 3)), np.broadcast_to(d, (k, 3)), tris,
                                  np.zeros(k), tol=1e-9, any_t=True)
        if not hit.any():
            return ts, ss
        cand, tris = cand[hit], tris[hit]
        tc = _line_params(origin, d, tris, np.full(len(cand), np.nan))
        near = np.zeros(len(cand), bool)
        for t in ts:
            near |= (tc >= t - EPS) & (tc <= t + 2 * EPS)
        keep = near & (tc >= t_start) & (tc <= t_end)
        if not keep.any():
            return ts, ss
        t_all = np.concatenate([ts, tc[keep]])
        s_all = np.concatenate([ss, cand[keep]])
        o = np.argsort(t_all, kind="stable")
        return t_all[o], s_all[o]

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

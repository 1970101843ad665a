"""Clearance: how close the shaft and the tip come to each danger structure (KD-trees over
densely sampled surfaces; the compiled path in ``native.py``)."""

from __future__ import annotations


import numpy as np

from ...model.atlas import Structure

from .results import Clearance, NEARBY_MM, SAMPLE_EDGE_MM, COARSE_EDGE_MM, FINE_WITHIN_MM, SHAFT_STEP_MM, BATCH_COARSE_STEP_MM


class ClearanceMixin:
    """Clearance: how close the shaft and the tip come to each danger structure (KD-trees over (methods of :class:`~.index.TissueIndex`)"""

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

    def closest_approaches(self, entries, directions, depths, within: float = NEARBY_MM):
        """The closest any of many needles' shafts (entry to tip) comes to each danger
        structure, exactly (the same distances as :meth:`shaft_clearances`, whose minimum
        over the needles this is): (mm, needle) arrays over :attr:`danger_ids`, ``inf`` and
        -1 where no needle comes within ``within``; ties go to the first needle. Cheaper
        than all the clearances: the best so far bounds the search for the next needle."""
        import numba

        E = np.ascontiguousarray(np.asarray(entries, float).reshape(-1, 3))
        D = np.asarray(directions, float).reshape(-1, 3)
        D = np.ascontiguousarray(D / np.linalg.norm(D, axis=1, keepdims=True))
        dep = np.ascontiguousarray(np.broadcast_to(np.asarray(depths, float), (len(E),)))
        R = len(self._dkeys)
        if not len(E) or not R:
            return np.full(R, np.inf), np.full(R, -1, np.int64)
        C = max(1, min(len(E), 2 * numba.get_num_threads()))
        best = np.empty((C, R))
        arg = np.empty((C, R), np.int64)
        nd = self._nat
        self._native.clearances_min(*self._nat_dargs, nd["droots"], nd["dbox_lo"], nd["dbox_hi"], E, D, dep,
                                    float(within), best, arg)
        c = np.argmin(best, axis=0)  # the first chunk with the minimum: the first needle
        rows = np.arange(R)
        return best[c, rows], np.where(np.isfinite(best[c, rows]), arg[c, rows], -1)

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

"""Many needles at once (grading, benchmarks): one compiled pass over the batch."""

from __future__ import annotations


import numpy as np


from .results import BatchResult, EPS, TOUCH_MM, SEAM_MM, FILL_STEP_MM

#: intervals returned per needle by query_batch(intervals=True) (a needle with more: count -1)
IV_WIDTH = 48


class BatchMixin:
    """Many needles at once (grading, benchmarks): one compiled pass over the batch. (methods of :class:`~.index.TissueIndex`)"""

    def query_batch(self, entries, directions, depths, stop_at_bone: bool = True,
                    intervals: bool = False) -> BatchResult:
        """Many needles at once: the tip structure, bone contact and first breach of each.

        The same compiled kernels as :meth:`query` (the rules of docs/needle.md, the fill
        grid's naming of the gaps included, so the same answers), run over the needles in
        parallel; needles that need the per-structure fallback (rule 3) are answered by
        :meth:`query_reference` itself. ``intervals=True`` also returns every needle's
        intervals (as arrays, see :class:`BatchResult`). Clearances: :meth:`shaft_clearances`.
        """
        E = np.ascontiguousarray(np.asarray(entries, float).reshape(-1, 3))
        D = np.asarray(directions, float).reshape(-1, 3)
        D = np.ascontiguousarray(D / np.linalg.norm(D, axis=1, keepdims=True))
        dep = np.ascontiguousarray(np.broadcast_to(np.asarray(depths, float), (len(E),)), dtype=float)
        n = len(E)
        K = IV_WIDTH if intervals else 0
        status = np.zeros(n, np.int64)
        depth_out = np.zeros(n)
        tip_struct = np.full(n, -1, np.int64)
        bone_out = np.full(n, -1, np.int64)
        breach = np.full(n, -1, np.int64)
        breach_depth = np.full(n, np.nan)
        n_breach = np.zeros(n, np.int64)
        ov = (np.full((n, K), -1, np.int64), np.zeros((n, K)), np.zeros((n, K)), np.zeros((n, K), np.bool_),
              np.zeros(n, np.int64))
        if n:
            # neighbouring needles one after the other: they visit the same BVH nodes (cache)
            q = np.floor((E - self.lo) / 40.0).astype(np.int64)
            order = np.lexsort((q[:, 0], q[:, 1], q[:, 2]))
            outs = (status, depth_out, tip_struct, bone_out, breach, breach_depth, n_breach) + ov
            tmp = [np.empty_like(a) for a in outs]
            self._native.needles_batch(*self._nat_args, *self._nat_flags, self.is_harm, self._open_boxes64,
                                       self.lo, self.hi, np.ascontiguousarray(E[order]),
                                       np.ascontiguousarray(D[order]), np.ascontiguousarray(dep[order]),
                                       bool(stop_at_bone), TOUCH_MM, EPS, self.fat_reach,
                                       *self._batch_fill_args(), SEAM_MM, FILL_STEP_MM, *tmp)
            for a, t in zip(outs, tmp):
                a[order] = t
        for i in np.nonzero(status != 0)[0].tolist():
            tr = self.query_reference(E[i], D[i], dep[i], stop_at_bone=stop_at_bone, reference_clearances=False)
            depth_out[i] = tr.depth
            tip_struct[i] = self._sidx[tr.at_tip[0]] if tr.at_tip else -1
            bone_out[i] = self._sidx[tr.bone_contact.structure] if tr.bone_contact else -1
            breach[i], breach_depth[i] = -1, np.nan
            if tr.breaches:
                breach[i] = self._sidx[tr.breaches[0].structure]
                breach_depth[i] = tr.breaches[0].depth
            n_breach[i] = len(tr.breaches)
            if K:
                if len(tr.intervals) <= K:
                    for j, iv in enumerate(tr.intervals):
                        ov[0][i, j], ov[1][i, j], ov[2][i, j] = self._sidx[iv.structure], iv.entry_depth, iv.exit_depth
                        ov[3][i, j] = iv.filled
                    ov[4][i] = len(tr.intervals)
                else:
                    ov[4][i] = -1
        tips = E + D * depth_out[:, None]
        extra = dict(iv_structure=ov[0], iv_entry=ov[1], iv_exit=ov[2], iv_filled=ov[3], iv_count=ov[4]) if K else {}
        return BatchResult(depth_out, tips, tip_struct, bone_out, breach, breach_depth, n_breach, **extra)

    def _batch_fill_args(self):
        """native.needles_batch's fill-grid arguments (placeholders without a grid)."""
        if self._nat_fill is not None and self._fill is not None:  # (_fill None: the meshes alone)
            return (True, *self._nat_fill)
        nb = len(self.ids)
        z = np.zeros(nb, np.bool_)
        return (False, False, z, z, z, np.zeros((1, 1, 1), np.uint16), np.full(1, -1, np.int64), np.zeros(3), 1.0,
                np.zeros(3, np.int64))

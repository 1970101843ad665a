"""Many needles at once (grading, benchmarks): one compiled pass over the batch."""

from __future__ import annotations


import numpy as np


from .results import BatchResult, EPS, TOUCH_MM


class BatchMixin:
    """Many needles at once (grading, benchmarks): one compiled pass over the batch. (methods of :class:`~.index.TissueIndex`)"""

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

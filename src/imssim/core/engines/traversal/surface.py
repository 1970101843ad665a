"""The skin surface: snapping a ray to the skin, the smoothed skin normal, and what
structures contain a point."""

from __future__ import annotations


import numpy as np


from .results import SkinHit, _unit, NORMAL_RADIUS_MM


class SurfaceMixin:
    """The skin surface: snapping a ray to the skin, the smoothed skin normal, and what (methods of :class:`~.index.TissueIndex`)"""

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

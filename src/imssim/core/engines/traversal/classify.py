"""Classification: crossings -> intervals (ray parity, the winding-number fallback, closed
intervals, the bone stop, fat to fascia); the full needle query and its Python reference."""

from __future__ import annotations

import math

import numpy as np


from .results import (Interval, Breach, Clearance, BoneContact, Traversal, _shaft_mm, _unit, EPS, TOUCH_MM, NEARBY_MM,
                      SEAM_MM, FILL_STEP_MM)
from .cast import _ray_box, winding_number


class ClassifyMixin:
    """Classification: crossings -> intervals (ray parity, the winding-number fallback, closed (methods of :class:`~.index.TissueIndex`)"""

    # -- queries ----------------------------------------------------------------------
    def query(self, entry, direction, depth: float, stop_at_bone: bool = True) -> Traversal:
        """Traverse a needle inserted ``depth`` mm from ``entry`` along ``direction``.

        One call of the compiled kernel (core/engines/traversal/native.py) collects every crossing along the
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
        tip_l = b.tip_s[:nt].tolist()
        tip_set = set(tip_l)
        at_tip = [ids[s] for s in tip_l]
        m = -1
        if self._nat_fill is not None and self._fill is not None:  # (_fill None: the meshes alone)
            # the fill grid's naming of the gaps (rule 10), compiled
            m, gtip = self._native.between(b.iv_s, b.iv_a, b.iv_b, b.iv_in, niv, nt, *self._nat_fill, e, d, actual,
                                           bone >= 0, EPS, SEAM_MM, FILL_STEP_MM,
                                           b.bw_s, b.bw_a, b.bw_b, b.bw_ex, b.bw_fl)
        if m >= 0:
            ivs = b.bw_s[:m].tolist()
            intervals = [Interval(ids[s], str(kinds[s]), x, y, c, f) for s, x, y, c, f in
                         zip(ivs, b.bw_a[:m].tolist(), b.bw_b[:m].tolist(), b.bw_ex[:m].tolist(),
                             b.bw_fl[:m].tolist())]
            if gtip >= 0:
                at_tip = [ids[gtip]]
        else:
            ivs = b.iv_s[:niv].tolist()
            intervals = [Interval(ids[s], str(kinds[s]), x, y, not c) for s, x, y, c in
                         zip(ivs, b.iv_a[:niv].tolist(), b.iv_b[:niv].tolist(), b.iv_in[:niv].tolist())]
            if self._fill is not None:
                intervals, at_tip = self._between(e, d, intervals, at_tip, actual, bone >= 0)
                ivs = [self._sidx[iv.structure] for iv in intervals]
        breaches, seen = [], set()
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

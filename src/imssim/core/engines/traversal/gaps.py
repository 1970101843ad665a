"""The tissue between the meshes: the fill grid (model/build/fill.py) read along the gaps a
needle crosses between surfaces (docs/needle.md rule 10)."""

from __future__ import annotations

import math

import numpy as np

from ...model.atlas import Atlas

from .results import Interval, _merge_runs, EPS, FAT_TO_FASCIA_MM, FILL_STEP_MM, SEAM_MM


class GapsMixin:
    """The tissue between the meshes: the fill grid (model/build/fill.py) read along the gaps a (methods of :class:`~.index.TissueIndex`)"""

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

"""Which way is up: the source frame of an import (axes, handedness, units) from its anatomy.

A mesh data set rarely says which way its axes point, and two bodies of the same data set
may differ (the Visible Human Male's files are +X left, +Y anterior, +Z inferior; the
Female's right-anterior-superior). Registration could turn a body round, but a wrong
mirror cannot be undone by a rotation, and a 180 deg turn hides the mistake. So the frame
is decided first, from the structures themselves, and stated in the import report.

The anatomical knowledge is the built-in atlas: where each structure with a built-in
counterpart sits in imssim's frame (LPS, mm). For every anatomical axis (left, posterior,
superior) and every signed source axis, the correlation between the structures' source
centroids along that source axis and their built-in centroids along the anatomical axis
says how well that source axis explains that direction: the pelvis above the feet gives
superior, the tibialis anterior in front of the gastrocnemius (the tensor fasciae latae in
front of the gluteus maximus) anterior, the right-side structures beside the midline
sacrum (and lateral muscles beside medial ones) left/right. The best one-to-one
assignment of signed source axes to anatomical axes is the frame; its handedness follows.
The units come from the body's size against the built-in body's.

In practice all 48 signed permutations of the source axes (rotations and mirrors) are
scored by how much of the built-in layout's variance they explain (one scale, one shift);
the best wins. Each axis's *sureness* combines its correlation with how much worse the best
frame that decides that axis differently is (relative to that axis's share of the layout);
the frame is sure when every axis is. :func:`detect_frame` returns
the decision with readable evidence; the importer refuses when it is not sure and the
frame is not stated (or a stated frame is contradicted by a sure detection).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from .manifest import UNITS

#: anatomical axes in imssim's frame (LPS), the letter for + and for -
_AXES = (("L", "R", "left/right"), ("P", "A", "anterior/posterior"), ("S", "I", "superior/inferior"))
#: an axis is sure when its correlation is at least this ...
MIN_CORRELATION = 0.5
#: ... and the best frame that decides it otherwise explains at least this much less of the
#: built-in layout's variance along that axis
MIN_MARGIN = 0.5
#: a body is taken to be this much smaller or larger than the built-in body at most
SIZE_RANGE = (0.55, 1.8)
#: fewer structures with a built-in counterpart cannot say anything
MIN_STRUCTURES = 4


@dataclass
class FrameDecision:
    """What the importer decided about the source frame, and how sure it is (0-1)."""

    axes: str | None  # three letters, e.g. "LAI"; None when it cannot tell
    units: str | None
    confidence: float
    handedness: str | None  # "right" or "left" (a mirrored source)
    evidence: list[str] = field(default_factory=list)
    per_axis: dict = field(default_factory=dict)
    scale_vs_builtin: float | None = None
    n_structures: int = 0

    @property
    def sure(self) -> bool:
        return self.axes is not None and self.units is not None and self.confidence >= 0.5

    def as_dict(self) -> dict:
        return {"axes": self.axes, "units": self.units, "confidence": round(float(self.confidence), 3),
                "handedness": self.handedness, "evidence": list(self.evidence), "per_axis": self.per_axis,
                "scale_vs_builtin": None if self.scale_vs_builtin is None else round(float(self.scale_vs_builtin), 3),
                "structures_used": self.n_structures}


def handedness(axes: str) -> str:
    """'right' if a source frame with these axis letters is right-handed, else 'left'."""
    from .pipeline import frame_matrix

    return "right" if np.linalg.det(frame_matrix("mm", axes)) > 0 else "left"


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    sa, sb = a.std(), b.std()
    if sa < 1e-9 or sb < 1e-9:
        return 0.0
    return float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))


def detect_frame(items: list[tuple[str, str, np.ndarray]], reference) -> FrameDecision:
    """Decide the source frame from structures with a built-in counterpart.

    ``items``: (counterpart id in ``reference``, side, source-frame centroid) per structure.
    """
    pairs = [(m, side, np.asarray(c, float)) for m, side, c in items if m in reference.structures]
    n = len(pairs)
    if n < MIN_STRUCTURES:
        return FrameDecision(None, None, 0.0, None,
                             [f"only {n} structure(s) with a built-in counterpart; at least {MIN_STRUCTURES} are needed "
                              "to tell the frame from the anatomy"], n_structures=n)
    C = np.array([c for _, _, c in pairs])
    R = np.array([reference.structures[m].centroid for m, _, _ in pairs])
    Cc, Rc = C - C.mean(0), R - R.mean(0)
    tot = float((Rc ** 2).sum())
    if tot < 1e-9 or float((Cc ** 2).sum()) < 1e-12:
        return FrameDecision(None, None, 0.0, None, ["the structures all lie at one point"], n_structures=n)

    def explained(P):  # share of the built-in layout's variance explained by P, one scale, a shift
        m = Cc @ P.T
        sc = max(float((m * Rc).sum()) / float((m ** 2).sum()), 0.0)
        return 1.0 - float(((Rc - sc * m) ** 2).sum()) / tot

    cands = []  # every signed permutation (rotations and mirrors): its score
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            P = np.zeros((3, 3))
            for k in range(3):
                P[k, perm[k]] = signs[k]
            cands.append((explained(P), perm, signs, P))
    cands.sort(key=lambda t: -t[0])
    e_best, best, bsigns, M = cands[0]
    rho = np.array([[_corr(C[:, j], R[:, k]) for j in range(3)] for k in range(3)])
    letters = [""] * 3  # per source axis: the direction its + points to
    per_axis, confs, evidence = {}, [], []
    for k, (plus, minus, label) in enumerate(_AXES):
        j, sign = best[k], bsigns[k]
        letters[j] = plus if sign > 0 else minus
        share = float((Rc[:, k] ** 2).sum()) / tot
        # the best frame that decides this axis differently: how much worse, per this axis's share
        alt = next(c for c in cands[1:] if (c[1][k], c[2][k]) != (j, sign))
        margin = (e_best - alt[0]) / max(share, 1e-9)
        r = abs(rho[k, j])
        conf = float(np.clip(min(r / MIN_CORRELATION, 1.0) * min(margin / MIN_MARGIN, 1.0), 0.0, 1.0))
        if r < MIN_CORRELATION or margin < MIN_MARGIN:
            conf = min(conf, 0.49)
        confs.append(conf)
        src = f"{'+' if sign > 0 else '-'}{'XYZ'[j]}"
        per_axis[label] = {"source_axis": src, "correlation": round(float(r), 3),
                           "margin": round(float(margin), 3), "confidence": round(conf, 3)}
        # readable evidence: the two structures furthest apart along this anatomical axis
        order = np.argsort(R[:, k])
        lo, hi = order[0], order[-1]
        name_hi, name_lo = pairs[hi][0], pairs[lo][0]
        word = {"L": "left", "P": "posterior", "S": "superior"}[plus]
        what = {"S": "the pelvis end vs the foot end", "P": "posterior vs anterior structures",
                "L": "left vs right"}[plus]
        evidence.append(f"{label}: {word} is source {src} ({what}: {name_hi} at {'XYZ'[j]}={C[hi, j]:.4g}, "
                        f"{name_lo} at {'XYZ'[j]}={C[lo, j]:.4g}; r={r:.2f}, sure {conf:.2f})")
    sides = {s for _, s, _ in pairs}
    if "midline" in sides and sides & {"left", "right"}:
        j = best[0]
        mid = np.mean([c[j] for _, s, c in pairs if s == "midline"])
        for sd in ("right", "left"):
            vals = [c[j] for _, s, c in pairs if s == sd]
            if vals:
                evidence.append(f"left/right check: the {sd}-side structures lie at {'XYZ'[j]} "
                                f"{np.median(vals):.4g} (median), the midline ones at {mid:.4g}")
    axes = "".join(letters)
    # units: the body's extent against the built-in one's
    mapped = (C - C.mean(0)) @ M.T
    Rc = R - R.mean(0)
    s = float((mapped * Rc).sum() / max((mapped ** 2).sum(), 1e-12))  # source units -> mm
    units, uconf = None, 0.0
    if s > 0:
        cand = sorted(UNITS.items(), key=lambda kv: abs(np.log(s / kv[1])))
        u, f = cand[0]
        size = s / f  # imported body / built-in body
        if SIZE_RANGE[0] <= size <= SIZE_RANGE[1]:
            units, uconf = u, 1.0
        evidence.append(f"units: {u} (one source unit = {s:.4g} mm of the built-in body; so the body is "
                        f"{size:.2f} x the built-in one)" + ("" if units else "; outside the plausible "
                                                              f"{SIZE_RANGE[0]}-{SIZE_RANGE[1]}, so not sure"))
    conf = min(confs + [uconf])
    hand = handedness(axes)
    return FrameDecision(axes, units, conf, hand, evidence, per_axis, s, n)

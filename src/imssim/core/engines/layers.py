"""The body's self-check: realistic needle lines probed for empty space, order and depth.

Used by ``tests/test_between_layers.py`` (which asserts the figures) and
``benchmarks/bench_layers.py`` (which prints them; docs/atlas.md shows a run). Every line
enters on the skin (found by casting from outside) and goes in perpendicular to the skin
unless stated, as a practitioner's needle does.

Published figures the body is held to (docs/atlas.md cites them):

- skin to rib over the rhomboids: 21 +/- 4 mm at normal BMI, 27 mm in obesity
  (ultrasound, Ann Rehabil Med 2014;38:72);
- skin to the lumbar epidural space at L3-L4 and L4-L5 on the midline: 46 +/- 7 mm
  (1,653 patients; Cha et al., Anesth Pain Med 2011;6:16);
- skin to the cervical epidural space at C5-C6 on the midline: 47 +/- 6 mm in men
  (816 patients; Han et al., Reg Anesth Pain Med 2003;28:95).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..model.atlas import VERTEBRAE, Atlas
from .traversal import TissueIndex, Traversal

#: published depths (mm): name -> (mean, sd, source)
PUBLISHED = {
    "skin_to_rib_rhomboid": (21.0, 4.0, "Ann Rehabil Med 2014;38:72 (ultrasound, normal BMI)"),
    "skin_to_rib_rhomboid_obese": (27.0, 4.0, "Ann Rehabil Med 2014;38:72 (ultrasound, obese)"),
    "skin_to_epidural_L3_L4": (46.0, 6.9, "Cha et al., Anesth Pain Med 2011;6:16 (n=1,653)"),
    "skin_to_epidural_L4_L5": (46.0, 6.9, "Cha et al., Anesth Pain Med 2011;6:16 (n=1,653)"),
    "skin_to_epidural_C5_C6": (47.0, 6.0, "Han et al., Reg Anesth Pain Med 2003;28:95 (men, n=816)"),
}


@dataclass
class Line:
    name: str
    group: str
    entry: np.ndarray
    direction: np.ndarray
    depth: float


@dataclass
class Probe:
    line: Line
    tr: Traversal
    empty_mm: float
    inside_mm: float
    tip_nothing: bool
    gaps: list[tuple[float, float]] = field(default_factory=list)


def _entry(index: TissueIndex, target: np.ndarray, outward: np.ndarray, perpendicular: bool = True):
    """Where a needle aimed at ``target`` from ``outward`` enters the skin, and its direction."""
    out = np.asarray(outward, float) / np.linalg.norm(outward)
    hit = index.snap_to_skin(np.asarray(target, float) + out * 400.0, -out)
    if hit is None:
        return None
    d = -hit.normal if perpendicular else -out
    return hit.point, d / np.linalg.norm(d)


def probe_lines(atlas: Atlas, index: TissueIndex) -> list[Line]:
    """Realistic needle lines: paraspinal at every level (both sides, 15 and 25 mm from the
    midline), over the scapulae, the buttock, thigh, leg and posterior neck."""
    lines: list[Line] = []
    back = np.array([0.0, 1.0, 0.0])

    def add(name, group, target, outward, depth, perpendicular=True):
        e = _entry(index, target, outward, perpendicular)
        if e is not None:
            lines.append(Line(name, group, e[0], e[1], depth))

    def beside_spine(group, levels, laterals, depth):
        for lv in levels:
            if f"{lv}_spinous" not in atlas.landmarks:
                continue
            tip = atlas.landmark(f"{lv}_spinous").xyz
            for sx, side in ((-1, "r"), (1, "l")):
                for lat in laterals:
                    add(f"{group} {lv} {side} {lat:.0f} mm", group, tip + [sx * lat, 0, 0], back, depth)

    beside_spine("paraspinal", VERTEBRAE, (15.0, 25.0), 70.0)
    for side, sx in (("r", -1), ("l", 1)):
        sc = f"scapula_{'r' if side == 'r' else 'l'}"
        if sc in atlas.structures:
            b = atlas.structures[sc].bounds
            for fx in (0.3, 0.5, 0.7):
                for fz in (0.3, 0.5, 0.7):
                    t = np.array([b[0][0] + fx * (b[1][0] - b[0][0]), b[1][1], b[0][2] + fz * (b[1][2] - b[0][2])])
                    add(f"scapula {side} {fx:.1f}/{fz:.1f}", "scapula", t, back, 40.0)
        if f"iliac_crest_{side}" in atlas.landmarks and f"greater_trochanter_{side}" in atlas.landmarks:
            ic = atlas.landmark(f"iliac_crest_{side}").xyz
            gt = atlas.landmark(f"greater_trochanter_{side}").xyz
            for f in (0.3, 0.5, 0.7):
                t = ic + f * (gt - ic)
                t = np.array([t[0] - sx * 15.0 * f, t[1], t[2]])
                add(f"buttock {side} {f:.1f}", "buttock", t, back, 60.0)
        for bone, group, outs, depth in ((f"femur_{side}", "thigh", (back, [sx, 0, 0], [0, -1, 0]), 50.0),
                                         (f"tibia_{side}", "leg", (back, [sx, 0, 0]), 40.0)):
            if bone not in atlas.structures:
                continue
            b = atlas.structures[bone].bounds
            c = atlas.structures[bone].centroid
            for fz in (0.35, 0.5, 0.65):
                for o in outs:
                    t = np.array([c[0], c[1], b[0][2] + fz * (b[1][2] - b[0][2])])
                    add(f"{group} {side} {fz:.2f} {tuple(int(x) for x in o)}", group, t, o, depth)
    beside_spine("neck", ("C3", "C4", "C5", "C6"), (20.0, 35.0), 50.0)
    return lines


def probe(index: TissueIndex, line: Line) -> Probe:
    tr = index.query(line.entry, line.direction, line.depth)
    covered = []
    for iv in tr.intervals:
        covered.append((iv.entry_depth, iv.exit_depth))
    covered.sort()
    gaps, cur = [], 0.0
    for a, b in covered:
        if a > cur + 1e-6:
            gaps.append((cur, a))
        cur = max(cur, b)
    if tr.depth > cur + 1e-6:
        gaps.append((cur, tr.depth))
    empty = sum(b - a for a, b in gaps)
    return Probe(line, tr, float(empty), float(tr.depth), not tr.at_tip and tr.bone_contact is None, gaps)


def empty_space(index: TissueIndex, lines: list[Line]) -> dict:
    probes = [probe(index, ln) for ln in lines]
    inside = sum(p.inside_mm for p in probes)
    empty = sum(p.empty_mm for p in probes)
    by_group: dict[str, list[Probe]] = {}
    for p in probes:
        by_group.setdefault(p.line.group, []).append(p)
    return {
        "lines": len(probes),
        "inside_mm": inside,
        "empty_fraction": empty / inside if inside else 0.0,
        "tips_in_nothing": [p.line.name for p in probes if p.tip_nothing],
        "by_group": {g: (len(ps), sum(p.empty_mm for p in ps) / max(sum(p.inside_mm for p in ps), 1e-9))
                     for g, ps in by_group.items()},
        "worst": sorted(probes, key=lambda p: -p.empty_mm)[:5],
    }


def skin_to_rib_rhomboid(atlas: Atlas, index: TissueIndex) -> list[float]:
    """Skin-to-rib depths over the rhomboids: perpendicular lines between the spine and the
    scapula's medial border at T2-T6, where rhomboid is on the line and a rib stops it."""
    out = []
    for lv in ("T2", "T3", "T4", "T5", "T6"):
        if f"{lv}_spinous" not in atlas.landmarks:
            continue
        tip = atlas.landmark(f"{lv}_spinous").xyz
        for side, sx in (("r", -1), ("l", 1)):
            mb = atlas.landmarks.get(f"scapula_medial_border_{side}")
            edge = abs(mb.xyz[0]) if mb is not None else 70.0
            for f in (0.55, 0.7, 0.85):
                e = _entry(index, tip + [sx * f * edge, 0, 0], [0, 1, 0])
                if e is None:
                    continue
                tr = index.query(e[0], e[1], 80.0)
                names = tr.layers
                if tr.bone_contact and tr.bone_contact.structure.startswith("rib_") and any(
                        n.startswith("rhomboid") for n in names):
                    out.append(tr.depth)
    return out


def skin_to_epidural(atlas: Atlas, index: TissueIndex, upper: str, lower: str) -> tuple[float | None, Traversal | None]:
    """Midline needle between two spinous processes, aimed like an interlaminar epidural
    (perpendicular to the skin, tilted cephalad with the spinous processes): depth at which
    it first enters the epidural space, dural sac or canal."""
    if f"{upper}_spinous" not in atlas.landmarks or f"{lower}_spinous" not in atlas.landmarks:
        return None, None
    a = atlas.landmark(f"{upper}_spinous").xyz
    b = atlas.landmark(f"{lower}_spinous").xyz
    mid = (a + b) / 2
    best = None
    for dx in (0.0, -4.0, 4.0):
        for tilt in (0.0, 10.0, 20.0, 30.0):
            t = np.radians(tilt)
            d = np.array([0.0, -np.cos(t), np.sin(t)])
            hit = index.snap_to_skin(mid + [dx, 0, 0] - d * 300.0, d)
            if hit is None:
                continue
            tr = index.query(hit.point, d, 90.0)
            for iv in tr.intervals:
                if iv.structure in ("epidural_space", "spinal_canal", "spinal_cord", "cauda_equina"):
                    if best is None or iv.entry_depth < best[0]:
                        best = (iv.entry_depth, tr)
                    break
    return (best[0], best[1]) if best else (None, None)


def report(atlas: Atlas, index: TissueIndex, obese: TissueIndex | None = None) -> tuple[str, dict]:
    """A benchmark-style text report of every figure, and the figures themselves."""
    lines = probe_lines(atlas, index)
    es = empty_space(index, lines)
    rows = [f"needle lines             {es['lines']} ({', '.join(f'{g} {n}' for g, (n, _f) in es['by_group'].items())})",
            f"empty length inside skin {100 * es['empty_fraction']:.2f} % (goal < 2 %)",
            f"tips in nothing          {len(es['tips_in_nothing'])} (goal 0)"]
    for g, (n, f) in es["by_group"].items():
        rows.append(f"  {g:<22} {100 * f:5.2f} % empty over {n} lines")
    figs = {"empty_fraction": es["empty_fraction"], "tips_in_nothing": es["tips_in_nothing"]}
    r = skin_to_rib_rhomboid(atlas, index)
    m, sd, src = PUBLISHED["skin_to_rib_rhomboid"]
    if r:
        figs["skin_to_rib_rhomboid"] = float(np.median(r))
        rows.append(f"skin to rib, rhomboids   median {np.median(r):.1f} mm over {len(r)} lines "
                    f"(range {min(r):.1f}-{max(r):.1f}); published {m:.0f} +/- {sd:.0f} mm, {src}")
    if obese is not None:
        ro = skin_to_rib_rhomboid(atlas, obese)
        if ro:
            figs["skin_to_rib_rhomboid_obese"] = float(np.median(ro))
            m, sd, src = PUBLISHED["skin_to_rib_rhomboid_obese"]
            rows.append(f"  obese build            median {np.median(ro):.1f} mm; published {m:.0f} mm")
    for up, lo in (("L3", "L4"), ("L4", "L5"), ("C5", "C6")):
        dep, _tr = skin_to_epidural(atlas, index, up, lo)
        m, sd, src = PUBLISHED[f"skin_to_epidural_{up}_{lo}"]
        figs[f"skin_to_epidural_{up}_{lo}"] = dep
        rows.append(f"skin to epidural {up}-{lo}  {'-' if dep is None else f'{dep:.1f} mm'}; "
                    f"published {m:.0f} +/- {sd:.0f} mm, {src}")
    return "\n".join(rows), figs

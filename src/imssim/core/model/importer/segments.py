"""Per-body-segment registration of an imported body to the reference (built-in) body.

Stage (a), in :func:`..align`, brings the whole imported body onto the reference with one
similarity (rotation, translation, uniform scale) fitted on the bones both bodies have.
One similarity cannot absorb a different posture (a flexed hip or knee, a turned foot) or
different proportions (a longer thigh), so stage (b) refines it per body segment:

* **Segments** form a chain per side: ``pelvis`` (shared by both sides) -> ``thigh_r`` ->
  ``leg_r`` -> ``foot_r`` (and ``_l``), joined at the hip, knee and ankle.
* **A segment with bones** (pelvis: sacrum, coccyx, hip bones; thigh: femur; leg: tibia,
  fibula, patella; foot: talus and the other foot bones) gets a similarity fitted on those
  bones alone by structure-wise ICP (each imported bone to its own counterpart), starting
  from stage (a). Its scale is kept within ``SCALE_RANGE`` of stage (a)'s: one short bone
  cannot tell a body's size. A rod-like bone set (the fibula alone: its width under
  ``ROD_RATIO`` of its length) cannot show a twist about its own axis (its surface hardly
  moves), so that twist is dropped and only the swing of the axis kept.
* **A segment without bones** between two fitted ones (the Visible Human set has no femur:
  its thigh) is placed by its two joints, as a skeleton would: the reference hip centre
  taken back through the pelvis's fit and the knee centre through the leg's fit give where
  this body's hip and knee are; the thigh's similarity maps that hip-knee line onto the
  reference's (scale = length ratio, the smallest rotation turning one line onto the other,
  so the twist stays stage (a)'s). The pelvis, thigh and leg then agree exactly at the hip
  and knee. A bone-less end segment (a foot with no foot bones) follows its neighbour.
* **Muscles and other soft tissue follow the segments they lie in**, vertex by vertex:
  each vertex is weighted between the segments by where it lies against the plane through
  each joint square to the limb beyond it (a smooth step 2 x ``BLEND_MM`` wide centred on
  the joint), and moved by the weighted mean of
  the segments' transforms (linear blend skinning). A muscle wholly within one segment
  moves rigidly (and scaled) with it; one that crosses a joint (the hamstrings at the
  knee, the gluteus maximus at the hip) bends smoothly there. Bones move rigidly with their
  own segment. Without joint centres (a reference without femur or tibia) each structure
  moves with the segment of its region.

Joint centres come from the reference's bones (:func:`reference_joints`): the hip is the
centre of a sphere fitted to the femoral head, the knee the midpoint between the femur's
lowest and the tibia's highest part, the ankle the talus's centroid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .register import Similarity, icp, surface_points

#: bone stem (id without _r/_l) -> segment kind
BONE_SEGMENT = {
    "sacrum": "pelvis", "coccyx": "pelvis", "hip_bone": "pelvis",
    "femur": "thigh",
    "tibia": "leg", "fibula": "leg", "patella": "leg",
    "talus": "foot", "calcaneus": "foot", "foot_bones": "foot", "toe_bones": "foot", "navicular": "foot",
    "cuboid": "foot",
}
#: a structure's region -> segment kind (used where joints are unknown)
REGION_SEGMENT = {"pelvis": "pelvis", "gluteal": "pelvis", "lumbar": "pelvis", "thigh": "thigh", "knee": "leg",
                  "leg": "leg", "foot": "foot"}
CHAIN = ("pelvis", "thigh", "leg", "foot")
JOINTS = ("hip", "knee", "ankle")  # JOINTS[i] joins CHAIN[i] and CHAIN[i + 1]
#: half-width (mm) of the blend between two segments at their joint
BLEND_MM = 30.0
#: a segment's scale stays within this factor of stage (a)'s
SCALE_RANGE = (0.85, 1.15)
#: bones whose second principal extent is under this fraction of their length are a rod
ROD_RATIO = 0.1


def _side_suffix(side: str | None) -> str | None:
    return {"right": "_r", "left": "_l"}.get(side or "")


def segment_name(kind: str, side: str | None) -> str:
    if kind == "pelvis":
        return "pelvis"
    sfx = _side_suffix(side)
    return f"{kind}{sfx}" if sfx else kind


def bone_segment(sid: str, side: str | None) -> str | None:
    stem = sid[:-2] if sid.endswith(("_r", "_l")) else sid
    kind = BONE_SEGMENT.get(stem)
    if kind is None or (kind != "pelvis" and not _side_suffix(side)):
        return None
    return segment_name(kind, side)


def _sphere_centre(p: np.ndarray) -> np.ndarray:
    """Least-squares sphere centre of points (algebraic fit)."""
    A = np.c_[2 * p, np.ones(len(p))]
    b = (p ** 2).sum(1)
    sol, *_ = np.linalg.lstsq(A, b, rcond=None)
    return sol[:3]


def reference_joints(reference) -> dict[str, dict[str, np.ndarray]]:
    """{side: {hip, knee, ankle: xyz}} from the reference's femora, tibiae and tali (mm LPS).

    A joint whose bones the reference lacks is left out.
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    S = reference.structures
    for side, sfx, medial in (("right", "_r", 1.0), ("left", "_l", -1.0)):
        j: dict[str, np.ndarray] = {}
        fem, tib, tal = S.get("femur" + sfx), S.get("tibia" + sfx), S.get("talus" + sfx)
        if fem is not None:
            v = fem.vertices
            top = v[v[:, 2] > v[:, 2].max() - 0.12 * np.ptp(v[:, 2])]
            # the head is the medial part of the femur's top (the greater trochanter the lateral)
            head = top[medial * (top[:, 0] - np.median(top[:, 0])) > 0]
            c = _sphere_centre(head) if len(head) >= 10 else head.mean(0)
            if not np.all(np.isfinite(c)) or np.linalg.norm(c - head.mean(0)) > 40:
                c = head.mean(0)
            j["hip"] = c
        if fem is not None and tib is not None:
            fv, tv = fem.vertices, tib.vertices
            lo = fv[fv[:, 2] < fv[:, 2].min() + 15].mean(0)
            hi = tv[tv[:, 2] > tv[:, 2].max() - 15].mean(0)
            j["knee"] = 0.5 * (lo + hi)
        if tal is not None:
            j["ankle"] = tal.centroid
        elif tib is not None:
            tv = tib.vertices
            j["ankle"] = tv[tv[:, 2] < tv[:, 2].min() + 15].mean(0)
        out[side] = j
    return out


def _min_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation turning direction ``a`` onto direction ``b``."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(np.dot(a, b))
    if np.linalg.norm(v) < 1e-12:
        if c > 0:
            return np.eye(3)
        # opposite: half a turn about any axis square to them (not reached for limbs)
        p = np.cross(a, [1.0, 0, 0] if abs(a[0]) < 0.9 else [0, 1.0, 0])
        p /= np.linalg.norm(p)
        return 2 * np.outer(p, p) - np.eye(3)
    K = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + K + K @ K * (1 / (1 + c))


def _inverse(T: Similarity) -> Similarity:
    Ri = T.R.T
    return Similarity(Ri, -(T.t @ Ri.T) / T.scale, 1.0 / T.scale)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


@dataclass
class Segment:
    name: str
    transform: Similarity  # in the stage-(a) frame: x_a -> reference
    how: str  # "bones", "joints", "neighbour", "stage a"
    bones: list[str] = field(default_factory=list)
    rms_mm: float | None = None
    note: str = ""

    def as_dict(self) -> dict:
        return {"how": self.how, "structures": list(self.bones), "bones": list(self.bones), "rms_mm": self.rms_mm,
                "transform": self.transform.as_dict(), **({"note": self.note} if self.note else {})}


@dataclass
class SegmentFit:
    segments: dict[str, Segment]
    joints: dict[str, dict[str, list[float]]]  # side -> joint -> imported position (stage-a frame)
    ref_joints: dict[str, dict[str, np.ndarray]]

    def chain(self, side: str | None) -> list[str]:
        sfx = _side_suffix(side)
        return ["pelvis"] + ([f"{k}{sfx}" for k in CHAIN[1:]] if sfx else [])

    def weights(self, s, v: np.ndarray) -> dict[str, np.ndarray]:
        """Per-vertex weights of the segments a structure ``s`` follows (vertices ``v``, stage-a frame)."""
        n = len(v)
        if s.kind == "bone":
            seg = bone_segment(s.meta.get("match", s.id), s.side)
            return {seg: np.ones(n)} if seg in self.segments else {}
        side = s.side if _side_suffix(s.side) else None
        chain = self.chain(side)
        zs = [self.joints.get(side or "", {}).get(j) for j in JOINTS[: len(chain) - 1]]
        if side is None or any(z is None for z in zs):
            kind = REGION_SEGMENT.get(s.region or "")
            seg = segment_name(kind, s.side) if kind else None
            return {seg: np.ones(n)} if seg in self.segments else {}
        # fraction of each vertex beyond (distal to) each joint: a smooth step across the
        # plane through the joint square to the limb beyond it (hip: the thigh's hip-knee
        # line; knee and ankle: the leg's knee-ankle line), so a bent limb is cut right too
        zs = [np.asarray(p, float) for p in zs]
        axes = []
        for k in range(len(zs)):
            a, b = (zs[k], zs[k + 1]) if k + 1 < len(zs) else (zs[k - 1], zs[k]) if k else (zs[k], zs[k] - [0, 0, 1])
            d = b - a
            axes.append(d / np.linalg.norm(d) if np.linalg.norm(d) > 1e-6 else np.array([0.0, 0.0, -1.0]))
        beyond = [_smoothstep(((v - zj) @ u + BLEND_MM) / (2 * BLEND_MM)) for zj, u in zip(zs, axes)]
        w = {}
        prev = np.ones(n)
        for k, seg in enumerate(chain):
            nxt = beyond[k] if k < len(beyond) else np.zeros(n)
            w[seg] = prev - nxt  # proximal segments first: beyond[k] is <= beyond[k-1] along a limb
            prev = nxt
        return {k: np.clip(x, 0, 1) for k, x in w.items() if np.any(x > 1e-6)}

    def apply(self, s, v: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        """Vertices moved by the segments (blended); and the structure's share per segment."""
        w = self.weights(s, v)
        if not w:
            return v.copy(), {}
        tot = sum(w.values())
        tot = np.where(tot > 0, tot, 1.0)
        out = np.zeros_like(v)
        for seg, wk in w.items():
            out += (wk / tot)[:, None] * self.segments[seg].transform.apply(v)
        share = {seg: round(float((wk / tot).mean()), 3) for seg, wk in w.items()}
        return out, {k: x for k, x in share.items() if x >= 0.005}


def fit_segments(structures, reference, iterations: int = 200, points: tuple[int, int] = (400, 3000)) -> SegmentFit:
    """Stage (b): a similarity per body segment (see the module's description).

    ``structures`` are already in the stage-(a) frame (after the global fit).
    """
    ref_joints = reference_joints(reference)
    groups: dict[str, list] = {}
    for s in structures:
        m = s.meta.get("match", s.id)
        if s.kind != "bone" or m not in reference.structures:
            continue
        seg = bone_segment(m, s.side)
        if seg:
            groups.setdefault(seg, []).append((s, reference.structures[m]))
    segs: dict[str, Segment] = {}
    for seg, pairs in sorted(groups.items()):
        sets = [(surface_points(a.vertices, a.faces, points[0], seed=k),
                 surface_points(b.vertices, b.faces, points[1], seed=k)) for k, (a, b) in enumerate(pairs)]
        T, rms, _ = icp(sets, Similarity.identity(), True, iterations)
        notes = []
        src = np.concatenate([p for p, _ in sets])
        c = src.mean(0)
        _, sv, vt = np.linalg.svd(src - c, full_matrices=False)
        if sv[1] / sv[0] < ROD_RATIO:
            # a rod (the fibula alone): turning it about its own axis barely moves its
            # surface, so ICP cannot tell that twist; keep stage (a)'s, take only the swing
            R = _min_rotation(vt[0], T.R @ vt[0])
            tw = np.degrees(np.arccos(np.clip((np.trace(R.T @ T.R) - 1) / 2, -1, 1)))
            T = Similarity(R, T.apply(c) - T.scale * (R @ c), T.scale)
            notes.append(f"a rod-like bone set: its {tw:.0f} deg twist about its axis dropped")
        lo, hi = SCALE_RANGE
        if not lo <= T.scale <= hi:
            s_new = min(max(T.scale, lo), hi)
            notes.append(f"scale {T.scale:.3f} clamped to {s_new:.3f}")
            T = Similarity(T.R, T.apply(c) - s_new * (T.R @ c), s_new)  # the bones' centre stays put
        segs[seg] = Segment(seg, T, "bones", [a.id for a, _ in pairs], rms, "; ".join(notes))
    # joints of this body, in the stage-(a) frame, from the fitted segments either side
    joints: dict[str, dict[str, list[float]]] = {}
    for side, sfx in (("right", "_r"), ("left", "_l")):
        chain = ["pelvis"] + [f"{k}{sfx}" for k in CHAIN[1:]]
        for i, jn in enumerate(JOINTS):
            ref = ref_joints.get(side, {}).get(jn)
            if ref is None:
                continue
            near = [c for c in (chain[i], chain[i + 1]) if c in segs]
            p = np.mean([_inverse(segs[c].transform).apply(ref) for c in near], 0) if near else ref
            joints.setdefault(side, {})[jn] = p
        # bone-less segments: between two fitted ones by the joints, else follow a neighbour
        for i in range(1, len(chain)):
            seg = chain[i]
            if seg in segs:
                continue
            prox, dist = chain[i - 1], chain[i + 1] if i + 1 < len(chain) else None
            j0, j1 = JOINTS[i - 1], JOINTS[i] if i < len(JOINTS) else None
            r0 = ref_joints.get(side, {}).get(j0)
            r1 = ref_joints.get(side, {}).get(j1) if j1 else None
            if prox in segs and dist in segs and r0 is not None and r1 is not None \
                    and segs[prox].how == "bones" and segs[dist].how == "bones":
                a0, a1 = np.asarray(joints[side][j0]), np.asarray(joints[side][j1])
                s = float(np.linalg.norm(r1 - r0) / max(np.linalg.norm(a1 - a0), 1e-9))
                R = _min_rotation(a1 - a0, r1 - r0)
                T = Similarity(R, 0.5 * (r0 + r1) - s * (R @ (0.5 * (a0 + a1))), s)
                segs[seg] = Segment(seg, T, "joints", [], None, f"placed by the {j0} and {j1} of its neighbours")
            elif prox in segs:
                segs[seg] = Segment(seg, segs[prox].transform, "neighbour", [], None, f"follows {prox}")
        if "pelvis" not in segs:
            segs["pelvis"] = Segment("pelvis", Similarity.identity(), "stage a", [], None, "no pelvic bones: stage (a)")
    # a proximal segment left without bones or neighbour (thigh with no pelvis): stage (a)
    for side, sfx in (("right", "_r"), ("left", "_l")):
        for k in CHAIN[1:]:
            segs.setdefault(f"{k}{sfx}", Segment(f"{k}{sfx}", Similarity.identity(), "stage a", [], None,
                                                 "no bones here or in a neighbour: stage (a)"))
    return SegmentFit(segs, joints, ref_joints)

"""Build the built-in atlas from myo-sim's MyoFullBody model (Apache-2.0).

The model is compiled with MuJoCo in its ``standing`` keyframe. Bones are read as
world-space meshes; each muscle's path (the spatial tendon's wrap points) becomes a
volume-preserving spindle (see :mod:`.geometry`), and the fascicles of one muscle are
united into one watertight structure per side (per level for multifidus).

The model frame is metres, +X left, -Y anterior, +Z up; imssim's is millimetres LPS
(+X left, +Y posterior, +Z superior), so the mapping is a plain scale by 1000.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..atlas import Atlas, Attribution, Structure
from ..innervation import all_muscles
from . import geometry as geo

MODEL = "myofullbody"
M_TO_MM = 1000.0
#: myo-sim frame -> imssim LPS (both +X left, +Y posterior (myo: -Y anterior), +Z up).
AXES = np.eye(3)

ATTRIBUTION = Attribution(
    source="myo-sim (MyoSuite MyoFullBody model)",
    licence="Apache-2.0",
    attribution=(
        "Bone meshes and muscle paths from myo-sim, the MuJoCo musculoskeletal models of the "
        "MyoSuite project (Vittorio Caggiano, Huawei Wang, Guillaume Durandau, Massimo Sartori, "
        "Vikash Kumar et al.), Apache License 2.0. Muscle volumes are imssim's reconstruction."
    ),
    url="https://pypi.org/project/myo-sim/",
)

Progress = Callable[[str, float], None]


def _noop(msg: str, frac: float) -> None:  # pragma: no cover - trivial
    pass


@dataclass
class Fascicle:
    name: str  # actuator name
    base: str  # name without side suffix
    side: str
    path: np.ndarray  # (k, 3) mm LPS
    fmax: float
    fibre_len: float  # mm


def _side_of(name: str) -> tuple[str, str]:
    if name.endswith("_r"):
        return name[:-2], "right"
    if name.endswith("_l"):
        return name[:-2], "left"
    return name, "right"  # myo-sim's right arm has no suffix


@contextlib.contextmanager
def _quiet():
    """Silence MuJoCo's harmless 'empty prefix' warnings (printed from C, so at fd level)."""
    import sys
    import warnings

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def load_model():
    import mujoco
    import myo_sim

    with _quiet():
        m, d = myo_sim.load(MODEL)
    mujoco.mj_resetDataKeyframe(m, d, 0)
    mujoco.mj_forward(m, d)
    return m, d


def to_lps(points_m: np.ndarray) -> np.ndarray:
    return (np.asarray(points_m, float) @ AXES.T) * M_TO_MM


def read_bones(m, d) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """Every bone mesh in world coordinates: geom name -> (vertices mm, faces, body name)."""
    import mujoco

    out = {}
    for g in range(m.ngeom):
        if m.geom_type[g] != mujoco.mjtGeom.mjGEOM_MESH:
            continue
        mid = m.geom_dataid[g]
        v = m.mesh_vert[m.mesh_vertadr[mid] : m.mesh_vertadr[mid] + m.mesh_vertnum[mid]]
        f = m.mesh_face[m.mesh_faceadr[mid] : m.mesh_faceadr[mid] + m.mesh_facenum[mid]]
        R = d.geom_xmat[g].reshape(3, 3)
        world = v @ R.T + d.geom_xpos[g]
        name = m.mesh(mid).name or m.geom(g).name
        out[name] = (to_lps(world), np.asarray(f, np.int32), m.body(m.geom_bodyid[g]).name)
    return out


def read_fascicles(m, d) -> list[Fascicle]:
    """Every muscle actuator's path, maximum force and optimal fibre length."""
    wo = d.wrap_obj.reshape(-1)
    wx = d.wrap_xpos.reshape(-1, 3)
    out = []
    for a in range(m.nu):
        name = m.actuator(a).name
        t = m.actuator_trnid[a, 0]
        adr, num = d.ten_wrapadr[t], d.ten_wrapnum[t]
        pts = np.array([wx[i] for i in range(adr, adr + num) if wo[i] != -2])
        if len(pts) < 2:
            continue
        lr = m.actuator_lengthrange[a]
        rng = m.actuator_gainprm[a, 0:2]
        l0 = (lr[1] - lr[0]) / max(rng[1] - rng[0], 1e-6) * M_TO_MM
        path = to_lps(pts)
        plen = geo.polyline_length(path)
        # optimal fibre length is unreliable for a few fascicles: clamp to [0.2, 1.0] x path
        l0 = float(np.clip(l0, 0.2 * plen, 1.0 * plen))
        base, side = _side_of(name)
        out.append(Fascicle(name, base, side, path, float(m.actuator_gainprm[a, 2]), l0))
    return out


#: a fascicle may come this close (mm) to the far side of the midline
MIDLINE_SLACK_MM = 3.0


def fix_sides(fascicles: list[Fascicle]) -> list[Fascicle]:
    """Repair myo-sim paths that sit on the wrong side of the midline (in imssim's frame
    +x is the patient's left; run after the midline shift):

    - a pair whose two fascicles each lie wholly on the other's side (myo-sim's rectus
      abdominis) swaps names;
    - any other fascicle that strays across the midline (a left longissimus thoracis
      fascicle, LTpT_T12_l, lies on the right near the sacrum) is replaced by the mirror
      image of its counterpart on the other side.
    """
    by_name = {f.name: f for f in fascicles}

    def own_side(f: Fascicle) -> np.ndarray:  # > 0 on the side its name says
        return f.path[:, 0] * (1.0 if f.side == "left" else -1.0)

    def other_of(f: Fascicle) -> Fascicle | None:
        return by_name.get(f.base + ("_r" if f.side == "left" else "_l"))

    out = []
    for f in fascicles:
        x = own_side(f)
        if not np.any(x < -MIDLINE_SLACK_MM):
            out.append(f)
            continue
        other = other_of(f)
        if other is not None and np.all(own_side(other) < -MIDLINE_SLACK_MM) and np.all(x < -MIDLINE_SLACK_MM):
            flipped = "right" if f.side == "left" else "left"
            out.append(Fascicle(f.name, f.base, flipped, f.path, f.fmax, f.fibre_len))
        elif other is not None and not np.any(own_side(other) < -MIDLINE_SLACK_MM):
            mirrored = other.path * np.array([-1.0, 1.0, 1.0])
            out.append(Fascicle(f.name, f.base, f.side, mirrored, f.fmax, f.fibre_len))
        else:
            out.append(f)
    return out


# -- bones ---------------------------------------------------------------------------

_SIDE_WORD = {"right": "right", "left": "left"}


def _bone_plan(mesh_name: str, body: str) -> tuple[str, str, str, str, str | None] | None:
    """(id, name, side, region, level) for a myo-sim bone mesh, or None to merge elsewhere."""
    n = mesh_name
    if n.endswith("_sacrum"):
        return ("sacrum", "sacrum", "midline", "pelvis", "S1")
    mm = re.search(r"_lumbar(\d)$", n)
    if mm:
        k = mm.group(1)
        return (f"vertebra_L{k}", f"L{k} vertebra", "midline", "lumbar", f"L{k}")
    mm = re.search(r"thoracic(\d+)_s$", n)
    if mm:
        k = mm.group(1)
        return (f"vertebra_T{k}", f"T{k} vertebra", "midline", "thoracic", f"T{k}")
    if n.endswith("ribcage_s"):
        return ("ribcage", "ribcage and sternum", "midline", "thoracic", None)
    if n == "hat_cervical":
        return ("cervical_spine", "cervical spine (C1-C7)", "midline", "cervical", None)
    if n == "hat_skull":
        return ("skull", "skull", "midline", "head", None)
    if n == "hat_jaw":
        return ("mandible", "mandible", "midline", "head", None)
    side = "left" if (n.endswith("_l") or n.startswith("l_")) else "right"
    sfx = "r" if side == "right" else "l"
    simple = {
        "clavicle": ("clavicle", "shoulder"),
        "scapula": ("scapula", "shoulder"),
        "humerus": ("humerus", "arm"),
        "ulna": ("ulna", "forearm"),
        "radius": ("radius", "forearm"),
        "pelvis": ("hip bone", "pelvis"),
        "femur": ("femur", "thigh"),
        "tibia": ("tibia", "leg"),
        "fibula": ("fibula", "leg"),
        "patella": ("patella", "thigh"),
        "talus": ("talus", "foot"),
        "foot": ("foot bones", "foot"),
        "bofoot": ("toe bones", "foot"),
    }
    stem = re.sub(r"^(l_|r_)|(_l|_r)$", "", n)
    if stem in simple:
        nm, region = simple[stem]
        sid = nm.replace(" ", "_") + "_" + sfx
        return (sid, f"{side} {nm}", side, region, None)
    # everything else is a hand bone
    return (f"hand_bones_{sfx}", f"{side} hand bones", side, "hand", None)


HAND_TARGET_FACES = 6000


def build_bones(bones: dict) -> list[Structure]:
    groups: dict[str, dict] = {}
    for mesh_name, (v, f, body) in bones.items():
        plan = _bone_plan(mesh_name, body)
        sid, name, side, region, level = plan
        g = groups.setdefault(sid, {"name": name, "side": side, "region": region, "level": level, "parts": []})
        g["parts"].append((v, f))
    out = []
    for sid, g in groups.items():
        vs, fs, off = [], [], 0
        for v, f in g["parts"]:
            vs.append(v)
            fs.append(f + off)
            off += len(v)
        V, F = geo.clean(np.vstack(vs), np.vstack(fs))
        if sid.startswith("hand_bones"):
            V, F = geo.decimate(V, F, HAND_TARGET_FACES)
        out.append(
            Structure(
                id=sid,
                name=g["name"],
                kind="bone",
                side=g["side"],
                region=g["region"],
                vertices=V,
                faces=F,
                level=g["level"],
                source="myo-sim",
            )
        )
    return out


# -- muscles -------------------------------------------------------------------------


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


#: Cross-sections flatten (wider, thinner) when a muscle's volume needs more room than its
#: typical thickness allows: the wide semi-axis grows up to MAX_WIDTH x the thin one, and
#: the thin axis points at the nearest bone (muscles lie on bone).
MAX_WIDTH = 2.5


def build_muscles(
    fascicles: list[Fascicle], progress: Progress = _noop, bone_points: np.ndarray | None = None
) -> list[Structure]:
    from scipy.spatial import cKDTree

    tree = cKDTree(bone_points) if bone_points is not None and len(bone_points) else None
    facts = all_muscles()
    data_entries = {k: v for k, v in _entries().items()}
    # assign each fascicle to (entry key, side, level)
    groups: dict[tuple[str, str, str | None], list[Fascicle]] = {}
    unassigned = []
    for fc in fascicles:
        hit = None
        for key, e in data_entries.items():
            for pat in e.get("myosim", []):
                mm = re.match(pat, fc.base)
                if mm:
                    level = f"L{mm.group('level')}" if "level" in mm.groupdict() else None
                    hit = (key, fc.side, level)
                    break
            if hit:
                break
        if hit is None:
            unassigned.append(fc.name)
            continue
        groups.setdefault(hit, []).append(fc)
    if unassigned:
        raise ValueError(f"muscles.yaml maps no canonical muscle for myo-sim actuators: {', '.join(unassigned)}")
    out = []
    total = len(groups)
    for i, ((key, side, level), fcs) in enumerate(sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or ""))):
        e = data_entries[key]
        mf = facts[key]
        rmax = float(e.get("thickness_mm", 2 * geo.DEFAULT_MAX_RADIUS_MM)) / 2.0
        parts, infos = [], []
        rmin = float(e.get("min_thickness_mm", 2 * geo.MIN_RADIUS_MM)) / 2.0
        for fc in fcs:
            flat_dir, aspect, rcap = None, 1.0, rmax
            L = geo.polyline_length(fc.path)
            r_free = geo.spindle_radius(fc.fmax / geo.SPECIFIC_TENSION_MPA * fc.fibre_len, L, 1e9)
            r_free = max(r_free, rmin)
            if tree is not None and r_free > rmax:
                # thin semi-axis t = rmax, wide semi-axis w keeps the area up to MAX_WIDTH x rmax
                t, w = rmax, min(r_free**2 / rmax, MAX_WIDTH * rmax)
                aspect, rcap = float(np.sqrt(w / t)), t
                centre, _ = geo.resample_polyline(geo.chaikin(geo.dedupe_polyline(fc.path), geo.SMOOTHING), geo.STATIONS)
                _, idx = tree.query(centre)
                flat_dir = bone_points[idx] - centre
            v, f, info = geo.spindle(
                fc.path, fc.fmax, fc.fibre_len, max_radius=rcap, aspect=aspect, flat_dir=flat_dir, min_radius=rmin
            )
            info["aspect"] = aspect
            parts.append((v, f))
            infos.append({"fascicle": fc.name, **{k: round(float(x), 2) for k, x in info.items()}})
        V, F = geo.union(parts)
        if len(parts) > 1:
            V = geo.smooth(V, F)
        sfx = "r" if side == "right" else "l"
        base_id = _slug(key)
        if level:
            sid = f"{base_id}_{level}_{sfx}"
            name = f"{side} {key} {level}"
            aliases = (f"{side} {key} at {level}", f"{key} {level} {side}")
        else:
            sid = f"{base_id}_{sfx}"
            name = f"{side} {key}"
            aliases = tuple(f"{side} {a}" for a in mf.aliases)
        out.append(
            Structure(
                id=sid,
                name=name,
                kind="muscle",
                side=side,
                region=mf.region,
                vertices=V,
                faces=F,
                level=level,
                muscle=mf.canonical,
                innervation=mf.innervation(level),
                source="myo-sim",
                aliases=aliases,
                meta={"entry": key, "fascicles": infos, "uncertain": mf.uncertain},
            )
        )
        progress(f"muscle {sid}", (i + 1) / total)
    return out


def _entries() -> dict:
    from ..data import muscles_data

    return muscles_data()["muscles"]


def build(progress: Progress = _noop) -> Atlas:
    """Compile MyoFullBody and build the bones-and-muscles atlas (no landmarks yet)."""
    progress("compiling myo-sim MyoFullBody", 0.0)
    m, d = load_model()
    progress("reading bones", 0.05)
    bones = build_bones(read_bones(m, d))
    fascicles = read_fascicles(m, d)
    # put the midsagittal plane at x = 0: the model's pelvis is symmetric about x = dx
    hips = [b for b in bones if b.id in ("hip_bone_r", "hip_bone_l")]
    dx = float(np.mean([h.vertices[:, 0].mean() for h in hips])) if len(hips) == 2 else 0.0
    shift = np.array([dx, 0.0, 0.0])
    for b in bones:
        b.vertices = b.vertices - shift
    for fc in fascicles:
        fc.path = fc.path - shift
    fascicles = fix_sides(fascicles)
    progress("building muscle volumes", 0.1)
    bone_pts = np.vstack([b.vertices for b in bones if b.region != "hand"])
    muscles = build_muscles(fascicles, lambda msg, f: progress(msg, 0.1 + 0.8 * f), bone_points=bone_pts)
    import myo_sim

    atlas = Atlas(
        "builtin",
        structures=[*bones, *muscles],
        attributions=[ATTRIBUTION],
        meta={"source": "myo-sim", "midline_shift_mm": dx, "myo_sim_version": getattr(myo_sim, "__version__", "unknown"), "model": MODEL},
    )
    return atlas

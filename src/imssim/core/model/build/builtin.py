"""The built-in atlas: the shipped BodyParts3D body, then the derived stages.

The base (every bone and muscle as a closed volume) is read from ``meshes/bodyparts3d/``,
which ``tools/build_bodyparts3d.py`` builds from the BodyParts3D source folder; see
:mod:`.bodyparts3d`. Innervation, names and regions come from ``meshes/muscles.yaml``.
The stages that follow are cheap and derived: landmarks on the real bones, the muscles
the source lacks that imssim reconstructs on those bones (trapezius), danger structures
and the skin. Each is a function ``stage(atlas, progress) -> None`` in :data:`STAGES`;
each one's source file is part of the cache key, so editing a stage rebuilds the cache.
"""

from __future__ import annotations

from typing import Callable

from ..atlas import Atlas, Attribution, Structure
from ..data import meshes_dir
from ..innervation import all_muscles
from . import added_muscles, bodyparts3d, danger, fill, landmarks, skin

Progress = Callable[[str, float], None]

VHM_ATTRIBUTION = Attribution(
    source="Visible Human Male lower-limb surfaces (Andreassen et al., Sci Data 2022)",
    licence="CC BY 4.0",
    attribution=(
        "Andreassen TE, Hume DR, Hamilton LD, Walker KE, Higinbotham SE, Shelburne KB. Three-dimensional lower "
        "extremity musculoskeletal geometry of the Visible Human Female and Male. Sci Data 2022; "
        "doi:10.1038/s41597-022-01905-2 (CC BY 4.0); registered to the BodyParts3D skeleton by imssim"
    ),
    url="https://doi.org/10.56902/COB.vh.2022.0",
)


def _noop(msg: str, frac: float) -> None:
    pass


def shipped_dir():
    return meshes_dir() / "bodyparts3d"


def base(progress: Progress = _noop) -> Atlas:
    """The shipped bones and muscles as an :class:`Atlas` (no landmarks, skin or danger)."""
    progress("reading the shipped BodyParts3D body", 0.0)
    items, meta = bodyparts3d.load_shipped(shipped_dir())
    facts = all_muscles()
    by_alias = {}
    for f in facts.values():
        for a in (f.key, f.canonical, *f.aliases):
            by_alias.setdefault(a, f)
    structures = []
    vhm = False
    for d in items:
        level = d.get("level")
        side = d["side"]
        aliases = tuple(d.get("aliases") or ())
        inn = None
        muscle = None
        region = d.get("region") or ""
        if d["kind"] == "muscle":
            f = facts.get(d["key"]) or by_alias.get(d["key"])
            if f is None:
                raise ValueError(f"{shipped_dir()}: muscle {d['id']!r} ({d['key']!r}) has no entry in meshes/muscles.yaml")
            inn = f.innervation(level)
            muscle = f.canonical
            region = d.get("region") or f.region
            pre = f"{side} " if side in ("left", "right") else ""
            if level:
                aliases += (f"{pre}{d['key']} at {level}", f"{d['key']} {level} {side}")
            aliases += tuple(f"{pre}{a}" for a in f.aliases)
        vhm |= "vhm" in (d.get("route") or "")
        structures.append(
            Structure(
                id=d["id"], name=d["name"], kind=d["kind"], side=side, region=region, vertices=d["V"], faces=d["F"],
                level=level, muscle=muscle, innervation=inn, source=d.get("route") or "BodyParts3D",
                aliases=tuple(dict.fromkeys(a for a in aliases if a)),
                meta={**{k: d[k] for k in ("fma", "source_files", "build", "rib", "route") if d.get(k) is not None},
                      **({"target": False} if d["kind"] == "muscle" and not f.target else {}),
                      **({"uncertain": True} if d["kind"] == "muscle" and f.uncertain else {})},
            )
        )
    attributions = [bodyparts3d.ATTRIBUTION] + ([VHM_ATTRIBUTION] if vhm else [])
    return Atlas("builtin", structures=structures, attributions=attributions,
                 meta={"source": "BodyParts3D 3.0 (shipped in meshes/bodyparts3d)", **meta})


def _landmarks(atlas: Atlas, progress: Progress) -> None:
    for lm in landmarks.find_landmarks(atlas):
        if lm.id not in atlas.landmarks:
            atlas.add_landmark(lm)


def _skin(atlas: Atlas, progress: Progress) -> None:
    skin.add_skin(atlas, progress)


def _added_muscles(atlas: Atlas, progress: Progress) -> None:
    added_muscles.add_muscles(atlas, progress)


def _danger(atlas: Atlas, progress: Progress) -> None:
    danger.add_danger_structures(atlas, progress)


def _fill(atlas: Atlas, progress: Progress) -> None:
    fill.add_fill(atlas, progress)


#: Stages run in order after the shipped base; each adds to the atlas in place.
#: Landmarks come first (they only need bones; the danger structures are placed by
#: them), then the skin (it wraps every bone and muscle), and last the tissue between the
#: meshes (it labels what all the others leave empty).
STAGES: list[Callable[[Atlas, Progress], None]] = [_landmarks, _added_muscles, _danger, _skin, _fill]


def build(progress: Progress = _noop) -> Atlas:
    atlas = base(lambda m, f: progress(m, 0.2 * f))
    for i, stage in enumerate(STAGES):
        lo = 0.2 + 0.8 * i / max(len(STAGES), 1)
        hi = 0.2 + 0.8 * (i + 1) / max(len(STAGES), 1)
        progress(f"stage {stage.__name__.strip('_')}", lo)
        # a stage reports its own 0-1; the user sees it within the stage's share (monotone)
        stage(atlas, lambda m, f, lo=lo, hi=hi: progress(m, min(lo + (hi - lo) * min(max(f, 0.0), 1.0), 1.0)))
    from .geometry import is_watertight

    for s in atlas:  # recorded once here so every index built later can trust it
        s.meta["watertight"] = bool(is_watertight(s.vertices, s.faces))
    progress("done", 1.0)
    return atlas

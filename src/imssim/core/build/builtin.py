"""The built-in atlas pipeline: myo-sim bones and muscles, then landmarks.

Later stages (added neck and upper-back muscles, danger structures, skin) plug in as
functions ``stage(atlas, progress) -> None`` in :data:`STAGES`; each one's source file is
part of the cache key, so editing a stage rebuilds the cache.
"""

from __future__ import annotations

from typing import Callable

from ..atlas import Atlas
from . import added_muscles, danger, landmarks, myosim, posture, skin

Progress = Callable[[str, float], None]


def _noop(msg: str, frac: float) -> None:
    pass


def _posture(atlas: Atlas, progress: Progress) -> None:
    posture.correct(atlas)


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


#: Stages run in order after the myo-sim base; each adds to the atlas in place.
#: Landmarks come first (they only need bones; the danger structures are placed by
#: them), the skin last (it wraps every bone and muscle).
STAGES: list[Callable[[Atlas, Progress], None]] = [_posture, _landmarks, _added_muscles, _danger, _skin]


def build(progress: Progress = _noop) -> Atlas:
    atlas = myosim.build(lambda m, f: progress(m, 0.7 * f))
    for i, stage in enumerate(STAGES):
        lo = 0.7 + 0.3 * i / max(len(STAGES), 1)
        hi = 0.7 + 0.3 * (i + 1) / max(len(STAGES), 1)
        progress(f"stage {stage.__name__.strip('_')}", lo)
        # a stage reports its own 0-1; the user sees it within the stage's share (monotone)
        stage(atlas, lambda m, f, lo=lo, hi=hi: progress(m, lo + (hi - lo) * min(max(f, 0.0), 1.0)))
    from .geometry import is_watertight

    for s in atlas:  # recorded once here so every index built later can trust it
        s.meta["watertight"] = bool(is_watertight(s.vertices, s.faces))
    progress("done", 1.0)
    return atlas

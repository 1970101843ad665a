"""The needle: its size, its placement, and its movement as a timed sequence of poses.

Conventions (see docs/needle.md):
- ``entry`` is the skin puncture point (mm, LPS); ``direction`` a unit vector into the
  body; ``depth`` the inserted length along it; the tip is ``entry + depth * direction``.
- Angles: start from the inward skin normal (perpendicular to the skin), then tilt
  ``medial_deg`` toward the midline (negative = lateral) and ``caudal_deg`` toward the
  feet (negative = cranial). Each tilt rotates the direction toward that anatomical
  direction by the given angle, in the plane spanned by the direction and it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..model.atlas import Atlas

#: Needle lengths on offer (mm) and the usual gauge range (mm).
PRESET_LENGTHS_MM = (15, 25, 30, 40, 50, 60, 75)
GAUGE_RANGE_MM = (0.16, 0.30)
#: Depth the needle is withdrawn to for a redirection (subcutaneous layer).
REDIRECT_DEPTH_MM = 5.0

LEFT = np.array([1.0, 0.0, 0.0])
POSTERIOR = np.array([0.0, 1.0, 0.0])
SUPERIOR = np.array([0.0, 0.0, 1.0])


class NeedleError(ValueError):
    """An impossible needle or movement (with what was wrong)."""


@dataclass(frozen=True)
class Needle:
    length_mm: float = 50.0
    gauge_mm: float = 0.25

    def __post_init__(self):
        if not (5.0 <= float(self.length_mm) <= 150.0):
            raise NeedleError(f"needle length {self.length_mm} mm is outside 5-150 mm")
        if not (0.1 <= float(self.gauge_mm) <= 0.5):
            raise NeedleError(f"needle gauge {self.gauge_mm} mm is outside 0.10-0.50 mm")

    @classmethod
    def preset(cls, length_mm: int, gauge_mm: float = 0.25) -> "Needle":
        if length_mm not in PRESET_LENGTHS_MM:
            raise NeedleError(f"no {length_mm} mm preset; presets are {PRESET_LENGTHS_MM}")
        return cls(float(length_mm), gauge_mm)


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    n = float(np.linalg.norm(v))
    if v.shape != (3,) or not np.isfinite(v).all() or n < 1e-9:
        raise NeedleError(f"direction {np.asarray(v).tolist()} is not a usable 3D vector")
    return v / n


def tilt_toward(v: np.ndarray, toward: np.ndarray, deg: float) -> np.ndarray:
    """Rotate unit vector ``v`` by ``deg`` toward ``toward`` (negative: away from it)."""
    v = unit(v)
    t = np.asarray(toward, float)
    perp = t - (t @ v) * v
    n = np.linalg.norm(perp)
    if n < 1e-9:
        raise NeedleError("cannot tilt toward a direction parallel to the needle")
    perp /= n
    a = np.radians(deg)
    return np.cos(a) * v + np.sin(a) * perp


def medial_direction(point: np.ndarray, side: str | None = None) -> np.ndarray:
    """Unit vector toward the midline from a point (x = 0 is the midsagittal plane)."""
    if side is None:
        if abs(point[0]) < 1.0:
            raise NeedleError("a point on the midline has no medial direction: give side='left' or 'right'")
        side = "left" if point[0] > 0 else "right"
    return -LEFT if side == "left" else LEFT


def direction_from_angles(
    normal_out: np.ndarray,
    entry: np.ndarray,
    medial_deg: float = 0.0,
    caudal_deg: float = 0.0,
    side: str | None = None,
) -> np.ndarray:
    """Direction into the body from the outward skin normal plus anatomical tilts."""
    d = -unit(normal_out)
    if medial_deg:
        d = tilt_toward(d, medial_direction(np.asarray(entry, float), side), medial_deg)
    if caudal_deg:
        d = tilt_toward(d, -SUPERIOR, caudal_deg)
    return unit(d)


@dataclass(frozen=True)
class Pose:
    """One needle pose at time ``t`` (s)."""

    t: float
    entry: tuple[float, float, float]
    direction: tuple[float, float, float]
    depth: float
    action: str = "move"  # insert, advance, withdraw, redirect, remove, move

    @property
    def tip(self) -> np.ndarray:
        return np.asarray(self.entry) + np.asarray(self.direction) * self.depth

    def to_dict(self) -> dict:
        return {"t": self.t, "entry": list(self.entry), "direction": list(self.direction), "depth": self.depth,
                "action": self.action}

    @classmethod
    def from_dict(cls, d: dict) -> "Pose":
        return cls(float(d["t"]), tuple(map(float, d["entry"])), tuple(map(float, d["direction"])),
                   float(d["depth"]), d.get("action", "move"))


@dataclass
class NeedleTrack:
    """A placed needle: its size and its timed sequence of poses (a placement)."""

    needle: Needle
    poses: list[Pose] = field(default_factory=list)
    removed: bool = False

    @property
    def pose(self) -> Pose:
        if not self.poses:
            raise NeedleError("the needle has not been inserted")
        return self.poses[-1]

    def _push(self, t: float, entry, direction, depth: float, action: str) -> Pose:
        if self.removed:
            raise NeedleError("the needle has been removed")
        if self.poses and t < self.poses[-1].t:
            raise NeedleError(f"time {t} s is before the last pose ({self.poses[-1].t} s)")
        if depth < 0:
            raise NeedleError("depth cannot be negative")
        if depth > self.needle.length_mm:
            raise NeedleError(f"depth {depth:.1f} mm exceeds the {self.needle.length_mm:g} mm needle")
        p = Pose(float(t), tuple(map(float, entry)), tuple(map(float, unit(direction))), float(depth), action)
        self.poses.append(p)
        return p

    def insert(self, t: float, entry, direction, depth: float = 0.0) -> Pose:
        if self.poses:
            raise NeedleError("the needle is already inserted; redirect or remove it")
        return self._push(t, entry, direction, depth, "insert")

    def advance(self, t: float, mm: float) -> Pose:
        p = self.pose
        return self._push(t, p.entry, p.direction, min(p.depth + abs(mm), self.needle.length_mm), "advance")

    def withdraw(self, t: float, mm: float) -> Pose:
        p = self.pose
        return self._push(t, p.entry, p.direction, max(p.depth - abs(mm), 0.0), "withdraw")

    def set_depth(self, t: float, depth: float) -> Pose:
        p = self.pose
        action = "advance" if depth > p.depth else "withdraw"
        return self._push(t, p.entry, p.direction, float(np.clip(depth, 0.0, self.needle.length_mm)), action)

    def redirect(self, t: float, direction, to_depth: float = REDIRECT_DEPTH_MM) -> Pose:
        """Withdraw to the subcutaneous layer and change angle (then advance again)."""
        p = self.pose
        return self._push(t, p.entry, direction, min(p.depth, to_depth), "redirect")

    def remove(self, t: float) -> Pose:
        p = self.pose
        out = self._push(t, p.entry, p.direction, 0.0, "remove")
        self.removed = True
        return out

    @property
    def redirections(self) -> int:
        return sum(1 for p in self.poses if p.action == "redirect")


def landmark_point(
    atlas: Atlas,
    landmark: str,
    lateral_mm: float = 0.0,
    side: str | None = None,
    cranial_mm: float = 0.0,
    offset_mm=(0.0, 0.0, 0.0),
) -> np.ndarray:
    """A point relative to a named landmark: ``lateral_mm`` toward ``side`` (right: -X,
    left: +X), ``cranial_mm`` toward the head (negative: caudal), plus a raw LPS offset."""
    p = atlas.landmark(landmark).xyz.copy()
    if lateral_mm:
        if side not in ("left", "right"):
            raise NeedleError("a lateral offset needs side='left' or 'right'")
        p += (LEFT if side == "left" else -LEFT) * float(lateral_mm)
    p += SUPERIOR * float(cranial_mm)
    p += np.asarray(offset_mm, float)
    return p


VIEW_DIRECTIONS = {
    "posterior": -POSTERIOR,  # looking from behind, into the back
    "anterior": POSTERIOR,
    "left": -LEFT,  # from the patient's left side
    "right": LEFT,
    "superior": -SUPERIOR,
}


@dataclass(frozen=True)
class Placement:
    """Where and how a needle goes in: entry on the skin, direction, depth."""

    entry: tuple[float, float, float]
    direction: tuple[float, float, float]
    depth: float
    normal: tuple[float, float, float] | None = None  # outward skin normal at the entry
    on_skin: bool = True

    @classmethod
    def from_landmark(
        cls,
        index,
        landmark: str,
        depth: float,
        lateral_mm: float = 0.0,
        side: str | None = None,
        cranial_mm: float = 0.0,
        approach: str = "posterior",
        direction=None,
        medial_deg: float = 0.0,
        caudal_deg: float = 0.0,
        offset_mm=(0.0, 0.0, 0.0),
    ) -> "Placement":
        """E.g. 22 mm right of the L5 spinous process, perpendicular to the skin, 10 deg medial.

        The point next to the landmark is projected onto the skin along the ``approach``
        view direction (from outside the body); the needle direction is ``direction`` if
        given, else the inward skin normal tilted by ``medial_deg`` and ``caudal_deg``.
        ``offset_mm`` is a raw LPS offset added to the point (e.g. ``(-22, 0, 0)`` is the
        same as ``lateral_mm=22, side="right"``).
        """
        p = landmark_point(index.atlas, landmark, lateral_mm, side, cranial_mm, offset_mm)
        view = VIEW_DIRECTIONS[approach]
        hit = index.snap_to_skin(p - view * 600.0, view)
        if hit is None:
            raise NeedleError(f"no skin found near landmark {landmark!r} from the {approach} side")
        if direction is not None:
            d = unit(direction)
        else:
            d = direction_from_angles(hit.normal, hit.point, medial_deg, caudal_deg, side)
        return cls(tuple(hit.point), tuple(d), float(depth), tuple(hit.normal), hit.on_skin)

    @classmethod
    def absolute(cls, entry, direction, depth: float) -> "Placement":
        return cls(tuple(map(float, entry)), tuple(unit(direction)), float(depth))

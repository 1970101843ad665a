"""The segmental rule (which muscles to needle) and positions of trigger loci.

Segmental rule (Gunn's IMS; see docs/scenarios.md for the sources):

* paraspinal: the multifidus fascicles at each affected level (multifidus is supplied
  level by level by the medial branch of the same dorsal ramus), on the affected side(s),
  scored with a level tolerance. Where the atlas has no multifidus at that level (e.g.
  S1) the nearest level within the tolerance stands in for it; where there is none
  within it (e.g. C1) the most level-specific dorsal-ramus muscles supplied by the
  segment (fewest roots, at most :data:`MAX_FALLBACK_ROOTS`; e.g. semispinalis capitis) do.
* peripheral: the atlas muscles whose root range includes the segment (their
  ``Structure.segments``), on the affected side(s), except dorsal-ramus back muscles
  (they are paraspinal and not level-specific). A muscle whose dominant root is the
  segment weighs ``dominant_root_factor`` times more; a weakly sourced supply
  ``uncertain_factor`` times less.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...model.atlas import Atlas, AtlasLookupError, Structure, segment_index
from ...model.loci import distance_to, point_along, principal_axis, resolve_locus, snap_inside  # noqa: F401 (public here too)
from .model import Scenario

_SIDE_SUFFIX = {"left": "l", "right": "r"}


@dataclass(frozen=True)
class ResolvedTarget:
    """A target as scoring uses it: one atlas structure with its weight and tolerance."""

    structure: str  # atlas structure id
    name: str
    kind: str  # "paraspinal" or "peripheral"
    segments: tuple[str, ...]  # the affected segment(s) it stands for
    side: str
    level: str | None  # multifidus level (paraspinal), else None
    level_tolerance: int
    weight: float
    depth_mm: tuple[float, float] | None = None
    origin: str = "derived"  # "derived" (segmental rule) or "author"
    reason: str = ""

    def to_dict(self) -> dict:
        return {
            "structure": self.structure,
            "name": self.name,
            "kind": self.kind,
            "segments": list(self.segments),
            "side": self.side,
            "level": self.level,
            "level_tolerance": self.level_tolerance,
            "weight": self.weight,
            "depth_mm": list(self.depth_mm) if self.depth_mm else None,
            "origin": self.origin,
            "reason": self.reason,
        }


#: Paraspinal muscles supplied level by level (the medial branch of that level's dorsal
#: ramus): each structure has its ``level``. Rotatores lie deep to multifidus on the laminae.
SEGMENTAL_MUSCLES = ("multifidus", "rotatores")


def is_multifidus(s: Structure) -> bool:
    """A segmental paraspinal muscle (multifidus or rotatores) with its level."""
    return s.kind == "muscle" and bool(s.level) and (s.muscle or "").startswith(SEGMENTAL_MUSCLES)


def is_derived_target(s: Structure) -> bool:
    """False for muscles IMS does not needle as a myotome target (``target: false`` in
    meshes/muscles.yaml: the anterior neck's strap muscles, the intercostals and the
    diaphragm over the lung, the pelvic floor); authors may still add them by hand."""
    return s.meta.get("target", True) is not False


def is_dorsal_ramus_muscle(s: Structure) -> bool:
    nerve = (s.innervation.nerve if s.innervation else "").lower()
    return "dorsal ram" in nerve


def structure_kind(s: Structure) -> str:
    """'paraspinal' for back muscles supplied by dorsal rami, else 'peripheral'."""
    return "paraspinal" if (is_multifidus(s) or is_dorsal_ramus_muscle(s)) else "peripheral"


def paraspinal_candidates(atlas: Atlas, segment: str, side: str, tolerance: int) -> list[Structure]:
    """Multifidus at ``segment`` on ``side``, else the nearest level within ``tolerance``."""
    mf = [s for s in atlas.find(kind="muscle", side=side) if is_multifidus(s)]
    exact = [s for s in mf if s.level == segment]
    if exact:
        return exact
    si = segment_index(segment)
    best: list[tuple[int, Structure]] = []
    for s in mf:
        try:
            d = abs(segment_index(s.level) - si)
        except ValueError:
            continue
        if d <= tolerance:
            best.append((d, s))
    if not best:
        return []
    dmin = min(d for d, _ in best)
    return [s for d, s in best if d == dmin]


#: Dorsal-ramus muscles supplied by more roots than this never stand in for a level.
MAX_FALLBACK_ROOTS = 8


def fallback_paraspinal(atlas: Atlas, segment: str, side: str) -> list[Structure]:
    """The most level-specific dorsal-ramus muscles supplied by ``segment`` (no multifidus there).

    Those with the fewest roots win (e.g. semispinalis capitis, C1-C6, for C1), and
    broadly supplied ones (longissimus, T1-L5) never do.
    """
    cands = [s for s in atlas.muscles_for_segment(segment)
             if s.side == side and is_dorsal_ramus_muscle(s) and not is_multifidus(s)
             and len(s.segments) <= MAX_FALLBACK_ROOTS]
    if not cands:
        return []
    narrowest = min(len(s.segments) for s in cands)
    return [s for s in cands if len(s.segments) == narrowest]


@dataclass
class Derivation:
    """derive_targets' full answer: the targets and notes on what could not be found."""

    targets: list[ResolvedTarget] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def derive(scenario: Scenario, atlas: Atlas) -> Derivation:
    """Targets plus notes (e.g. "no multifidus at C1 in this atlas")."""
    t = scenario.targets
    dx = scenario.diagnosis
    out: dict[str, ResolvedTarget] = {}
    notes: list[str] = []
    if t.derive:
        for seg in dx.segments:
            for side in dx.sides:
                if t.paraspinal:
                    cands = paraspinal_candidates(atlas, seg, side, t.level_tolerance)
                    if not cands:
                        # no multifidus there (e.g. C1): the dorsal-ramus muscles supplied by the segment
                        cands = fallback_paraspinal(atlas, seg, side)
                        if not cands:
                            note = (f"no multifidus or other dorsal-ramus muscle at or within "
                                    f"{t.level_tolerance} level(s) of {seg} in this atlas")
                            if note not in notes:
                                notes.append(note)
                    for s in cands:
                        prev = out.get(s.id)
                        segs = tuple(dict.fromkeys((prev.segments if prev else ()) + (seg,)))
                        if not is_multifidus(s):
                            reason = f"dorsal-ramus muscle supplied by {seg} (no multifidus at {seg})"
                        else:
                            reason = "multifidus at the affected level" if s.level == seg else f"nearest multifidus to {seg}"
                        out[s.id] = ResolvedTarget(
                            s.id, s.name, "paraspinal", segs, side, s.level if is_multifidus(s) else None, t.level_tolerance,
                            max(prev.weight if prev else 0.0, t.paraspinal_weight), None, "derived",
                            prev.reason if prev and s.level != seg else reason,
                        )
                if t.peripheral:
                    for s in atlas.muscles_for_segment(seg):
                        if s.side != side or is_multifidus(s) or is_dorsal_ramus_muscle(s) or not is_derived_target(s):
                            continue
                        w = t.peripheral_weight
                        inn = s.innervation
                        dominant = bool(inn and inn.dominant == seg)
                        if dominant:
                            w *= t.dominant_root_factor
                        if s.meta.get("uncertain"):
                            w *= t.uncertain_factor
                        prev = out.get(s.id)
                        segs = tuple(dict.fromkeys((prev.segments if prev else ()) + (seg,)))
                        roots = "-".join([inn.roots[0], inn.roots[-1]]) if inn and inn.roots else "?"
                        reason = f"{inn.nerve if inn else 'supply'} ({roots}" + (f", dominant {seg})" if dominant else ")")
                        out[s.id] = ResolvedTarget(
                            s.id, s.name, "peripheral", segs, side, None, t.level_tolerance,
                            round(max(prev.weight if prev else 0.0, w), 4), None, "derived", reason,
                        )
    for name in t.remove:
        try:
            s = atlas.get(name)
        except AtlasLookupError:
            continue  # reported by validation
        out.pop(s.id, None)
    for add in t.add:
        try:
            s = atlas.get(add.structure)
        except AtlasLookupError:
            continue
        prev = out.get(s.id)
        kind = add.kind or (prev.kind if prev else structure_kind(s))
        tol = add.level_tolerance if add.level_tolerance is not None else t.level_tolerance
        segs = prev.segments if prev else tuple(x for x in s.segments if x in dx.segments) or tuple(dx.segments)
        out[s.id] = ResolvedTarget(
            s.id, s.name, kind, segs, s.side, s.level if is_multifidus(s) else None, tol, add.weight,
            tuple(add.depth_mm) if add.depth_mm else None, "author",
            "added by the author" if prev is None else "re-weighted by the author",
        )
    return Derivation(list(out.values()), notes)


def derive_targets(scenario: Scenario, atlas: Atlas) -> list[ResolvedTarget]:
    """The scenario's targets, resolved against ``atlas`` (paraspinal first, then peripheral)."""
    ts = derive(scenario, atlas).targets
    return sorted(ts, key=lambda r: (r.kind != "paraspinal", -r.weight, r.structure))


# ----------------------------------------------------------------------------- loci

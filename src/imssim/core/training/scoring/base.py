"""The metric plug-in interface, the samples metrics read, and the registry.

A metric is a small class::

    @register
    class MyMetric(Metric):
        name = "my_metric"; family = "technique"; unit = "mm"
        def add_sample(self, s): ...          # every needle pose (a PoseSample)
        def add_event(self, e): ...           # every physiology Event
        def result(self): return MetricResult(self.name, value, self.unit, sentence, score)

``start(context)`` is called first and ``finish()`` last; ``score`` (0..1, or None when
the metric does not count towards its family) feeds the weighted total.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: A needle resting on bone counts as in the muscle it crossed within this distance above the bone.
BONE_MUSCLE_MM = 10.0

FAMILIES = ("targeting", "level_accuracy", "coverage", "safety", "technique")


@dataclass
class PoseSample:
    """One needle pose with what the traversal engine found there."""

    t: float
    needle: int
    action: str
    entry: np.ndarray
    direction: np.ndarray
    depth: float
    tip: np.ndarray
    tip_structure: str | None
    tip_kind: str | None = None
    layers: list[str] = field(default_factory=list)  # structures entered along the shaft, in order
    bone: str | None = None
    breaches: list[tuple[str, str, float]] = field(default_factory=list)  # (structure, harm, depth)
    clearances: dict[str, tuple[str, float]] = field(default_factory=dict)  # structure -> (harm, mm)
    length_mm: float | None = None  # the needle's length (for the case's needle zones)

    @classmethod
    def from_traversal(cls, t: float, needle: int, action: str, tr, atlas) -> "PoseSample":
        ts = tr.structure_at_tip
        if ts is None and tr.bone_contact is not None:
            ts = muscle_above_bone(tr.intervals, tr.depth, atlas)
        return cls(
            float(t), int(needle), action, np.asarray(tr.entry, float), np.asarray(tr.direction, float),
            float(tr.depth), np.asarray(tr.tip, float), ts, atlas.structures[ts].kind if ts else None,
            [s for s in tr.layers if atlas.structures[s].kind not in ("skin", "subcutaneous")],
            tr.bone_contact.structure if tr.bone_contact else None,
            [(b.structure, b.harm, float(b.depth)) for b in tr.breaches],
            {c.structure: (c.harm, float(c.shaft_mm)) for c in tr.clearances},
        )


def muscle_above_bone(intervals, depth: float, atlas) -> str | None:
    """The muscle a needle resting on bone last crossed (within BONE_MUSCLE_MM of the bone):
    the one it left deepest; where two overlap down to the bone, the segmental paraspinal
    one (multifidus, rotatores: it has a level), as the traversal engine ranks them."""
    cands = [iv for iv in intervals if iv.kind == "muscle" and iv.exit_depth >= depth - BONE_MUSCLE_MM]
    # a muscle's own mesh before the grid's naming of the space beside it
    cands = [iv for iv in cands if not getattr(iv, "filled", False)] or cands
    if not cands:
        return None

    def rank(iv):
        st = atlas.structures.get(iv.structure) if hasattr(atlas, "structures") else None
        return (round(iv.exit_depth * 2) / 2, bool(st is not None and st.level), iv.entry_depth)

    return max(cands, key=rank).structure


@dataclass
class Context:
    """What every metric may read: the atlas, the scenario, its targets and loci."""

    atlas: object
    scenario: object | None
    targets: list  # ResolvedTarget
    loci: list  # physiology.Locus
    watched: set[str] | None = None  # danger structures watched (None: all with a harm)
    t_end: float | None = None  # when the session finished (s from its start), set by Session.finish

    def __post_init__(self):
        self.target_ids = {t.structure: t for t in self.targets}  # structure id -> ResolvedTarget

    def watched_breach(self, structure: str) -> bool:
        return self.watched is None or structure in self.watched


@dataclass
class MetricResult:
    name: str
    value: float | int | None
    unit: str
    sentence: str
    score: float | None = None  # 0..1 contribution to the family, None: informative only
    family: str | None = None
    details: list[dict] = field(default_factory=list)  # per needle, per structure, ...

    def to_dict(self) -> dict:
        v = self.value
        if isinstance(v, float):
            v = None if not np.isfinite(v) else round(v, 3)
        return {"name": self.name, "value": v, "unit": self.unit, "sentence": self.sentence,
                "score": None if self.score is None else round(float(self.score), 4), "family": self.family,
                "details": self.details}


class Metric:
    name = "metric"
    family: str | None = None
    unit = ""

    def start(self, context: Context) -> None:
        self.ctx = context

    def add_sample(self, sample: PoseSample) -> None:  # pragma: no cover - default no-op
        pass

    def add_event(self, event) -> None:  # pragma: no cover - default no-op
        pass

    def finish(self) -> None:
        pass

    def result(self) -> MetricResult:  # pragma: no cover - abstract
        raise NotImplementedError


REGISTRY: dict[str, type[Metric]] = {}


def register(cls: type[Metric]) -> type[Metric]:
    """Class decorator: make a metric available to every grading run."""
    if cls.name in REGISTRY:
        raise ValueError(f"a metric named {cls.name!r} is already registered")
    REGISTRY[cls.name] = cls
    return cls


def create_all(names=None) -> list[Metric]:
    return [REGISTRY[n]() for n in (names or REGISTRY)]

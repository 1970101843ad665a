"""What a traversal query returns (intervals, breaches, clearances, bone contact), and the
constants of the traversal rules (docs/needle.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np



EPS = 1e-4  # mm: step past a crossing before casting again
TOUCH_MM = 1e-3  # mm: a tip this close to a surface touches it
NEARBY_MM = 100.0  # danger structures within this distance are reported
SAMPLE_EDGE_MM = 2.0  # danger surfaces are sampled at least this densely (clearance accuracy ~1 mm)
COARSE_EDGE_MM = 8.0  # coarse danger samples bound the fine search (pruning only)
FINE_WITHIN_MM = 30.0  # closer than this, clearances come from the fine samples
SHAFT_STEP_MM = 1.0  # the shaft is sampled this densely for its clearance (error <= 0.5 mm)
BATCH_COARSE_STEP_MM = 4.0  # batch clearances: the coarse pass samples the shaft this densely
FAT_TO_FASCIA_MM = 40.0  # fat extends over gaps up to this long to the first muscle (see _fat_to_fascia)
MAX_HITS = 256
FILL_STEP_MM = 0.5  # the fill grid is sampled this densely along a gap
SEAM_MM = 1.0  # a gap between meshes shorter than this is a seam: the structure before spans it
NORMAL_RADIUS_MM = 30.0  # the skin normal is averaged over this radius (a palm-sized patch)

#: Tip-structure priority: the most specific kind wins when several contain the tip.
KIND_PRIORITY = {"nerve": 6, "vessel": 6, "canal": 6, "organ": 5, "muscle": 4, "bone": 3, "subcutaneous": 2, "skin": 1}


@dataclass(frozen=True)
class Interval:
    """A stretch of the shaft inside one structure (depths in mm from the entry point)."""

    structure: str
    kind: str
    entry_depth: float
    exit_depth: float
    exited: bool  # False if the structure still contains the tip
    filled: bool = False  # named by the fill grid (the tissue between the meshes), not a mesh


@dataclass(frozen=True)
class Breach:
    structure: str
    harm: str
    depth: float  # depth at which the needle entered it


@dataclass(frozen=True)
class Clearance:
    structure: str
    harm: str
    tip_mm: float  # 0 when the tip is inside
    shaft_mm: float  # min over the inserted shaft, 0 when breached


@dataclass(frozen=True)
class BoneContact:
    structure: str
    depth: float
    point: tuple[float, float, float]


@dataclass
class Traversal:
    """Everything the simulator knows about one needle pose."""

    entry: np.ndarray
    direction: np.ndarray
    requested_depth: float
    depth: float  # actual depth (less than requested when bone stopped the needle)
    tip: np.ndarray
    intervals: list[Interval]
    at_tip: list[str]  # structures containing the tip, most specific first
    bone_contact: BoneContact | None
    breaches: list[Breach]
    clearances: list[Clearance]
    fallbacks: list[str] = field(default_factory=list)

    @property
    def structure_at_tip(self) -> str | None:
        return self.at_tip[0] if self.at_tip else None

    @property
    def layers(self) -> list[str]:
        """Structure ids in the order the shaft enters them."""
        out: list[str] = []
        for iv in self.intervals:
            if iv.structure not in out:
                out.append(iv.structure)
        if self.bone_contact:
            out.append(self.bone_contact.structure)
        return out

    def clearance_to(self, structure: str) -> Clearance | None:
        for c in self.clearances:
            if c.structure == structure:
                return c
        return None

    @property
    def min_clearance(self) -> Clearance | None:
        return min(self.clearances, key=lambda c: c.shaft_mm) if self.clearances else None


@dataclass(frozen=True)
class SkinHit:
    point: np.ndarray
    normal: np.ndarray  # outward surface normal at the hit
    structure: str
    distance: float
    on_skin: bool  # False when the atlas has no skin and another surface was hit


@dataclass
class BatchResult:
    """Compact results of many needles (arrays of length n)."""

    depth: np.ndarray  # actual depth
    tip: np.ndarray  # (n, 3)
    tip_structure: np.ndarray  # index into TissueIndex.ids, -1 for none
    bone_contact: np.ndarray  # index of the bone hit, -1 for none
    breach: np.ndarray  # index of the first danger structure entered, -1 for none
    breach_depth: np.ndarray
    n_breaches: np.ndarray | None = None  # how many danger structures each needle entered
    #: with ``query_batch(..., intervals=True)``: each needle's intervals as (n, K) arrays of
    #: structure index, entry and exit depth and filled flag, and their count per needle
    iv_structure: np.ndarray | None = None
    iv_entry: np.ndarray | None = None
    iv_exit: np.ndarray | None = None
    iv_filled: np.ndarray | None = None
    iv_count: np.ndarray | None = None


def _merge_runs(ivs: list[Interval]) -> list[Interval]:
    """Join an interval to the one before it when both are the same structure and touch."""
    out: list[Interval] = []
    for iv in ivs:
        if out and out[-1].structure == iv.structure and iv.entry_depth <= out[-1].exit_depth + EPS:
            p = out[-1]
            out[-1] = Interval(p.structure, p.kind, p.entry_depth, max(p.exit_depth, iv.exit_depth),
                               iv.exited if iv.exit_depth >= p.exit_depth else p.exited, p.filled and iv.filled)
        else:
            out.append(iv)
    return out


def _shaft_mm(c: Clearance) -> float:
    return c.shaft_mm


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    n = np.linalg.norm(v)
    if not np.isfinite(n) or n < 1e-12:
        raise ValueError(f"direction {v.tolist()} has no length")
    return v / n

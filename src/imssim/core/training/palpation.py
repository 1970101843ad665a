"""Palpation: what the fingers find where they press on the skin (no recording here)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: how deep under the skin the fingers feel, mm
FEEL_DEPTH_MM = 70.0
#: a locus is felt within its radius plus this, mm
FINGER_MM = 10.0


@dataclass
class PalpationResult:
    """One press on the skin: where, what was found (tender points, taut bands), the muscle
    under the fingers (recorded when there is one)."""

    point: np.ndarray
    normal: np.ndarray
    found: list = field(default_factory=list)  # dicts: kind, text, structure
    muscle: str | None = None
    t: float | None = None

    @property
    def kinds(self) -> list[str]:
        return [f["kind"] for f in self.found] or ["none"]


def under_fingers(index, point, normal_out) -> list[str]:
    """Structures under the skin at ``point`` (outward normal ``normal_out``), outermost first."""
    inward = -np.asarray(normal_out, float) / np.linalg.norm(normal_out)
    tr = index.query(np.asarray(point, float), inward, FEEL_DEPTH_MM)
    return [iv.structure for iv in tr.intervals]


def findings_at(loci, point, normal_out, under: list[str]) -> list[dict]:
    """The case's palpable findings felt at ``point``: within a locus's radius (and not far
    below), or the finding's muscle lying under the fingers when it has no locus."""
    point = np.asarray(point, float)
    inward = -np.asarray(normal_out, float) / np.linalg.norm(normal_out)
    found = []
    for f, p in loci:
        if p is not None:
            v = p - point
            lateral = np.linalg.norm(v - (v @ inward) * inward)
            hit = lateral <= (f.locus.radius_mm + FINGER_MM) and -5.0 <= v @ inward <= 90.0
        else:
            hit = f.structure is not None and f.structure in under
        if hit:
            found.append({"kind": f.kind, "text": f.description, "structure": f.structure})
    return found

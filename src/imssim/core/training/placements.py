"""Placements files: needles listed by entry, direction and depth, graded without the window.

See docs/placements.md. YAML or JSON::

    version: 1
    needles:
      - landmark: L5_spinous      # landmark-relative entry, projected onto the skin
        lateral_mm: 20
        side: right
        cranial_mm: 16
        approach: posterior       # posterior | anterior | left | right | superior
        medial_deg: 10            # tilts from the inward skin normal
        caudal_deg: 0
        depth: 45
        length_mm: 50             # optional needle (default 50 mm x 0.25 mm)
      - entry: [-20, 265, 1030]   # absolute entry (mm, LPS)
        direction: [0, -1, 0]     # or toward: [x, y, z] (depth defaults to the distance)
        depth: 40
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engines.needle import VIEW_DIRECTIONS, Needle, NeedleError, Placement, unit

PLACEMENTS_VERSION = 1
MAX_BYTES = 64 * 1024 * 1024
_LANDMARK_KEYS = {"landmark", "lateral_mm", "side", "cranial_mm", "approach", "medial_deg", "caudal_deg", "direction"}
_ABS_KEYS = {"entry", "direction", "toward"}
_COMMON = {"depth", "length_mm", "gauge_mm", "label", "t"}


class PlacementsError(ValueError):
    """A bad placements file (message: ``file: needles[i].field: what was expected``)."""


@dataclass(frozen=True)
class NeedleSpec:
    """One needle of a placements file, resolved to an entry, a direction and a depth."""

    placement: Placement
    needle: Needle
    label: str = ""
    t: float | None = None


def _vec(path, where, v) -> np.ndarray:
    try:
        a = np.asarray(v, float)
    except (TypeError, ValueError):
        a = None
    if a is None or a.shape != (3,) or not np.isfinite(a).all():
        raise PlacementsError(f"{path}: {where}: expected three numbers [x, y, z], got {v!r}")
    return a


def _num(path, where, v, lo=None, hi=None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
        raise PlacementsError(f"{path}: {where}: expected a number, got {v!r}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise PlacementsError(f"{path}: {where}: expected a number from {lo} to {hi}, got {v!r}")
    return float(v)


def read_document(path) -> dict:
    """A placements file's document, read safely (:mod:`imssim.core.safefile`: no YAML
    anchors, aliases or tags, capped size and nesting); raises PlacementsError."""
    from ..safefile import SafeFileError, read_data

    path = Path(path)
    try:
        doc = read_data(path, MAX_BYTES, what="a placements file")
    except SafeFileError as e:
        raise PlacementsError(str(e)) from None
    if not isinstance(doc, dict):
        raise PlacementsError(f"{path}: expected a mapping with 'version' and 'needles'")
    return doc


def parse(doc: dict, index, path="placements") -> list[NeedleSpec]:
    """Resolve every needle of a placements document against a TissueIndex."""
    if doc.get("version", PLACEMENTS_VERSION) != PLACEMENTS_VERSION:
        raise PlacementsError(f"{path}: version: expected {PLACEMENTS_VERSION}, got {doc.get('version')!r}")
    extra = set(doc) - {"version", "needles", "scenario", "comment"}
    if extra:
        raise PlacementsError(f"{path}: unknown field {sorted(extra)[0]!r} (expected version, needles, scenario, comment)")
    needles = doc.get("needles")
    if not isinstance(needles, list) or not needles:
        raise PlacementsError(f"{path}: needles: expected a non-empty list of needles")
    out = []
    for i, n in enumerate(needles):
        where = f"needles[{i}]"
        if not isinstance(n, dict):
            raise PlacementsError(f"{path}: {where}: expected a mapping, got {n!r}")
        unknown = set(n) - _LANDMARK_KEYS - _ABS_KEYS - _COMMON
        if unknown:
            raise PlacementsError(f"{path}: {where}.{sorted(unknown)[0]}: unknown field")
        try:
            needle = Needle(_num(path, f"{where}.length_mm", n.get("length_mm", 50.0)),
                            _num(path, f"{where}.gauge_mm", n.get("gauge_mm", 0.25)))
        except NeedleError as e:
            raise PlacementsError(f"{path}: {where}: {e}") from None
        depth = n.get("depth")
        try:
            if "landmark" in n:
                if "entry" in n or "toward" in n:
                    raise PlacementsError(f"{path}: {where}: give either landmark or entry, not both")
                if depth is None:
                    raise PlacementsError(f"{path}: {where}.depth: required")
                lm = n["landmark"]
                if not isinstance(lm, str):
                    raise PlacementsError(f"{path}: {where}.landmark: expected a landmark name")
                try:
                    index.atlas.landmark(lm)
                except Exception as e:  # AtlasLookupError with did-you-mean
                    raise PlacementsError(f"{path}: {where}.landmark: {e}") from None
                side = n.get("side")
                if side not in (None, "left", "right"):
                    raise PlacementsError(f"{path}: {where}.side: expected left or right, got {side!r}")
                approach = n.get("approach", "posterior")
                if approach not in VIEW_DIRECTIONS:
                    raise PlacementsError(f"{path}: {where}.approach: expected one of {', '.join(VIEW_DIRECTIONS)}")
                p = Placement.from_landmark(
                    index, lm, _num(path, f"{where}.depth", depth, 0, 200),
                    lateral_mm=_num(path, f"{where}.lateral_mm", n.get("lateral_mm", 0.0), -300, 300),
                    side=side, cranial_mm=_num(path, f"{where}.cranial_mm", n.get("cranial_mm", 0.0), -500, 500),
                    approach=approach,
                    direction=_vec(path, f"{where}.direction", n["direction"]) if "direction" in n else None,
                    medial_deg=_num(path, f"{where}.medial_deg", n.get("medial_deg", 0.0), -89, 89),
                    caudal_deg=_num(path, f"{where}.caudal_deg", n.get("caudal_deg", 0.0), -89, 89))
            elif "entry" in n:
                e = _vec(path, f"{where}.entry", n["entry"])
                if ("direction" in n) == ("toward" in n):
                    raise PlacementsError(f"{path}: {where}: give exactly one of direction or toward")
                if "toward" in n:
                    to = _vec(path, f"{where}.toward", n["toward"])
                    d = to - e
                    if depth is None:
                        depth = float(np.linalg.norm(d))
                else:
                    d = _vec(path, f"{where}.direction", n["direction"])
                if depth is None:
                    raise PlacementsError(f"{path}: {where}.depth: required")
                p = Placement.absolute(e, unit(d), _num(path, f"{where}.depth", depth, 0, 200))
            else:
                raise PlacementsError(f"{path}: {where}: give landmark (landmark-relative) or entry (absolute)")
        except NeedleError as e:
            raise PlacementsError(f"{path}: {where}: {e}") from None
        if p.depth > needle.length_mm:
            raise PlacementsError(f"{path}: {where}.depth: {p.depth:g} mm exceeds the {needle.length_mm:g} mm needle")
        t = n.get("t")
        label = n.get("label", "")
        if not isinstance(label, (str, int, float)) or isinstance(label, bool) or len(str(label)) > 200:
            raise PlacementsError(f"{path}: {where}.label: expected a short text (at most 200 characters)")
        out.append(NeedleSpec(p, needle, str(label),
                              None if t is None else _num(path, f"{where}.t", t, 0)))
    return out


def load_placements(path, index) -> list[NeedleSpec]:
    return parse(read_document(path), index, str(path))


def write_placements(path, needles: list[dict]) -> None:
    Path(path).write_text(json.dumps({"version": PLACEMENTS_VERSION, "needles": needles}, indent=1), encoding="utf-8")

"""Tissue traversal: what a needle passes through, where its tip is, how close danger is.

One :class:`TissueIndex` (``index.py``) per atlas, its work split by concern: ``cast.py``
(the BVH and the ray casting), ``classify.py`` (crossings -> intervals; the query),
``gaps.py`` (the tissue between the meshes), ``clearance.py`` (danger clearances),
``surface.py`` (the skin), ``batch.py`` (many needles at once), ``native.py`` (the
compiled kernels), ``results.py`` (what a query returns). The rules: docs/needle.md.
"""

from .cast import winding_number
from .index import TissueIndex
from .results import (
    Interval,
    Breach,
    Clearance,
    BoneContact,
    Traversal,
    SkinHit,
    BatchResult,
    EPS,
    TOUCH_MM,
    NEARBY_MM,
    SAMPLE_EDGE_MM,
    COARSE_EDGE_MM,
    FINE_WITHIN_MM,
    SHAFT_STEP_MM,
    BATCH_COARSE_STEP_MM,
    FAT_TO_FASCIA_MM,
    MAX_HITS,
    FILL_STEP_MM,
    SEAM_MM,
    NORMAL_RADIUS_MM,
    KIND_PRIORITY,
)

__all__ = ["TissueIndex", "Interval", "Breach", "Clearance", "BoneContact", "Traversal", "SkinHit", "BatchResult", "winding_number", "EPS", "TOUCH_MM", "NEARBY_MM", "SAMPLE_EDGE_MM", "COARSE_EDGE_MM", "FINE_WITHIN_MM", "SHAFT_STEP_MM", "BATCH_COARSE_STEP_MM", "FAT_TO_FASCIA_MM", "MAX_HITS", "FILL_STEP_MM", "SEAM_MM", "NORMAL_RADIUS_MM", "KIND_PRIORITY"]

"""The slice along the needle (core): the cut agrees with the tissue ray casting."""

from __future__ import annotations

import numpy as np
import pytest

from imssim.core.engines.needle import Placement
from imssim.core.engines.slice import PLANES, SliceCache, needle_slice, plane_axes


@pytest.mark.parametrize("plane", PLANES)
def test_slice_outlines_cross_the_needle_where_the_traversal_enters_and_leaves(atlas, index, plane):
    p = Placement.from_landmark(index, "L5_spinous", depth=40, lateral_mm=22, side="right")
    # the meshes' own crossings (the fill grid's naming of the gaps is not a mesh outline)
    fill, index._fill = index._fill, None
    try:
        tr = index.query(p.entry, p.direction, 40)
    finally:
        index._fill = fill
    sl = needle_slice(atlas, p.entry, p.direction, 50, plane)
    assert abs(sl.direction @ sl.across) < 1e-9 and abs(sl.normal @ sl.direction) < 1e-9
    muscles = [iv for iv in tr.intervals if iv.kind == "muscle"]
    assert muscles, tr.intervals
    for iv in muscles + [tr.intervals[0]]:  # each muscle, and the skin
        xs = np.array(sl.crossings_on_needle(iv.structure))
        assert len(xs), (iv.structure, plane)
        if iv.exited:  # the tip's own structure has no exit crossing
            assert np.min(np.abs(xs - iv.exit_depth)) < 0.5, (iv.structure, iv.exit_depth, xs)
        if iv.entry_depth > 0.5:
            assert np.min(np.abs(xs - iv.entry_depth)) < 0.5, (iv.structure, iv.entry_depth, xs)
    # drawn from the surface inwards: skin before fat before muscle before bone
    kinds = [ln.kind for ln in sl.lines]
    assert kinds.index("skin") < kinds.index("subcutaneous") < kinds.index("muscle") < kinds.index("bone")
    # every segment lies in the cut's window (a margin of 5 mm for segments crossing its edge)
    u0, u1, v0, v1 = sl.bounds
    for ln in sl.lines:
        assert (ln.segments[..., 0].max(axis=1) >= u0 - 5).all() and (np.abs(ln.segments[..., 1]).min(axis=1) <= v1 + 5).all()


def test_the_sagittal_plane_holds_the_head_to_foot_axis(index):
    d = np.array([0.2, -1.0, 0.1])
    across, n = plane_axes(d, "sagittal")
    assert abs(n[2]) < 1e-9  # normal perpendicular to z: z lies in the plane
    across, n = plane_axes(d, "transverse")
    assert abs(n[0]) < 1e-9
    with pytest.raises(ValueError, match="unknown slice plane"):
        plane_axes(d, "coronal")


def test_the_cut_is_made_once_per_entry_direction_and_plane(atlas, index):
    p = Placement.from_landmark(index, "T4_spinous", depth=20, lateral_mm=30, side="left")
    cache = SliceCache()
    a = cache.get(atlas, p.entry, p.direction, 50, "sagittal")
    assert cache.get(atlas, p.entry, p.direction, 50, "sagittal") is a and cache.computed == 1
    # over the upper back the pleura shows up red in the cut (a danger structure with its harm)
    assert any(ln.harm == "pneumothorax" for ln in a.lines)
    cache.get(atlas, p.entry, p.direction, 50, "transverse")
    cache.get(atlas, p.entry, np.asarray(p.direction) + [0.05, 0, 0], 50, "transverse")
    assert cache.computed == 3

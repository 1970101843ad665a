"""The needle: sizes, angle conventions, and a placement as a timed sequence of poses."""

from __future__ import annotations

import numpy as np
import pytest

from imssim.core.engines.needle import (
    PRESET_LENGTHS_MM, Needle, NeedleError, NeedleTrack, Placement, direction_from_angles, landmark_point,
)


def test_presets_and_limits():
    assert PRESET_LENGTHS_MM == (15, 25, 30, 40, 50, 60, 75)
    assert Needle.preset(40).length_mm == 40
    with pytest.raises(NeedleError, match="preset"):
        Needle.preset(45)
    with pytest.raises(NeedleError, match="length"):
        Needle(length_mm=500)
    with pytest.raises(NeedleError, match="gauge"):
        Needle(gauge_mm=2.0)


def test_angle_conventions():
    n_out = np.array([0, 1.0, 0])  # skin of the back faces posterior
    right = np.array([-30.0, 0, 0])  # a point on the patient's right
    d = direction_from_angles(n_out, right)
    assert d == pytest.approx([0, -1, 0])
    d = direction_from_angles(n_out, right, medial_deg=15)
    assert d[0] > 0 and np.degrees(np.arccos(-d[1])) == pytest.approx(15)  # toward the midline (+x)
    d = direction_from_angles(n_out, -right, medial_deg=15)
    assert d[0] < 0  # on the left side medial is -x
    d = direction_from_angles(n_out, right, caudal_deg=10)
    assert d[2] < 0 and np.degrees(np.arcsin(-d[2])) == pytest.approx(10)
    d = direction_from_angles(n_out, right, medial_deg=15, caudal_deg=10)
    assert np.linalg.norm(d) == pytest.approx(1)
    with pytest.raises(NeedleError, match="midline"):
        direction_from_angles(n_out, np.zeros(3), medial_deg=10)


def test_track_advance_withdraw_redirect_remove():
    tr = NeedleTrack(Needle(50))
    tr.insert(0.0, (0, 0, 0), (0, -1, 0))
    tr.advance(1.0, 20)
    tr.advance(2.0, 100)  # cannot go past the needle's length
    assert tr.pose.depth == 50
    tr.withdraw(3.0, 10)
    assert tr.pose.depth == 40
    tr.redirect(4.0, (0.2, -1, 0))
    assert tr.pose.depth == 5.0 and tr.redirections == 1
    assert tr.pose.direction[0] > 0
    tr.advance(5.0, 10)
    assert [p.action for p in tr.poses] == ["insert", "advance", "advance", "withdraw", "redirect", "advance"]
    assert tr.pose.tip == pytest.approx(np.array(tr.pose.direction) * 15)
    with pytest.raises(NeedleError, match="before"):
        tr.advance(1.0, 1)
    tr.remove(6.0)
    with pytest.raises(NeedleError, match="removed"):
        tr.advance(7.0, 1)


def test_landmark_offsets(atlas):
    p = landmark_point(atlas, "L5_spinous", lateral_mm=20, side="right", cranial_mm=5)
    l5 = atlas.landmark("L5_spinous").xyz
    assert p == pytest.approx(l5 + [-20, 0, 5])
    with pytest.raises(NeedleError, match="side"):
        landmark_point(atlas, "L5_spinous", lateral_mm=20)


@pytest.fixture(scope="module")
def ix(atlas):
    from imssim.core.engines.traversal import TissueIndex

    return TissueIndex(atlas)


def test_placement_from_landmark_lands_on_skin(atlas, ix):
    p = Placement.from_landmark(ix, "L4_spinous", depth=30, lateral_mm=25, side="left", medial_deg=10)
    assert p.on_skin
    assert p.entry[0] > 15  # left is +x
    assert p.entry[1] > atlas.landmark("L4_spinous").xyz[1]  # skin lies behind the bone
    assert np.dot(p.direction, p.normal) < -0.9  # into the body, ~perpendicular


def test_raw_offset_equals_lateral_offset(atlas, ix):
    a = Placement.from_landmark(ix, "L5_spinous", depth=30, lateral_mm=22, side="right")
    b = Placement.from_landmark(ix, "L5_spinous", depth=30, offset_mm=(-22, 0, 0), side="right")
    assert b.entry == pytest.approx(a.entry) and b.direction == pytest.approx(a.direction)
    assert a.entry[0] < atlas.landmark("L5_spinous").xyz[0] - 15  # right is -x

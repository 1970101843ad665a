"""Physiology: responses, seeded twitch statistics, habituation, release (issue #6)."""

from __future__ import annotations

import numpy as np
import pytest

from imssim.core.engines.physiology import Locus, Physiology, PhysiologyParams
from imssim.core.training.session import Session

from needle_helpers import needle_into

MUSCLE = "gluteus_medius_r"


def _phys(atlas, seed, s=0.8, radius=10.0, scale=1.0):
    p = Physiology(atlas, None, seed=seed, params=PhysiologyParams(twitch_probability_scale=scale),
                   loci=[Locus(MUSCLE, 0, np.zeros(3), radius)])
    st = p.muscle_state(MUSCLE)
    st.initial = st.supersensitivity = s
    return p


def _twitch_rate(atlas, distance, trials=400, s=0.8):
    n = 0
    for seed in range(trials):
        p = _phys(atlas, seed, s)
        ev = p.on_pose(0.0, 0, "insert", MUSCLE, "muscle", 40.0, np.array([distance, 0.0, 0.0]), None, [])
        n += any(e.kind == "twitch" for e in ev)
    return n / trials


def test_twitch_rate_rises_as_the_tip_nears_a_locus(atlas):
    rates = [_twitch_rate(atlas, d) for d in (0.0, 8.0, 15.0, 25.0, 40.0)]
    assert rates[0] > rates[1] > rates[2] > rates[3] >= rates[4]
    assert rates[0] == pytest.approx(0.8, abs=0.07)  # p = supersensitivity at the locus
    assert rates[4] == 0.0  # beyond 3 radii nothing fires


def test_twitch_rate_rises_with_supersensitivity(atlas):
    low = _twitch_rate(atlas, 5.0, s=0.3)
    high = _twitch_rate(atlas, 5.0, s=0.9)
    assert high > low + 0.3


def test_twitch_needs_needle_movement(atlas):
    p = _phys(atlas, 0, s=1.0)
    tip = np.zeros(3)
    # arriving by less than the minimum movement does not fire
    assert not [e for e in p.on_pose(0.0, 0, "insert", MUSCLE, "muscle", 0.2, tip, None, []) if e.kind == "twitch"]
    # staying put, or withdrawing, never fires
    for k in range(20):
        ev = p.on_pose(1.0 + k, 0, "withdraw", MUSCLE, "muscle", 0.2, tip, None, [])
        assert not [e for e in ev if e.kind == "twitch"]
    # pistoning at the locus of a maximally supersensitive muscle does (p = 1)
    ev = p.on_pose(30.0, 0, "piston", MUSCLE, "muscle", 0.2, tip, None, [], moved_mm=3.0)
    assert [e.kind for e in ev] == ["twitch", "release"]


def test_habituation_release_and_view_state(atlas):
    p = _phys(atlas, 3, s=1.0)
    tip = np.zeros(3)
    amps, t = [], 0.0
    for k in range(40):
        t += 1.0
        for e in p.on_pose(t, 0, "piston", MUSCLE, "muscle", 40.0, tip, None, [], moved_mm=3.0):
            if e.kind == "twitch":
                amps.append((e.t, e.data["amplitude"], e.data["duration_s"]))
    assert len(amps) >= 3
    assert all(b[1] < a[1] for a, b in zip(amps, amps[1:]))  # successive twitches smaller
    st = p.muscle_state(MUSCLE)
    assert st.supersensitivity < 1.0 * (1 - 0.3) ** (len(amps) - 1) + 1e-9  # released
    assert st.lengthening > 0 and st.shortening < st.max_shortening
    t_last, _, dur = amps[-1]
    assert st.contraction(t_last + dur / 2) > 0  # pulse during the twitch
    assert st.contraction(t_last + dur * 1.5) == 0.0


def test_same_seed_same_stream(atlas):
    def run(seed):
        p = _phys(atlas, seed, s=0.6)
        out = []
        for k in range(30):
            out += p.on_pose(float(k), 0, "piston", MUSCLE, "muscle", 40.0, np.array([k % 7, 0.0, 0.0]), None, [],
                             moved_mm=2.0)
        return [e.to_dict() for e in out]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_supersensitive_muscle_grasps_healthy_is_painless(index, l5):
    s = Session(index.atlas, l5, index=index)
    s.insert_needle(*needle_into(index, MUSCLE), length_mm=75)
    assert l5.supersensitivity_of(MUSCLE) >= 0.2
    kinds = [e.kind for e in s.events]
    assert "grasp" in kinds and "cramping ache" in next(e for e in s.events if e.kind == "grasp").message
    healthy = "vastus_lateralis_r"
    assert l5.supersensitivity_of(healthy) < 0.2
    e, d, depth = needle_into(index, healthy, "right")
    s.insert_needle(e, d, depth, length_mm=75)
    assert s.events[-1].kind == "painless" and s.events[-1].structure == healthy


def test_nerve_pleura_and_bone_responses(index):
    s = Session(index.atlas, None, index=index)
    sc = index.atlas.structures["sciatic_nerve_r"]
    z = np.median(sc.vertices[:, 2])
    c = sc.vertices[np.abs(sc.vertices[:, 2] - z) < 5].mean(axis=0)  # centre of a cross-section
    # straight down onto the sciatic nerve from behind
    hit = index.snap_to_skin(c + np.array([0, 500.0, 0]), np.array([0, -1.0, 0]))
    tr = index.query(hit.point, [0, -1, 0], 150, stop_at_bone=False)
    nerve = [b for b in tr.breaches if b.structure.startswith("sciatic_nerve")]
    assert nerve
    s.insert_needle(hit.point, [0, -1, 0], 0.0, length_mm=150, t=0.0)
    s.set_depth(0, nerve[0].depth + 1.0, t=1.0)
    ev = [e for e in s.events if e.kind == "nerve"]
    assert ev and "electric" in ev[0].message and "shooting" in ev[0].message
    # pleura: sharp pain and a cough now, breathlessness later
    from imssim.core.training.placements import parse

    p = parse({"version": 1, "needles": [{"landmark": "T4_spinous", "lateral_mm": 45, "side": "right", "cranial_mm": 8,
                                          "direction": [0, -1, 0], "depth": 60, "length_mm": 75}]}, index)[0].placement
    s.insert_needle(p.entry, p.direction, p.depth, length_mm=75, t=2.0)
    kinds = [e.kind for e in s.events if e.t == 2.0]
    assert "pleura" in kinds and "cough" in kinds and "breathless" not in [e.kind for e in s.events]
    assert s.tick(30.0) == []
    later = s.tick(2.0 + 61.0)
    assert [e.kind for e in later] == ["breathless"]
    # bone: a perpendicular needle beside the L5 spinous process ends on the lamina (8 mm
    # cranial to the tip: at 16 mm the skin's normal over the lumbar fat, which thickens
    # toward the buttock, tilts it onto the lower edge of the L4 lamina, 1 mm away)
    q = parse({"version": 1, "needles": [{"landmark": "L5_spinous", "lateral_mm": 20, "side": "right",
                                          "cranial_mm": 8, "depth": 75, "length_mm": 75}]}, index)[0].placement
    s.insert_needle(q.entry, q.direction, q.depth, length_mm=75, t=70.0)
    assert any(e.kind == "bone_contact" and e.structure == "vertebra_L5" for e in s.events)


def test_the_needle_hand_feels_the_grasp_ease_as_the_muscle_releases(atlas):
    p = _phys(atlas, 0, s=0.9)
    grip, words = p.feel(MUSCLE, "muscle")
    assert words.startswith("grasped") and grip == pytest.approx(0.4 + 0.6 * 0.9)
    healthy, words = p.feel("gluteus_medius_l", "muscle")
    assert words.startswith("soft") and healthy < 0.4 < grip
    assert p.feel(MUSCLE, "muscle", on_bone=True) == (1.0, "hard stop: bone")
    assert p.feel("subcutaneous", "subcutaneous")[0] < healthy
    # twitches release the muscle: the grip eases, and drops to a glide below the grasp threshold
    tip = np.zeros(3)
    for k in range(12):
        p.on_pose(float(k), 0, "advance", MUSCLE, "muscle", 40.0 + k, tip, None, [], moved_mm=1.0)
    after, _ = p.feel(MUSCLE, "muscle")
    assert after < grip

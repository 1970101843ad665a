"""Batch grading of a placements file (``grade_placements(batch=True)``: one compiled pass
over the needles) gives the same report as grading them one by one (``batch=False``: a
full session query per needle), and its pieces equal the per-needle traversal."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from imssim.core.training.placements import parse
from imssim.core.training.scenario import load_scenario
from imssim.core.training.session import grade_placements

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_scoring import make_placements  # noqa: E402


@pytest.fixture(scope="module")
def specs(index):
    # needles over the lumbar spine, buttocks and thorax (the benchmark's file), fixed seed
    return parse({"version": 1, "needles": make_placements(index, 400, np.random.default_rng(3))}, index)


def _report(r) -> str:
    d = r.to_dict()
    d.pop("finished_at", None)
    return json.dumps(d, sort_keys=True, default=str)


@pytest.mark.parametrize("scenario", [None, "thoracic-pneumothorax-risk"])
def test_batch_grading_equals_per_needle_grading(atlas, index, specs, scenario):
    sc = load_scenario(scenario, atlas)
    fast = grade_placements(atlas, sc, specs, index, batch=True)
    slow = grade_placements(atlas, sc, specs, index, batch=False)
    assert _report(fast) == _report(slow)


def test_the_placements_cover_the_hard_cases(index, specs):
    """The set above holds needles on bone with no structure at the tip (the muscle above
    the bone is scored), needles entering two danger structures, and breaches only the fill
    grid names: the cases the batch path once got wrong."""
    E = np.array([s.placement.entry for s in specs])
    D = np.array([s.placement.direction for s in specs])
    L = np.array([s.placement.depth for s in specs])
    b = index.query_batch(E, D, L, intervals=True)
    assert ((b.tip_structure < 0) & (b.bone_contact >= 0)).sum() >= 20
    assert (b.n_breaches >= 1).sum() >= 5
    filled_breach = 0
    for k in np.flatnonzero(b.n_breaches >= 1):
        c = b.iv_count[k]
        filled_breach += any(bool(b.iv_filled[k, j]) and index.harm[b.iv_structure[k, j]] for j in range(c))
    assert (b.n_breaches >= 2).sum() + filled_breach >= 1


def test_batch_intervals_and_breaches_equal_the_full_query(index, specs):
    E = np.array([s.placement.entry for s in specs])
    D = np.array([s.placement.direction for s in specs])
    L = np.array([s.placement.depth for s in specs])
    b = index.query_batch(E, D, L, intervals=True)
    for k in range(len(E)):
        tr = index.query(E[k], D[k], L[k])
        assert b.iv_count[k] == len(tr.intervals), k
        got = [(index.ids[b.iv_structure[k, j]], b.iv_entry[k, j], b.iv_exit[k, j], bool(b.iv_filled[k, j]))
               for j in range(b.iv_count[k])]
        assert got == [(iv.structure, iv.entry_depth, iv.exit_depth, iv.filled) for iv in tr.intervals], k
        assert b.n_breaches[k] == len(tr.breaches), k
        assert b.tip_structure[k] == (index._sidx[tr.at_tip[0]] if tr.at_tip else -1), k


def test_closest_approaches_are_the_minimum_of_the_clearances(index, specs):
    E = np.array([s.placement.entry for s in specs])
    D = np.array([s.placement.direction for s in specs])
    L = np.array([s.placement.depth for s in specs])
    b = index.query_batch(E, D, L)
    all_ = index.shaft_clearances(E, D, b.depth)
    best, who = index.closest_approaches(E, D, b.depth)
    assert np.isfinite(best).sum() >= 5
    for r in range(len(best)):
        if np.isfinite(all_[r]).any():
            assert best[r] == all_[r].min()
            assert who[r] == int(np.argmin(all_[r]))  # the first needle that close
        else:
            assert best[r] == np.inf and who[r] == -1

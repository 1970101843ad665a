"""Headless grading speed: a 10,000-needle placements file on the default atlas and scenario.

Run:  PYTHONPATH=src python benchmarks/bench_scoring.py [N]
Goal (issue #21, docs/performance.md): over 20,000 needles/s. The naive way for comparison, in the
same run: one full Session call per needle (``TissueIndex.query`` each, no batching),
timed on a subset and reported as needles/s.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import tempfile
import time

import numpy as np


def make_placements(index, n: int, rng) -> list[dict]:
    """Needles over the lumbar spine, buttock and thorax: landmark-relative entries made
    absolute (the file a script would write), random tilts and depths."""
    from imssim.core.engines.needle import Placement

    lms = ["L1_spinous", "L2_spinous", "L3_spinous", "L4_spinous", "L5_spinous", "T4_spinous", "T8_spinous",
           "T12_spinous", "psis_r", "psis_l"]
    base = []
    for lm in lms:
        for side in ("right", "left"):
            for lat in (10, 20, 30, 45, 60):
                for cr in (-20, 0, 20):
                    try:
                        base.append(Placement.from_landmark(index, lm, 10, lateral_mm=lat, side=side, cranial_mm=cr))
                    except Exception:
                        pass
    out = []
    for k in range(n):
        p = base[rng.integers(len(base))]
        d = np.asarray(p.direction) + rng.normal(0, 0.15, 3)
        d /= np.linalg.norm(d)
        out.append({"entry": [round(float(x), 3) for x in p.entry], "direction": [round(float(x), 5) for x in d],
                    "depth": round(float(rng.uniform(10, 70)), 1), "length_mm": 75})
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    os.environ.setdefault("IMSSIM_CACHE_DIR", tempfile.mkdtemp(prefix="imssim-bench-"))
    from imssim.core.model import store
    from imssim.core.training.placements import load_placements
    from imssim.core.training.scenario import load_scenario
    from imssim.core.training.session import grade_placements
    from imssim.core.engines.traversal import TissueIndex

    atlas = store.load_builtin()
    t0 = time.perf_counter()
    index = TissueIndex(atlas)
    t_index = time.perf_counter() - t0
    sc = load_scenario(None, atlas)
    rng = np.random.default_rng(0)
    needles = make_placements(index, n, rng)
    path = os.path.join(tempfile.mkdtemp(prefix="imssim-bench-"), "placements.json")
    with open(path, "w") as f:
        json.dump({"version": 1, "needles": needles}, f)
    t0 = time.perf_counter()
    specs = load_placements(path, index)
    t_parse = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep = grade_placements(atlas, sc, specs, index, batch=True)
    t_grade = time.perf_counter() - t0
    m = min(n, 500)
    t0 = time.perf_counter()
    slow = grade_placements(atlas, sc, specs[:m], index, batch=False)
    t_naive = time.perf_counter() - t0
    fast_m = grade_placements(atlas, sc, specs[:m], index, batch=True)
    agree = np.mean([a["structure"] == b["structure"] for a, b in zip(fast_m.needles, slow.needles)])
    # landmark-relative files need a skin projection per needle
    lm_doc = {"version": 1, "needles": [{"landmark": "L4_spinous", "lateral_mm": float(rng.uniform(10, 50)),
                                         "side": "right", "depth": 40} for _ in range(200)]}
    from imssim.core.training.placements import parse

    t0 = time.perf_counter()
    parse(lm_doc, index)
    t_lm = (time.perf_counter() - t0) / 200
    rate = n / t_grade
    naive_rate = m / t_naive
    la = os.getloadavg()
    print(f"run                   {datetime.datetime.now(datetime.timezone.utc):%d %b %Y %H:%M} UTC, "
          f"{os.cpu_count()} CPU cores, load average {la[0]:.1f} (1 min) {la[1]:.1f} (5 min)")
    print(f"needles               {n:,} (file {os.path.getsize(path) / 1e6:.1f} MB)")
    print(f"index build           {t_index:6.2f} s (once per atlas)")
    print(f"parse file            {t_parse:6.2f} s ({n / t_parse:,.0f} needles/s, absolute entries)")
    print(f"landmark-relative     {t_lm * 1000:6.2f} ms per needle to project onto the skin")
    print(f"grade (batched)       {t_grade:6.2f} s -> {rate:,.0f} needles/s (goal > 20,000)")
    print(f"grade+parse           {n / (t_grade + t_parse):,.0f} needles/s")
    print(f"naive (per needle)    {naive_rate:,.0f} needles/s on {m} needles")
    print(f"ratio                 batched is {rate / naive_rate:.1f}x the naive way")
    print(f"agreement             tip structure identical for {agree:.1%} of {m} needles")
    print(f"report                total {rep.total:.1f}%, {rep.metric('breaches').value} breaches, "
          f"{rep.metric('twitches').value} twitches")


if __name__ == "__main__":
    main()

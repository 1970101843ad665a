"""Where one full needle query's time goes, pose by pose, on bench_traversal's poses.

Run:  PYTHONPATH=src python benchmarks/bench_query_split.py [--n 1000]

For each pose: the compiled needle kernel with its clearances (``native.full``), the fill
grid's rule (``native.between``), the whole ``TissueIndex.query`` (kernels + the Python that
builds the result), and the clearances alone (``native.clearances``), each timed
separately; printed as median / p95 / max, with the number of danger structures within
100 mm of the shaft and what they cost on the slowest 5 % of the queries. A diagnostic
for docs/performance.md, not a goal check.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_traversal import make_queries  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    os.environ.setdefault("IMSSIM_CACHE_DIR", tempfile.mkdtemp(prefix="imssim-bench-"))
    from imssim.core.model import store
    from imssim.core.engines.traversal import TissueIndex
    from imssim.core.engines.traversal.results import EPS, SEAM_MM, FILL_STEP_MM, NEARBY_MM

    atlas = store.load_builtin()
    ix = TissueIndex(atlas)
    E, D, L = make_queries(ix, atlas, args.n)
    for i in range(min(50, len(E))):
        ix.query(E[i], D[i], L[i])
    b, nat, nd = ix._bufs(), ix._native, ix._nat
    t_full, t_betw, t_query, t_clear, near = [], [], [], [], []
    for i in range(len(E)):
        e = np.array(E[i], float)
        d = np.array(D[i], float) / np.linalg.norm(D[i])
        t0 = time.perf_counter()
        st, niv, nt, actual, bone = nat.full(*ix._nat_full_head, e, d, float(L[i]), True, *b.tail)
        t1 = time.perf_counter()
        if ix._nat_fill is not None and st == 0:
            nat.between(b.iv_s, b.iv_a, b.iv_b, b.iv_in, niv, nt, *ix._nat_fill, e, d, actual, bone >= 0, EPS,
                        SEAM_MM, FILL_STEP_MM, b.bw_s, b.bw_a, b.bw_b, b.bw_ex, b.bw_fl)
        t2 = time.perf_counter()
        ix.query(E[i], D[i], L[i])
        t3 = time.perf_counter()
        nat.clearances(*ix._nat_dargs, nd["droots"], nd["dbox_lo"], nd["dbox_hi"], e, d, actual, NEARBY_MM,
                       b.cl_shaft, b.cl_tip)
        t4 = time.perf_counter()
        near.append(int(np.isfinite(b.cl_shaft).sum()))
        t_full.append(t1 - t0)
        t_betw.append(t2 - t1)
        t_query.append(t3 - t2)
        t_clear.append(t4 - t3)
    la = os.getloadavg()
    print(f"run               {datetime.datetime.now(datetime.timezone.utc):%d %b %Y %H:%M} UTC, "
          f"{os.cpu_count()} CPU cores, load average {la[0]:.1f} (1 min) {la[1]:.1f} (5 min); {len(E)} poses")
    for name, a in (("native.full", t_full), ("native.between", t_betw), ("query (all)", t_query),
                    ("clearances alone", t_clear)):
        a = np.array(a) * 1e3
        print(f"{name:17s} median {np.median(a):.3f} ms   p95 {np.percentile(a, 95):.3f} ms   max {a.max():.3f} ms")
    q, c, nr = np.array(t_query), np.array(t_clear), np.array(near)
    slow = q >= np.percentile(q, 95)
    print(f"danger structures within {NEARBY_MM:.0f} mm of the shaft: median {np.median(nr):.0f}, "
          f"max {nr.max()}; on the slowest 5 % of queries median {np.median(nr[slow]):.0f}, "
          f"their clearances {np.median(c[slow] / q[slow]):.0%} of the query's time (median)")


if __name__ == "__main__":
    main()

"""Built-in atlas: cold build time, warm load time, triangle counts and memory.

Run:  python benchmarks/bench_atlas.py
Goals (issue "A real body"): warm load < 0.5 s; the cold first start (shipped BodyParts3D
body -> landmarks, trapezius, danger structures, skin) is stated, not a goal.
The naive way for comparison is running the derived stages on every start (the cold build).
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time


def main() -> None:
    os.environ["IMSSIM_CACHE_DIR"] = tempfile.mkdtemp(prefix="imssim-bench-")
    from imssim.core.model import store

    t0, c0 = time.perf_counter(), time.process_time()
    atlas = store.load_builtin()
    cold = time.perf_counter() - t0
    cold_cpu = time.process_time() - c0
    warm = []
    for _ in range(5):
        t0 = time.perf_counter()
        store.load_builtin()
        warm.append(time.perf_counter() - t0)
    s = atlas.summary()
    size = store.builtin_path().stat().st_size
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mesh_mb = sum(x.vertices.nbytes + x.faces.nbytes for x in atlas) / 1e6
    wm = statistics.median(warm)
    print(f"structures        {s['structures']} ({', '.join(f'{k} {v}' for k, v in sorted(s['by_kind'].items()))})")
    print(f"triangles         {s['triangles']:,}   vertices {s['vertices']:,}")
    print(f"cold first start  {cold:6.2f} s wall, {cold_cpu:.2f} s CPU")
    print(f"load average      {os.getloadavg()[0]:.1f} (other jobs on the machine inflate wall time)")
    print(f"warm load median  {wm * 1000:6.1f} ms  (goal < 500 ms: {'met' if wm < 0.5 else 'MISSED'})")
    print(f"ratio             warm load is {cold / wm:,.0f}x faster than rebuilding (the naive way)")
    print(f"cache file        {size / 1e6:6.1f} MB")
    print(f"mesh arrays       {mesh_mb:6.1f} MB in memory; peak RSS {rss:,.0f} MB")


if __name__ == "__main__":
    main()

"""Between the layers: the body's self-check figures (empty space, depths) in one run.

Run:  python benchmarks/bench_layers.py
Goals (issue "Between the layers"): < 2 % of the needle length inside the skin in no named
tissue, no tip in nothing, published depths (see imssim.core.engines.layers). The naive way for
comparison is the meshes alone (the fill grid switched off), measured in the same run.
Exits 1 when a goal is missed.
"""

from __future__ import annotations

import sys
import time


def main() -> int:
    from imssim.core.engines import layers
    from imssim.core.model import store
    from imssim.core.engines.traversal import TissueIndex

    t0 = time.perf_counter()
    atlas = store.load_builtin()
    index = TissueIndex(atlas)
    obese = TissueIndex(store.load_builtin(habitus="obese"))
    print(f"atlas and indexes ready in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    text, figs = layers.report(atlas, index, obese)
    print(text)
    print(f"(probed in {time.perf_counter() - t0:.1f} s)")
    # the naive way: the same lines with the meshes alone
    lines = layers.probe_lines(atlas, index)
    fill, index._fill = index._fill, None
    try:
        naive = layers.empty_space(index, lines)
    finally:
        index._fill = fill
    print(f"meshes alone (naive)     {100 * naive['empty_fraction']:.2f} % empty, "
          f"{len(naive['tips_in_nothing'])} tips in nothing")
    ok = figs["empty_fraction"] < 0.02 and not figs["tips_in_nothing"]
    print("goals:", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""How long one needle move takes in the trainee's view at 1280x800 (off-screen renderer).

    PYTHONPATH=src python benchmarks/bench_view.py            (under Xvfb when there is no display)

A move = the window's handler for one wheel step: the session call (traversal, physiology,
scoring, recording), the readout's traversal query and the in-place update of the needle's
actors. "Render" is then one frame of the whole scene. Compared in the same run with the
naive way of drawing a moved needle: removing it and adding a new tube mesh each move.
Goals (issue #7): update under 16 ms, update + render under 33 ms.
"""

from __future__ import annotations

import os
import re
import statistics
import tempfile
import time

import numpy as np


def main() -> None:
    os.environ.setdefault("IMSSIM_RECORDINGS_DIR", tempfile.mkdtemp(prefix="imssim-bench-"))
    import pyvista as pv

    from imssim.core.engines.needle import Placement
    from imssim.core.model.store import load_builtin
    from imssim.app.controller import Controller

    pv.global_theme.multi_samples = 0  # as the window (FXAA instead of MSAA)
    atlas = load_builtin()
    pl = pv.Plotter(off_screen=True, window_size=[1280, 800])
    c = Controller(atlas, pl)
    c.load_scenario("l5-radiculopathy-low-back")
    c.view("lumbar")
    pl.enable_anti_aliasing("fxaa")
    pl.screenshot(None, return_img=True)  # first frame: GL resources uploaded
    caps = pl.render_window.ReportCapabilities() or ""
    m = re.search(r"OpenGL renderer string:\s*(.+)", caps)
    gl = m.group(1).strip() if m else "unknown"

    renders: list[float] = []
    real_render = c.render
    c.render = lambda: None  # time the update alone
    pl_ = Placement.from_landmark(c.index, "L5_spinous", depth=0, lateral_mm=15, side="right")
    c.place_needle_at(pl_.entry, pl_.normal)
    updates = []
    for i in range(40):
        t0 = time.perf_counter()
        (c.advance if i < 30 else c.withdraw)(1.0)
        t1 = time.perf_counter()
        pl.render_window.Render()
        t2 = time.perf_counter()
        updates.append(t1 - t0)
        renders.append(t2 - t1)

    # the window's way: the scene's last picture reused while only the needle moves
    from imssim.render.backdrop import SceneBackdrop

    bd = SceneBackdrop(pl, mode="on")
    moves, kinds = [], []
    for i in range(40):
        t0 = time.perf_counter()
        (c.advance if i < 20 else c.withdraw)(1.0)
        kinds.append(bd.render())
        moves.append(time.perf_counter() - t0)
    fast_moves = [t for t, k in zip(moves, kinds) if k == "fast"]
    bd.detach()
    c.render = real_render

    # naive: rebuild the needle as a new tube mesh every move
    n = c.current
    naive = []
    for i in range(40):
        t0 = time.perf_counter()
        tip = n.entry + n.direction * (5 + i * 0.5)
        hub = n.entry - n.direction * 30
        pl.remove_actor("naive_needle", render=False)
        pl.add_mesh(pv.Tube(pointa=tuple(hub), pointb=tuple(tip), radius=0.6, n_sides=12), name="naive_needle",
                    reset_camera=False, render=False)
        naive.append(time.perf_counter() - t0)
    pl.remove_actor("naive_needle", render=False)
    inplace = []
    for i in range(40):
        t0 = time.perf_counter()
        n.glyph.update(n.entry, n.direction, 5 + i * 0.5)
        inplace.append(time.perf_counter() - t0)

    med = statistics.median
    u, r = med(updates) * 1e3, med(renders) * 1e3
    print(f"OpenGL renderer: {gl}; {os.cpu_count()} CPU cores; window 1280x800; "
          f"{len(atlas.structures)} structures, {sum(len(s.faces) for s in atlas) / 1e3:.0f}k triangles")
    print(f"update per needle move (session + readout + actors): median {u:.1f} ms, "
          f"max {max(updates) * 1e3:.1f} ms (goal < 16 ms)")
    print(f"render per frame, whole scene: median {r:.1f} ms -> update + render {u + r:.1f} ms (goal < 33 ms)")
    f = med(fast_moves) * 1e3
    print(f"needle move with the scene's picture reused (render/backdrop.py): update + render median {f:.1f} ms, "
          f"max {max(fast_moves) * 1e3:.1f} ms over {len(fast_moves)} of {len(moves)} moves "
          f"(the first after a view change is a full frame that also copies the scene) -> "
          f"{(u + r) / f:.0f}x faster than a full frame (goal < 33 ms)")
    print(f"needle actor update in place: {med(inplace) * 1e3:.3f} ms vs naive rebuild of a tube mesh "
          f"{med(naive) * 1e3:.2f} ms ({med(naive) / med(inplace):.0f}x faster)")
    bench_slice(atlas, c.index)
    pl.close()
    c.session.close()


def bench_slice(atlas, index) -> None:
    """The slice view's cut: culled per structure and face vs cutting every mesh whole (naive);
    and what a needle move costs the slice view (a cache hit: same entry and direction)."""
    import trimesh

    from imssim.core.engines.needle import Placement
    from imssim.core.engines.slice import SliceCache, needle_slice

    poses = [Placement.from_landmark(index, lm, depth=0, lateral_mm=lat, side="right")
             for lm in ("L5_spinous", "L3_spinous", "T4_spinous", "C6_spinous") for lat in (15, 30, 45)]
    fast, naive = [], []
    for p in poses:
        t0 = time.perf_counter()
        needle_slice(atlas, p.entry, p.direction, 50, "sagittal")
        fast.append(time.perf_counter() - t0)
    for p in poses[:3]:
        t0 = time.perf_counter()
        across_n = np.cross(p.direction, [0.0, 0.0, 1.0])
        for s in atlas:
            trimesh.intersections.mesh_plane(trimesh.Trimesh(s.vertices, s.faces, process=False),
                                             across_n, p.entry)
        naive.append(time.perf_counter() - t0)
    cache = SliceCache()
    cache.get(atlas, poses[0].entry, poses[0].direction, 50, "sagittal")
    hits = []
    for _ in range(200):
        t0 = time.perf_counter()
        cache.get(atlas, poses[0].entry, poses[0].direction, 50, "sagittal")
        hits.append(time.perf_counter() - t0)
    med = statistics.median
    print(f"slice along the needle (new entry/direction/plane): median {med(fast) * 1e3:.1f} ms vs naive "
          f"cut of every whole mesh {med(naive) * 1e3:.0f} ms ({med(naive) / med(fast):.0f}x); "
          f"advance/withdraw reuses the cut: {med(hits) * 1e6:.0f} us")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

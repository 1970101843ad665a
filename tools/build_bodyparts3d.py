"""Build the built-in body's shipped data from the BodyParts3D source folder.

    python tools/build_bodyparts3d.py [SOURCE_DIR] [--out meshes/bodyparts3d] [--workers 2]

SOURCE_DIR defaults to ../shared/atlas-bodyparts3d beside the checkout. Every source file is
checked against its SHA256SUMS.txt; the output (structures.json + meshes.npz, with the
licence and attribution in LICENCE.md) is what imssim ships and loads. Reproducible: the
same source and code give the same arrays.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from imssim.core.model.build import bodyparts3d as bp, reconstruct  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", nargs="?", default=str(REPO.parent / "shared" / "atlas-bodyparts3d"))
    ap.add_argument("--out", default=str(REPO / "meshes" / "bodyparts3d"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--vhm", default=str(REPO.parent / "shared" / "atlas-vhm-lowerlimb"),
                    help="the Visible Human lower-limb folder (muscles BodyParts3D lacks)")
    ap.add_argument("--skip-base", action="store_true", help="keep the solid bones and muscles already in --out")
    ap.add_argument("--segmental", default="", help="with --steps segmental: only these (multifidus,rotatores)")
    ap.add_argument("--steps", default="segmental,vhm,layer", help="which added-muscle routes to (re)build; others are kept")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()

    def progress(msg: str, f: float) -> None:
        print(f"[{time.perf_counter() - t0:7.1f} s] {100 * f:5.1f}%  {msg}", flush=True)

    if not a.skip_base:
        bp.save_shipped(bp.build_shipped(Path(a.source), progress, workers=a.workers), Path(a.out))
    items, meta = bp.load_shipped(Path(a.out))
    steps = set(a.steps.split(",")) if a.steps else set()
    if "segmental" in steps and a.skip_base:
        progress("segmental muscles", 0.0)
        only = set(a.segmental.split(",")) if a.segmental else None
        stems = tuple(f"{st}_" for st in ("multifidus", "rotatores") if only is None or st in only)
        keep = [d for d in items if not d["id"].startswith(stems)]
        items = keep + bp.build_segmental(Path(a.source), keep, workers=a.workers, only=only)
    items = [d for d in items if (d.get("route") or "").split(" ")[0] not in steps]  # rebuilt below
    by_id = {d["id"]: d for d in items}
    added = []
    if "vhm" in steps:
        vhm_dir = Path(a.vhm)
        bp.check_sums(vhm_dir, sorted((vhm_dir / "meshes").glob("*.stl")))
        added += reconstruct.vhm_muscles(vhm_dir, by_id, log=lambda m: progress(m, 1.0))
    if "layer" in steps:
        added += reconstruct.layer_muscles(by_id, log=lambda m: progress(m, 1.0))
    result = {"structures": items + added, "meta": meta}
    out = bp.save_shipped(result, Path(a.out))
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"wrote {len(result['structures'])} structures to {out} ({size / 1e6:.1f} MB) in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

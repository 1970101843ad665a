"""Regenerate the atlas screenshots in docs/img (off-screen; run from the repo root).

    python tools/atlas_images.py [OUTDIR]

Uses the cached built-in atlas (built on first use) and the render layer's off-screen
plotter, so it runs without a display.
"""

from __future__ import annotations

import sys
from pathlib import Path

from imssim.core.model import store
from imssim.core.model.atlas import Atlas
from imssim.render.scene import render_atlas_png


def subset(atlas: Atlas, keep) -> Atlas:
    out = Atlas(atlas.name, attributions=atlas.attributions, meta=atlas.meta)
    for s in atlas:
        if keep(s):
            out.add(s)
    for lm in atlas.landmarks.values():
        out.add_landmark(lm)
    return out


def main(outdir: str = "docs/img") -> None:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    atlas = store.load_builtin(habitus="average")
    lm = atlas.landmark
    upper_back = (lm("C7_spinous").xyz + lm("T4_spinous").xyz) / 2
    no_skin = subset(atlas, lambda s: s.kind in ("bone", "muscle"))
    render_atlas_png(no_skin, str(out / "atlas-neck-shoulder-posterior.png"), "posterior", size=(1200, 900),
                     focus=upper_back + [0, 0, 20], distance=700,
                     title="Neck and shoulder girdle from behind (BodyParts3D; trapezius added by imssim):\n"
                           "trapezius (3 parts) over the rhomboids, levator scapulae, splenius, deltoid")
    deep = subset(atlas, lambda s: s.kind in ("bone", "muscle") and not s.id.startswith(("trapezius_", "latissimus_")))
    render_atlas_png(deep, str(out / "atlas-neck-deep-layer.png"), "posterior", size=(1200, 900),
                     focus=upper_back + [0, 0, 20], distance=700,
                     title="Deep layer (trapezius and latissimus hidden): rhomboids, levator scapulae,\n"
                           "splenius, semispinalis, erector spinae, multifidus by level (alternating tints)")
    thorax = subset(atlas, lambda s: s.kind in ("bone", "organ", "skin", "canal", "nerve", "vessel"))
    render_atlas_png(thorax, str(out / "atlas-thorax-lungs.png"), "posterior", size=(1200, 900),
                     focus=lm("T6_spinous").xyz, distance=900, opacities={"skin": 0.15},
                     title="Thorax: lungs and pleura (blue) inside the rib cage, through translucent skin;\n"
                           "spinal canal, kidneys, vertebral arteries")
    render_atlas_png(atlas, str(out / "atlas-posterior.png"), "posterior", size=(900, 1100), distance=3300,
                     title="Built-in body (BodyParts3D, CC BY-SA 2.1 JP), posterior view (skin translucent)")
    lumbar = (lm("L3_spinous").xyz + lm("L5_spinous").xyz) / 2
    inner = subset(atlas, lambda s: s.kind not in ("skin", "subcutaneous"))
    render_atlas_png(inner, str(out / "atlas-lumbar-closeup.png"), "posterior", size=(1000, 800),
                     focus=lumbar, distance=600,
                     title="Lumbar paraspinals (skin hidden): latissimus' aponeurosis, erector spinae")
    spine = subset(atlas, lambda s: s.kind == "bone" or (s.level and s.muscle in ("multifidus", "rotatores")))
    render_atlas_png(spine, str(out / "atlas-multifidus-levels.png"), "posterior", size=(1000, 1100),
                     focus=(lm("T10_spinous").xyz + lm("L3_spinous").xyz) / 2, distance=900,
                     title="Multifidus and rotatores split by level (alternating tints), filling the gutter\n"
                           "beside the spinous processes down to the laminae: T6 to the sacrum")

if __name__ == "__main__":
    main(*sys.argv[1:])

"""Transverse slices of the built-in body: the tissue between the meshes and the meshes' outlines.

Usage:  python tools/layer_slices.py OUTDIR [LEVEL ...]     (default levels L4 T4 C5)

Each picture is a cut at a spinous process's height: the fill grid's labels as the
background (fat, thoracolumbar fascia, ligaments and discs, intermuscular fascia, cavities;
muscles where they grew to meet their neighbours), then every mesh's outline on top
(muscles red, bones white, lungs blue, nerves yellow, canal cyan), so gaps would show as
black inside the skin. Written as ``layers-<LEVEL>.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def main(argv: list[str]) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import trimesh
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Patch

    from imssim.core.model import store

    out = Path(argv[0]) if argv else Path("docs/img")
    levels = argv[1:] or ["L4", "T4", "C5"]
    out.mkdir(parents=True, exist_ok=True)
    atlas = store.load_builtin()
    vol = atlas.volumes["fill"]
    head = atlas.meta["fill"]
    o, h, labels = np.asarray(head["origin"]), float(head["h"]), head["labels"]
    kinds = {s.id: s.kind for s in atlas}
    col = np.zeros((len(labels), 3))
    named = {"subcutaneous": (0.98, 0.88, 0.55), "thoracolumbar_fascia": (0.25, 0.35, 0.95),
             "intermuscular_fascia": (0.80, 0.80, 0.74), "epidural_space": (0.95, 0.45, 0.85),
             "abdominal_cavity": (0.55, 0.78, 0.55), "mediastinum": (0.85, 0.55, 0.55),
             "cranial_cavity": (0.70, 0.60, 0.85), "neck_viscera": (0.95, 0.75, 0.60)}
    for k, sid in enumerate(labels):
        if k == 0:
            continue
        if sid in named:
            col[k] = named[sid]
        elif sid.startswith("intervertebral_disc"):
            col[k] = (0.3, 0.8, 0.8)
        elif sid.startswith(("ligamentum_flavum", "interspinous")):
            col[k] = (1.0, 0.6, 0.1)
        elif kinds.get(sid) == "muscle":
            col[k] = (0.62, 0.30, 0.28)
        else:
            col[k] = (0.6, 0.6, 0.6)
    edge = {"muscle": (0.95, 0.45, 0.40), "bone": (1, 1, 1), "organ": (0.35, 0.55, 1.0), "nerve": (1, 0.9, 0.2),
            "vessel": (1, 0.2, 0.2), "canal": (0.3, 0.9, 1.0), "skin": (0.96, 0.8, 0.69)}
    fillc = {"bone": (0.55, 0.53, 0.48), "organ": (0.25, 0.33, 0.55), "canal": (0.2, 0.45, 0.55),
             "nerve": (0.8, 0.7, 0.1), "vessel": (0.7, 0.1, 0.1)}
    for lv in levels:
        z = atlas.landmark(f"{lv}_spinous").xyz[2]
        k = int(round((z - o[2]) / h))
        img = col[vol[:, :, k]].transpose(1, 0, 2)
        # the inside of the meshes is not the grid's business: mask it dark, then outline
        fig, ax = plt.subplots(figsize=(9, 6.5), facecolor="black")
        ax.set_facecolor("black")
        ax.imshow(img, origin="lower", extent=[o[0] - h / 2, o[0] + (vol.shape[0] - 0.5) * h,
                                               o[1] - h / 2, o[1] + (vol.shape[1] - 0.5) * h], interpolation="nearest")
        for s in atlas:
            if s.meta.get("fill") or s.kind not in edge:
                continue
            b = s.bounds
            if not (b[0][2] <= z <= b[1][2]):
                continue
            mesh = trimesh.Trimesh(s.vertices, s.faces, process=False)
            segs = trimesh.intersections.mesh_plane(mesh, [0, 0, 1], [0, 0, z])
            if len(segs) and s.kind in ("bone", "organ", "canal", "nerve", "vessel"):
                # inside these the grid's label means nothing: fill the cut with the kind's colour
                sec = mesh.section([0, 0, 1], [0, 0, z])
                if sec is not None:
                    for loop in sec.discrete:  # closed loops (x, y, z) of the cut
                        ax.fill(loop[:, 0], loop[:, 1], color=fillc[s.kind], lw=0)
            if len(segs):
                ax.add_collection(LineCollection(segs[:, :, :2], colors=[edge[s.kind]],
                                                 linewidths=1.4 if s.kind in ("organ", "nerve", "bone") else 0.6))
        sk = atlas.structures["skin"].vertices
        near = sk[np.abs(sk[:, 2] - z) < 3]
        if len(near):
            ax.set_xlim(near[:, 0].min() - 10, near[:, 0].max() + 10)
            ax.set_ylim(near[:, 1].min() - 10, near[:, 1].max() + 10)
        ax.set_aspect("equal")
        ax.tick_params(colors="white")
        ax.set_title(f"Transverse cut at the {lv} spinous process (z = {z:.0f} mm), back at the top, patient's left to the right",
                     color="white", fontsize=10)
        ax.legend(handles=[Patch(color=named["subcutaneous"], label="subcutaneous fat"),
                           Patch(color=named["thoracolumbar_fascia"], label="thoracolumbar fascia"),
                           Patch(color=(1.0, 0.6, 0.1), label="ligaments (flavum, interspinous)"),
                           Patch(color=(0.3, 0.8, 0.8), label="intervertebral disc"),
                           Patch(color=named["intermuscular_fascia"], label="intermuscular fat/fascia"),
                           Patch(color=(0.62, 0.30, 0.28), label="muscle meeting its neighbour"),
                           Patch(color=named["abdominal_cavity"], label="abdominal cavity"),
                           Patch(color=named["mediastinum"], label="mediastinum"),
                           Patch(color=named["neck_viscera"], label="neck: viscera, vessels, fat"),
                           Patch(color=edge["organ"], label="lung / organ outline"),
                           Patch(color=edge["bone"], label="bone outline")],
                  loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, framealpha=0.8)
        fig.text(0.01, 0.01, "BodyParts3D, (c) The Database Center for Life Science, CC BY-SA 2.1 JP",
                 color="white", fontsize=7)
        fig.savefig(out / f"layers-{lv}.png", dpi=90, facecolor="black", bbox_inches="tight")
        plt.close(fig)
        print(out / f"layers-{lv}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Tissue traversal: what a needle passes through, where its tip is, how close danger is.

One :class:`TissueIndex` is built per atlas (once, at load). It holds a single Embree
scene over every triangle of every structure, a triangle -> structure map, and KD-trees
over densely sampled surfaces of the danger structures.

Inside/outside rule (documented in docs/needle.md):

1. A line is cast from where it enters the atlas's bounding box (outside everything)
   through the entry point to the tip. Every surface crossing is recorded; a structure is
   inside between its 1st and 2nd crossing, 3rd and 4th, ... (ray parity). Crossings of
   the same structure closer than ``EPS`` are merged (a ray through a shared edge).
2. Structures still "open" at the tip (an odd count) are confirmed by casting on past the
   tip until each is crossed once more. One that never closes has broken parity (a missed
   crossing at a touching surface, or a hole): it is re-cast alone against its own mesh,
   and if its mesh is not watertight the sub-segments between its crossings are classified
   by the generalised winding number instead of parity. Nothing is assumed silently:
   ``Traversal.fallbacks`` lists the structures that needed it.
3. Intervals are closed: a tip within ``TOUCH_MM`` of a surface counts as inside that
   structure (the needle touches it).
4. Bone stops the needle: the tip is clamped to the first bone surface after the entry
   and the contact is reported (the bone itself is not "containing" the tip).
"""

from __future__ import annotations


import numpy as np

from ...model.atlas import Atlas, Structure

from .results import KIND_PRIORITY
from .cast import CastMixin
from .gaps import GapsMixin
from .classify import ClassifyMixin
from .clearance import ClearanceMixin
from .surface import SurfaceMixin
from .batch import BatchMixin


class TissueIndex(CastMixin, GapsMixin, ClassifyMixin, ClearanceMixin, SurfaceMixin, BatchMixin):
    """A spatial index over every structure of an atlas, built once."""

    def __init__(self, atlas: Atlas):
        from embreex import rtcore_scene
        from embreex.mesh_construction import TriangleMesh

        from ...model.build.geometry import is_watertight

        self.atlas = atlas
        structs: list[Structure] = list(atlas)
        self.ids = [s.id for s in structs]
        self._sidx = {sid: i for i, sid in enumerate(self.ids)}
        self.kinds = np.array([s.kind for s in structs])
        self.is_bone = self.kinds == "bone"
        self.harm = [s.harm for s in structs]
        # a segmental paraspinal muscle (multifidus/rotatores, with its level) wins over another
        # muscle that overlaps it: real segmented muscles overlap a little where they touch
        self.priority = np.array([KIND_PRIORITY.get(k, 0) + (0.5 if k == "muscle" and getattr(s, "level", None) else 0.0)
                                  for k, s in zip(self.kinds, structs)])
        tris, owner = [], []
        # tissue between the meshes (build/fill.py) is answered from its voxel grid: its
        # drawing meshes stay out of the ray casting
        self.is_fill = np.array([bool(s.meta.get("fill")) for s in structs], dtype=bool)
        for i, s in enumerate(structs):
            if self.is_fill[i]:
                continue
            tris.append(s.vertices[s.faces])
            owner.append(np.full(len(s.faces), i, dtype=np.int32))
        self.triangles = np.concatenate(tris).astype(np.float32)
        self.owner = np.concatenate(owner)
        self.scene = rtcore_scene.EmbreeScene()
        TriangleMesh(self.scene, self.triangles)
        self.lo = self.triangles.reshape(-1, 3).min(axis=0).astype(float) - 1.0
        self.hi = self.triangles.reshape(-1, 3).max(axis=0).astype(float) + 1.0
        # watertightness decides parity vs winding number (cached on the structure)
        self.watertight = np.zeros(len(structs), dtype=bool)
        for i, s in enumerate(structs):
            wt = s.meta.get("watertight")
            if wt is None:
                wt = is_watertight(s.vertices, s.faces)
                s.meta["watertight"] = bool(wt)
            self.watertight[i] = wt
        self.skin_ids = {i for i, s in enumerate(structs) if s.kind == "skin"}
        # bones only ever stop the needle (first surface crossing), so their closedness
        # does not matter; other open meshes always go through the winding-number fallback
        self.open_ids = np.nonzero(~self.watertight & ~self.is_bone & ~self.is_fill)[0]
        self.open_boxes = np.array([[structs[i].vertices.min(axis=0), structs[i].vertices.max(axis=0)]
                                    for i in self.open_ids]).reshape(-1, 2, 3)
        self.coincident = self._coincident_table()
        # the same table in CSR form for the vectorised batch path
        self._co_ptr = np.zeros(len(self.triangles) + 1, np.int64)
        flat = []
        for t, part in sorted(self.coincident.items()):
            self._co_ptr[t + 1] = len(part)
            flat.append(part)
        self._co_ptr = np.cumsum(self._co_ptr)
        self._co_flat = np.concatenate(flat).astype(np.int64) if flat else np.zeros(0, np.int64)
        self._dkeys = np.array([i for i, s in enumerate(structs) if s.harm], dtype=np.int64)
        self._danger_cache: dict[int, tuple] | None = None
        self._own: dict[int, object] = {}
        self._normal_trees: dict[int, tuple] = {}
        self._init_fill(atlas)
        self._build_native()

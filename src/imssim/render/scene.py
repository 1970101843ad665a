"""Build a pyvista scene of an atlas.

The scene is a thin view of core state: one actor per structure, coloured by kind,
with layer visibility and opacity that the window (or a script) can change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyvista as pv

from ..core.model.atlas import Atlas, Structure

#: Colours by kind (RGB 0-1) and default opacity.
STYLE = {
    "bone": ((0.93, 0.90, 0.80), 1.0),
    "muscle": ((0.75, 0.26, 0.22), 1.0),
    "skin": ((0.96, 0.80, 0.69), 0.18),
    "subcutaneous": ((0.98, 0.90, 0.55), 0.0),
    "organ": ((0.55, 0.62, 0.85), 0.55),
    "nerve": ((0.98, 0.85, 0.15), 1.0),
    "vessel": ((0.85, 0.10, 0.15), 1.0),
    "canal": ((0.40, 0.75, 0.95), 0.8),
    "connective": ((0.85, 0.85, 0.95), 0.0),
}
#: Muscle colours vary a little by region so neighbours can be told apart.
REGION_TINT = {
    "lumbar": (0.80, 0.30, 0.25),
    "thoracic": (0.72, 0.25, 0.28),
    "cervical": (0.78, 0.35, 0.30),
    "gluteal": (0.70, 0.22, 0.20),
    "thigh": (0.76, 0.28, 0.22),
    "leg": (0.74, 0.30, 0.24),
    "shoulder": (0.70, 0.28, 0.30),
    "arm": (0.76, 0.32, 0.28),
    "forearm": (0.78, 0.34, 0.30),
    "hand": (0.78, 0.36, 0.32),
    "abdomen": (0.68, 0.30, 0.30),
}

#: Camera presets: (view direction from the focal point toward the camera, view up).
VIEWS = {
    "posterior": ((0, 1, 0), (0, 0, 1)),
    "anterior": ((0, -1, 0), (0, 0, 1)),
    "left": ((1, 0, 0), (0, 0, 1)),
    "right": ((-1, 0, 0), (0, 0, 1)),
    "superior": ((0, 0, 1), (0, 1, 0)),
}


def to_polydata(s: Structure) -> pv.PolyData:
    faces = np.hstack([np.full((len(s.faces), 1), 3, dtype=np.int64), s.faces.astype(np.int64)]).ravel()
    return pv.PolyData(s.vertices, faces)


#: Segmental muscles (multifidus, rotatores per level) alternate these tints by level, so
#: neighbouring levels can be told apart.
LEVEL_TINTS = ((0.80, 0.30, 0.26), (0.93, 0.62, 0.35))


def colour_of(s: Structure) -> tuple[float, float, float]:
    if s.kind == "muscle" and s.level:
        from ..core.model.atlas import segment_index

        try:
            return LEVEL_TINTS[segment_index(s.level) % 2]
        except ValueError:
            pass
    if s.kind == "muscle":
        base = REGION_TINT.get(s.region, STYLE["muscle"][0])
        # a small deterministic jitter per structure
        h = (hash(s.id) % 1000) / 1000.0
        return tuple(float(np.clip(c * (0.9 + 0.2 * h), 0, 1)) for c in base)
    return STYLE.get(s.kind, ((0.7, 0.7, 0.7), 1.0))[0]


@dataclass
class AtlasScene:
    """Actors for every structure of an atlas in a plotter."""

    plotter: pv.Plotter
    atlas: Atlas
    actors: dict = field(default_factory=dict)
    #: ids whose actors are swapped out for the simplified meshes while the camera moves
    #: (render/lod.py): shown, though their actors are hidden for now
    swapped: set = field(default_factory=set)

    @classmethod
    def build(cls, plotter: pv.Plotter, atlas: Atlas, kinds: tuple[str, ...] | None = None) -> "AtlasScene":
        scene = cls(plotter, atlas)
        for s in atlas:
            if kinds and s.kind not in kinds:
                continue
            colour = colour_of(s)
            opacity = STYLE.get(s.kind, ((0, 0, 0), 1.0))[1]
            actor = plotter.add_mesh(
                to_polydata(s),
                color=colour,
                opacity=opacity,
                smooth_shading=s.kind != "bone" or len(s.faces) > 2000,
                name=s.id,
                pickable=True,
                specular=0.2 if s.kind == "muscle" else 0.05,
            )
            actor.SetVisibility(opacity > 0)
            scene.actors[s.id] = actor
        return scene

    def update_meshes(self, atlas: Atlas, ids) -> None:
        """Show ``atlas``'s meshes for ``ids`` in the existing actors (same structure ids,
        e.g. another body build's skin and fat); style, opacity and visibility are kept."""
        self.atlas = atlas
        for sid in ids:
            if sid in self.actors and sid in atlas.structures:
                self.actors[sid].mapper.SetInputData(to_polydata(atlas.structures[sid]))

    def shown(self, sid: str) -> bool:
        """Whether a structure is shown (its actor is visible, or swapped out for a moment
        for its simplified mesh while the camera moves)."""
        a = self.actors.get(sid)
        return bool(a is not None and (a.GetVisibility() or sid in self.swapped))

    def set_visible(self, sid: str, visible: bool) -> None:
        """Show or hide one structure; while its actor is swapped out (render/lod.py) the
        choice is what comes back when the full picture returns."""
        a = self.actors[sid]
        if sid in self.swapped:
            if not visible:
                self.swapped.discard(sid)  # stays hidden when the full meshes return
            return
        a.SetVisibility(visible)

    def set_kind_visible(self, kind: str, visible: bool) -> None:
        for sid in self.actors:
            if self.atlas.structures[sid].kind == kind:
                self.set_visible(sid, visible)

    def set_kind_opacity(self, kind: str, opacity: float) -> None:
        for sid, a in self.actors.items():
            if self.atlas.structures[sid].kind == kind:
                a.GetProperty().SetOpacity(opacity)
                self.set_visible(sid, opacity > 0)

    def set_region_visible(self, region: str, visible: bool, kind: str = "muscle") -> None:
        for sid in self.actors:
            s = self.atlas.structures[sid]
            if s.kind == kind and s.region == region:
                self.set_visible(sid, visible)


def set_view(plotter: pv.Plotter, atlas: Atlas, view: str = "posterior", focus: np.ndarray | None = None,
             distance: float | None = None) -> None:
    """Point the camera at ``focus`` (default: atlas centre) from a preset direction."""
    d, up = VIEWS[view]
    lo, hi = atlas.bounds
    centre = (lo + hi) / 2 if focus is None else np.asarray(focus, float)
    dist = distance if distance is not None else float(np.linalg.norm(hi - lo)) * 1.25
    plotter.camera.focal_point = tuple(centre)
    plotter.camera.position = tuple(centre + np.asarray(d, float) * dist)
    plotter.camera.up = up
    plotter.reset_camera_clipping_range()


def render_atlas_png(atlas: Atlas, path: str, view: str = "posterior", size=(1280, 800),
                     focus=None, distance=None, kinds=None, opacities: dict | None = None,
                     title: str | None = None) -> str:
    """Render an atlas off-screen to a PNG file."""
    pl = pv.Plotter(off_screen=True, window_size=list(size))
    pl.set_background("white")
    scene = AtlasScene.build(pl, atlas, kinds=kinds)
    for k, o in (opacities or {}).items():
        scene.set_kind_opacity(k, o)
    set_view(pl, atlas, view, focus=focus, distance=distance)
    if title:
        pl.add_text(title, font_size=11, color="black")
    pl.screenshot(path)
    pl.close()
    return path

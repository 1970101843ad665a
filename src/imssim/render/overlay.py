"""Interactive overlays on an atlas scene: needles, markers, highlights, muscle pulses.

Everything here updates existing VTK objects in place (points of a small polydata, an
actor's position or scale) so a needle move costs well under a frame. No GUI toolkit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyvista as pv

from .scene import AtlasScene

SHAFT_COLOUR = (0.78, 0.80, 0.84)
ACTIVE_SHAFT_COLOUR = (0.15, 0.55, 0.95)
HANDLE_COLOUR = (0.20, 0.60, 0.35)
HIGHLIGHT_COLOUR = (1.0, 0.85, 0.10)
HANDLE_MM = 18.0


def needle_layer(plotter):
    """A renderer drawn over the scene with the same camera, so needles show through tissue.

    Created once per plotter (layer 1 of its render window)."""
    r = getattr(plotter, "_imssim_needle_layer", None)
    if r is not None:
        return r
    import vtk

    r = vtk.vtkRenderer()
    r.SetLayer(1)
    r.InteractiveOff()
    r.SetActiveCamera(plotter.renderer.GetActiveCamera())
    rw = plotter.render_window
    rw.SetNumberOfLayers(max(2, rw.GetNumberOfLayers()))
    rw.AddRenderer(r)
    plotter._imssim_needle_layer = r
    return r


def _actor(poly: pv.PolyData, colour, line_width: float = 0.0, tubes: bool = False):
    mapper = pv.DataSetMapper(poly)
    a = pv.Actor(mapper=mapper)
    p = a.GetProperty()
    p.SetColor(*colour)
    if line_width:
        p.SetLineWidth(line_width)
        p.SetRenderLinesAsTubes(tubes)
    p.SetSpecular(0.6)
    p.SetSpecularPower(30)
    a.SetPickable(False)
    return a


@dataclass
class NeedleGlyph:
    """One needle drawn as a shaft (entry side out to the handle, in to the tip) and a handle."""

    plotter: pv.Plotter
    length_mm: float
    shaft: pv.PolyData = field(init=False)
    handle: pv.PolyData = field(init=False)
    shaft_actor: object = field(init=False)
    handle_actor: object = field(init=False)
    tip_actor: object = field(init=False)
    _name: str = ""

    def __post_init__(self):
        NeedleGlyph._count = getattr(NeedleGlyph, "_count", 0) + 1
        self._name = f"needle{NeedleGlyph._count}"
        self.shaft = pv.PolyData(np.zeros((2, 3)), lines=np.array([2, 0, 1]))
        self.handle = pv.PolyData(np.zeros((2, 3)), lines=np.array([2, 0, 1]))
        self.layer = needle_layer(self.plotter)
        self.shaft_actor = _actor(self.shaft, SHAFT_COLOUR, 4, tubes=True)
        self.handle_actor = _actor(self.handle, HANDLE_COLOUR, 12, tubes=True)
        self.tip_actor = _actor(pv.Sphere(radius=1.8, theta_resolution=12, phi_resolution=12), (1.0, 1.0, 1.0))
        for a in (self.shaft_actor, self.handle_actor, self.tip_actor):
            self.layer.AddActor(a)

    def update(self, entry, direction, depth: float, jolt: float = 0.0) -> None:
        """Place the needle: ``depth`` mm inside along ``direction`` from ``entry``.

        ``jolt`` (mm) shifts the whole needle back along its axis (the twitch kick).
        """
        e = np.asarray(entry, float)
        d = np.asarray(direction, float)
        e = e - d * jolt
        tip = e + d * depth
        hub = e - d * max(self.length_mm - depth, 0.0)
        self.shaft.points = np.array([hub, tip])
        self.handle.points = np.array([hub, hub - d * HANDLE_MM])
        self.tip_actor.SetPosition(*tip)

    def set_active(self, active: bool) -> None:
        self.shaft_actor.GetProperty().SetColor(*(ACTIVE_SHAFT_COLOUR if active else SHAFT_COLOUR))
        self.tip_actor.SetVisibility(active)

    def set_warning(self, colour) -> None:
        self.tip_actor.GetProperty().SetColor(*colour)

    def remove(self) -> None:
        for a in (self.shaft_actor, self.handle_actor, self.tip_actor):
            self.layer.RemoveActor(a)


class Overlay:
    """Markers, highlights and contraction pulses on top of an :class:`AtlasScene`."""

    def __init__(self, scene: AtlasScene):
        self.scene = scene
        self.plotter = scene.plotter
        self._highlight: dict[str, tuple] = {}  # sid -> (colour, opacity, visible) before
        self._markers: dict[str, list] = {}
        self._rest_colour: dict[str, tuple] = {}
        self._glow: dict[str, object] = {}

    # -- highlight -------------------------------------------------------------------
    def highlight(self, sids, colour=HIGHLIGHT_COLOUR, opacity: float | None = 1.0) -> None:
        """Colour structures (their actors) and make them visible; ``clear_highlight`` undoes it."""
        for sid in sids:
            a = self.scene.actors.get(sid)
            if a is None:
                continue
            p = a.GetProperty()
            if sid not in self._highlight:
                self._highlight[sid] = (p.GetColor(), p.GetOpacity(), self.scene.shown(sid))
            p.SetColor(*colour)
            if opacity is not None:
                p.SetOpacity(opacity)
            self.scene.swapped.discard(sid)  # drawn in full, highlighted, even while the view moves
            a.SetVisibility(True)

    def clear_highlight(self, sids=None) -> None:
        for sid in list(self._highlight if sids is None else sids):
            if sid not in self._highlight:
                continue
            colour, opacity, vis = self._highlight.pop(sid)
            a = self.scene.actors[sid]
            a.GetProperty().SetColor(*colour)
            a.GetProperty().SetOpacity(opacity)
            self.scene.set_visible(sid, vis)

    @property
    def highlighted(self) -> list[str]:
        return list(self._highlight)

    # -- markers ---------------------------------------------------------------------
    def add_marker(self, group: str, point, colour=(0.1, 0.45, 1.0), radius: float = 4.0):
        """A small sphere at a point, removed with its group (labels: :meth:`add_label`)."""
        sphere = pv.Sphere(radius=radius, center=tuple(map(float, point)), theta_resolution=16, phi_resolution=16)
        n = f"marker_{group}_{len(self._markers.get(group, []))}"
        actor = self.plotter.add_mesh(sphere, color=colour, pickable=False, name=n, reset_camera=False)
        self._markers.setdefault(group, []).append(n)
        return actor

    def add_label(self, group: str, point, text: str) -> None:
        """A text label pinned to a point (always visible), removed with its group."""
        n = f"marker_{group}_{len(self._markers.get(group, []))}_label"
        self.plotter.add_point_labels(np.array([point], float), [text], font_size=12, point_size=1,
                                      shape_opacity=0.7, always_visible=True, name=n, reset_camera=False)
        self._markers.setdefault(group, []).append(n)

    def clear_markers(self, group: str) -> None:
        for n in self._markers.pop(group, []):
            self.plotter.remove_actor(n, render=False)

    def marker_count(self, group: str) -> int:
        return sum(1 for n in self._markers.get(group, []) if not n.endswith("_label"))

    # -- contraction pulse -----------------------------------------------------------
    def set_contraction(self, sid: str, amount: float) -> None:
        """Shorten a muscle by ``amount`` (0 = rest, 0.1 = 10 %; negative lengthens) along its
        long axis, bulging across it (volume kept), about its centroid. Shows a twitch and a release."""
        a = self.scene.actors.get(sid)
        if a is None:
            return
        s = self.scene.atlas.structures[sid]
        c = s.centroid
        base = self._rest_colour.setdefault(sid, a.GetProperty().GetColor())
        glow = self._glow.get(sid)
        if abs(amount) < 1e-4:
            a.SetUserMatrix(None)
            a.GetProperty().SetColor(*base)
            self._rest_colour.pop(sid, None)
            if glow is not None:
                needle_layer(self.plotter).RemoveActor(glow)
                del self._glow[sid]
            return
        if glow is None:  # the moving muscle shows through what covers it (same mesh, overlay layer)
            import vtk

            glow = vtk.vtkActor()
            glow.SetMapper(a.GetMapper())
            glow.GetProperty().SetOpacity(0.6)
            glow.SetPickable(False)
            needle_layer(self.plotter).AddActor(glow)
            self._glow[sid] = glow
        glow.GetProperty().SetColor(*((1.0, 0.35, 0.45) if amount > 0 else (0.95, 0.8, 0.75)))
        # colour follows the pulse: flushed when contracting, paler when easing out
        tint = (1.0, 0.45, 0.55) if amount > 0 else (0.95, 0.75, 0.70)
        w_ = min(1.0, abs(amount) * 8.0)
        a.GetProperty().SetColor(*[(1 - w_) * b + w_ * t_ for b, t_ in zip(base, tint)])
        axis = _long_axis(s.vertices)
        k = 1.0 - float(amount)
        w = 1.0 / np.sqrt(k)
        m = w * np.eye(3) + (k - w) * np.outer(axis, axis)
        t = c - m @ c
        mat = np.eye(4)
        mat[:3, :3] = m
        mat[:3, 3] = t
        vm = pv.vtkmatrix_from_array(mat)
        a.SetUserMatrix(vm)
        glow.SetUserMatrix(vm)


def _long_axis(v: np.ndarray) -> np.ndarray:
    x = v - v.mean(axis=0)
    _, _, vt = np.linalg.svd(x[:: max(1, len(x) // 2000)], full_matrices=False)
    return vt[0]


def clearance_colour(mm: float | None) -> tuple[float, float, float]:
    """Green far from danger, amber within 10 mm, red within 3 mm or inside."""
    if mm is None or mm > 10.0:
        return (0.20, 0.75, 0.30)
    if mm > 3.0:
        return (1.0, 0.65, 0.0)
    return (0.9, 0.1, 0.1)

"""Camera presets aimed with the atlas's landmarks (no GUI toolkit here).

A preset is a view direction (from the focal point toward the camera), a view-up vector, a
focal point and a distance. Close-ups are aimed at landmarks so they follow any atlas that
has them; when a landmark is missing the preset falls back to the whole-body view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.model.atlas import Atlas


@dataclass(frozen=True)
class Preset:
    key: str  # keyboard shortcut
    title: str
    direction: tuple[float, float, float]
    up: tuple[float, float, float]
    landmarks: tuple[str, ...] = ()  # focus = their mean; empty = whole body
    distance: float | None = None  # mm; None = fit the whole body


#: Preset views in menu order. Close-ups look at the back of the patient lying prone
#: (camera behind, head up on screen), aimed at the named landmarks.
PRESETS: dict[str, Preset] = {
    "posterior": Preset("1", "Posterior (whole body)", (0, 1, 0), (0, 0, 1)),
    "lateral": Preset("2", "Right lateral (whole body)", (-1, 0, 0), (0, 0, 1)),
    "neck": Preset("3", "Prone close-up: neck", (-0.3, 1, 0.35), (0, 0, 1), ("C4_spinous",), 480.0),
    "thorax": Preset("4", "Prone close-up: thorax", (-0.3, 1, 0.3), (0, 0, 1), ("T6_spinous",), 900.0),
    "lumbar": Preset("5", "Prone close-up: lumbar", (-0.35, 1, 0.35), (0, 0, 1), ("L3_spinous", "L5_spinous"), 600.0),
    "buttock": Preset("6", "Prone close-up: right buttock", (-0.35, 1, 0), (0, 0, 1),
                      ("greater_trochanter_r", "psis_r", "ischial_tuberosity_r"), 600.0),
    "leg": Preset("7", "Close-up: right leg (posterolateral)", (-0.6, 1, 0), (0, 0, 1),
                  ("fibular_head_r", "lateral_malleolus_r", "greater_trochanter_r"), 1300.0),
    "anterior": Preset("8", "Anterior (whole body)", (0, -1, 0), (0, 0, 1)),
}


_BOUNDS: dict = {}


def _bounds(atlas: Atlas) -> tuple[np.ndarray, np.ndarray]:
    """``atlas.bounds``, remembered while the meshes are the same arrays (it reads every
    vertex: ~50 ms on the built-in atlas, which a preset view change should not pay)."""
    key = (id(atlas), tuple(id(s.vertices) for s in atlas))
    got = _BOUNDS.get(key)
    if got is None:
        _BOUNDS.clear()
        got = _BOUNDS[key] = atlas.bounds
    return got


def camera_for(atlas: Atlas, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(camera position, focal point, view up) of a preset for this atlas."""
    if name not in PRESETS:
        raise KeyError(f"no preset view {name!r}; presets are {', '.join(PRESETS)}")
    p = PRESETS[name]
    lo, hi = _bounds(atlas)
    focus = (lo + hi) / 2
    dist = float(np.linalg.norm(hi - lo)) * 1.2
    if p.landmarks:
        try:
            focus = np.mean([atlas.landmark(n).xyz for n in p.landmarks], axis=0)
            dist = p.distance or dist
        except Exception:  # an atlas without these landmarks: whole body instead
            pass
    d = np.asarray(p.direction, float)
    d /= np.linalg.norm(d)
    return focus + d * dist, focus, np.asarray(p.up, float)


def apply_preset(plotter, atlas: Atlas, name: str) -> None:
    pos, focus, up = camera_for(atlas, name)
    cam = plotter.camera
    cam.position = tuple(pos)
    cam.focal_point = tuple(focus)
    cam.up = tuple(up)
    if not PRESETS[name].landmarks:
        # whole body: fit its height (or width) into the view whatever the window's shape
        lo, hi = _bounds(atlas)
        d = np.asarray(PRESETS[name].direction, float)
        d /= np.linalg.norm(d)
        u = np.asarray(up, float)
        r = np.cross(d, u)
        ext = hi - lo
        half_h = 0.5 * float(np.abs(u) @ ext)
        half_w = 0.5 * float(np.abs(r) @ ext)
        w, h = plotter.render_window.GetSize()
        aspect = max(w, 1) / max(h, 1)
        t = np.tan(np.radians(cam.view_angle / 2))
        dist = max(half_h, half_w / aspect) / t * 1.08 + 0.5 * float(np.abs(d) @ ext)
        cam.position = tuple(focus + d * dist)
    plotter.reset_camera_clipping_range()


def screen_ray(plotter, x: float, y: float) -> tuple[np.ndarray, np.ndarray]:
    """World-space ray (origin at the camera, unit direction) through display pixel (x, y).

    ``x, y`` are VTK display coordinates (origin bottom-left, physical pixels).
    """
    ren = plotter.renderer
    ren.SetDisplayPoint(float(x), float(y), 0.0)
    ren.DisplayToWorld()
    w = np.array(ren.GetWorldPoint(), float)
    near = w[:3] / (w[3] or 1.0)
    ren.SetDisplayPoint(float(x), float(y), 1.0)
    ren.DisplayToWorld()
    w = np.array(ren.GetWorldPoint(), float)
    far = w[:3] / (w[3] or 1.0)
    d = far - near
    n = np.linalg.norm(d)
    if n < 1e-9:
        d = np.array(plotter.camera.focal_point) - np.array(plotter.camera.position)
        n = np.linalg.norm(d)
    # start well outside the body whatever the clipping range
    origin = near - d / n * 2000.0 if plotter.camera.parallel_projection else np.array(plotter.camera.position, float)
    return origin, d / n


def world_to_display(plotter, point) -> tuple[float, float]:
    """VTK display coordinates (bottom-left origin) of a world point."""
    ren = plotter.renderer
    ren.SetWorldPoint(*map(float, point), 1.0)
    ren.WorldToDisplay()
    x, y, _ = ren.GetDisplayPoint()
    return float(x), float(y)


def in_view(plotter, points, margin_px: float = 60.0) -> bool:
    """Whether every world point shows inside the view, ``margin_px`` from its edges (room
    for a label beside it)."""
    w, h = plotter.renderer.GetSize()
    for p in points:
        x, y = world_to_display(plotter, p)
        if not (margin_px <= x <= w - margin_px and margin_px <= y <= h - margin_px):
            return False
    return True

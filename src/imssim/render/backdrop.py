"""Fast frames when only the needle moved: the scene's last picture reused as a backdrop.

The needles are drawn on their own layer over the scene (see :mod:`.overlay`). Moving a
needle changes nothing in the scene layer (the 300 structures), yet a plain render draws
all of it again: ~200 ms per frame with software OpenGL (llvmpipe, no GPU). So:

* before each frame a cheap *stamp* of the scene layer is taken: the camera, the window
  size, the renderer and every prop's redraw time and visibility (any change to an actor,
  its property or its mesh, a marker added, a highlight, a twitch pulse changes it);
* if the stamp is the same as two frames ago, the next full frame also copies the scene
  layer's pixels (read back when the scene renderer ends, before the needle layer draws);
* while the stamp still matches that copy, the scene renderer is switched off for the frame
  and a prop-less renderer on the same layer draws the copy as its background texture,
  then the needle layer draws over it: one textured quad instead of the whole scene.

It works on the render window's start and end events, so every frame goes through it
however it is asked for (the Qt widget's paint, the interactor, ``plotter.render()``).

Anything else (a camera move, a layer toggle, a pulse) falls back to the full frame, so
the picture is always what a full render would draw. ``mode`` "auto" uses fast frames
only when full frames are slow (over :data:`SLOW_FRAME_S`), so a machine with a GPU is
unaffected; "on" and "off" force it (``IMSSIM_FAST_FRAMES`` sets the default).
"""

from __future__ import annotations

import os
import time

SLOW_FRAME_S = 0.025
MODES = ("auto", "on", "off")


class SceneBackdrop:
    """Makes every render of ``plotter``'s window reuse the scene layer's pixels when only
    the layers above it changed. It hooks the render window's start and end events, so it
    applies to every frame however it is asked for (the window's paint, the interactor,
    ``plotter.render()``, screenshots)."""

    def __init__(self, plotter, mode: str | None = None):
        self.plotter = plotter
        self.base = plotter.renderer
        mode = mode or os.environ.get("IMSSIM_FAST_FRAMES", "auto")
        if mode not in MODES:
            raise ValueError(f"IMSSIM_FAST_FRAMES / mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self.full_frames = 0
        self.fast_frames = 0
        self.captures = 0
        self.last_full_s = 0.0
        self.last_frame = None  # "fast" or "full"
        self._last_full_stamp = None
        self._image = None  # (vtkTexture of the copy, stamp)
        self._want_capture = False
        self._fast = False
        self._t0 = 0.0
        self._start_stamp = None  # the stamp taken as the current frame began
        self._bd_renderer = None  # made on the first fast frame
        rw = plotter.render_window
        self._tags = [(rw, rw.AddObserver("StartEvent", self._on_start)),
                      (rw, rw.AddObserver("EndEvent", self._on_end)),
                      (self.base, self.base.AddObserver("EndEvent", self._on_scene_rendered))]

    # -- public --------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return self.mode == "on" or (self.mode == "auto" and self.last_full_s > SLOW_FRAME_S)

    def invalidate(self) -> None:
        """Forget the copy: the next frame is a full one."""
        self._image = None
        self._last_full_stamp = None

    def render(self) -> str:
        """Draw one frame now; returns "fast" or "full" (for tests and the benchmark)."""
        self.plotter.render_window.Render()
        return self.last_frame

    def detach(self) -> None:
        for obj, tag in self._tags:
            obj.RemoveObserver(tag)
        self._tags = []
        if self._bd_renderer is not None:
            self.plotter.render_window.RemoveRenderer(self._bd_renderer)
            self._bd_renderer = None

    def pixels(self):
        """The last frame as an (h, w, 3) uint8 array, read back without rendering again."""
        import numpy as np
        from vtk.util.numpy_support import vtk_to_numpy

        import vtk

        rw = self.plotter.render_window
        w, h = rw.GetActualSize()
        arr = vtk.vtkUnsignedCharArray()
        rw.GetPixelData(0, 0, w - 1, h - 1, 0, arr, 0)
        return np.flipud(vtk_to_numpy(arr).reshape(h, w, 3)).copy()

    def stamp(self, props: tuple | None = None) -> tuple:
        """What the scene layer's picture depends on (cheap: no rendering). ``props`` reuses
        the props' part of an earlier stamp (their redraw times: ~4 ms for 300 props)."""
        rw = self.plotter.render_window
        cam = self.base.GetActiveCamera()
        if props is None:
            coll = self.base.GetViewProps()
            coll.InitTraversal()
            items = []
            for _ in range(coll.GetNumberOfItems()):
                p = coll.GetNextProp()
                items.append((p.GetVisibility(), p.GetRedrawMTime()))
            props = tuple(items)
        return (tuple(rw.GetActualSize()), cam.GetMTime(), self.base.GetMTime(), props)

    # -- internals --------------------------------------------------------------------------
    def _on_start(self, obj, event) -> None:
        st = self._start_stamp = self.stamp()
        if self.enabled and self._image is not None and self._image[1] == st:
            self._begin_fast()
            return
        self._want_capture = self.enabled and st == self._last_full_stamp
        self._image = None
        self._t0 = time.perf_counter()

    def _on_end(self, obj, event) -> None:
        if self._fast:
            self._end_fast()
            # no prop was touched (only the renderers were switched): their part stands
            self._image = (self._image[0], self.stamp(self._start_stamp[3]))
            self._last_full_stamp = self._image[1]
            self.fast_frames += 1
            self.last_frame = "fast"
            return
        self._want_capture = False
        self.last_full_s = time.perf_counter() - self._t0
        self._last_full_stamp = self.stamp()
        if self._image is not None:
            self._image = (self._image[0], self._last_full_stamp)
        self.full_frames += 1
        self.last_frame = "full"

    def _on_scene_rendered(self, obj, event) -> None:
        if not self._want_capture or self._fast:
            return
        import vtk

        rw = self.plotter.render_window
        x0, y0, x1, y1 = self._viewport_pixels()
        arr = vtk.vtkUnsignedCharArray()
        rw.GetRGBACharPixelData(x0, y0, x1, y1, 0, arr, 0)
        arr.FillComponent(3, 255)  # opaque: translucent surfaces leave alpha < 1 in the buffer
        img = vtk.vtkImageData()
        img.SetDimensions(x1 - x0 + 1, y1 - y0 + 1, 1)
        img.GetPointData().SetScalars(arr)
        tex = vtk.vtkTexture()  # kept with the copy: uploaded to the GPU once, not per frame
        tex.SetInputData(img)
        tex.InterpolateOff()
        self._image = (tex, None)
        self._want_capture = False
        self.captures += 1

    def _viewport_pixels(self) -> tuple[int, int, int, int]:
        w, h = self.plotter.render_window.GetActualSize()
        vx0, vy0, vx1, vy1 = self.base.GetViewport()
        return int(round(vx0 * w)), int(round(vy0 * h)), int(round(vx1 * w)) - 1, int(round(vy1 * h)) - 1

    def _backdrop_renderer(self):
        """A renderer on the scene's layer with no props, the copy as its background."""
        r = self._bd_renderer
        if r is None:
            import vtk

            r = vtk.vtkRenderer()
            r.SetLayer(self.base.GetLayer())
            r.InteractiveOff()
            r.SetDraw(False)
            r.TexturedBackgroundOn()
            self.plotter.render_window.AddRenderer(r)
            self._bd_renderer = r
        r.SetViewport(self.base.GetViewport())
        return r

    def _begin_fast(self) -> None:
        r = self._backdrop_renderer()
        r.SetBackgroundTexture(self._image[0])
        r.SetDraw(True)
        self.base.SetDraw(False)
        self._fast = True

    def _end_fast(self) -> None:
        self._fast = False
        self._bd_renderer.SetDraw(False)
        self.base.SetDraw(True)

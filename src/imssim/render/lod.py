"""Smooth camera motion without a GPU: simplified meshes while the view moves.

With software OpenGL (llvmpipe) a full frame of the whole body takes a few hundred
milliseconds, so dragging the view stutters. While the camera moves this draws the
visible opaque structures as one actor made of simplified copies of their meshes (built
once per atlas by quadric decimation, cached on disk beside the atlas; one draw call, as
per-actor cost dominates once meshes are small), without the translucent layers and
without FXAA; when the motion stops the full picture is drawn again.

"The camera moves" is detected in two ways, both on vtk objects so any window (Qt or
not) gets it without code of its own:

* the interactor style's ``StartInteractionEvent`` .. ``EndInteractionEvent`` (a drag
  with the mouse held): simplified frames throughout, the full frame at the end;
* a frame whose camera differs from the last full frame's (a preset view, a wheel step,
  a scripted move): that frame is simplified and the full one follows once the camera has
  been still for :data:`SETTLE_MS` (on the GUI's event loop: the window passes its
  one-shot timer; vtk interactor timers are not used, pyvistaqt turns every one of them into
  a 10 ms repeating timer that re-renders a drag); without one call
  :meth:`InteractionLOD.settle`.

A frame that would draw the same picture as the last one (the Qt widget paints after the
interactor has rendered: two renders per mouse move) draws nothing and the window shows
the last image again (``dedupe``).

``mode`` "auto" (the default, ``IMSSIM_LOD`` sets it) switches simplified frames on only
when full frames are slow (over :data:`SLOW_FRAME_S`): a machine with a GPU draws every
frame in full as before. "on" and "off" force it.
"""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np

SLOW_FRAME_S = 0.05
SETTLE_MS = 180
REPEAT_OVER_S = 0.03  # frames slower than this are not drawn twice in a row
TARGET_FACES = 0.06  # keep this fraction of each mesh's triangles ...
MIN_KEEP = 120  # ... but at least this many (meshes smaller than twice this are kept whole)
MODES = ("auto", "on", "off")


def simplified_meshes(atlas, fraction: float = TARGET_FACES, min_keep: int = MIN_KEEP) -> dict:
    """{structure id: (vertices, faces)} of simplified meshes (quadric decimation), cached
    on disk (keyed by the meshes themselves)."""
    h = hashlib.sha1(f"lod-2 {fraction} {min_keep}".encode())
    for s in atlas:
        h.update(s.id.encode())
        h.update(np.ascontiguousarray(s.vertices).tobytes())
        h.update(np.ascontiguousarray(s.faces).tobytes())
    path = None
    try:
        from ..core.model.store import cache_dir

        path = cache_dir() / "lod" / f"{h.hexdigest()}.npz"
        if path.exists():
            with np.load(path) as z:
                ids = [str(x) for x in z["ids"]]
                return {sid: (z[f"v{k}"], z[f"f{k}"]) for k, sid in enumerate(ids)}
    except Exception:  # an unreadable cache is rebuilt
        pass
    import fast_simplification

    out = {}
    for s in atlas:
        n = len(s.faces)
        if n < 2 * min_keep:
            continue
        keep = max(fraction, min_keep / n)
        try:
            v, f = fast_simplification.simplify(np.asarray(s.vertices, np.float32), np.asarray(s.faces, np.int32),
                                                target_reduction=1.0 - keep)
        except Exception:
            continue
        if len(f):
            out[s.id] = (np.asarray(v, np.float32), np.asarray(f, np.int64))
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            arrays = {"ids": np.array(list(out))}
            for k, (v, f) in enumerate(out.values()):
                arrays[f"v{k}"], arrays[f"f{k}"] = v, f
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, **arrays)
            tmp.replace(path)
        except OSError:
            pass
    return out


class InteractionLOD:
    """Simplified meshes for the actors of an :class:`~imssim.render.scene.AtlasScene`
    while the camera moves (see the module's documentation)."""

    def __init__(self, plotter, scene, mode: str | None = None, lod: dict | None = None, schedule=None):
        """``schedule(ms, fn)`` runs ``fn`` once after ``ms`` milliseconds on the GUI's event
        loop (the Qt window passes ``QTimer.singleShot``); without it the full frame after
        a scripted camera move waits for :meth:`settle` (or the next drag's end)."""
        self.plotter = plotter
        self.scene = scene
        mode = mode or os.environ.get("IMSSIM_LOD", "auto")
        if mode not in MODES:
            raise ValueError(f"IMSSIM_LOD / mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self.active = False  # simplified meshes are shown
        self.interacting = False
        self.last_full_s = 0.0
        self.full_frames = 0
        self.lod_frames = 0
        self.last_frame = None  # "lod" or "full"
        self._lod_src = lod
        self._lod_poly: dict | None = None
        self.dedupe = True
        self.repeat_frames = 0
        self._skipped = None
        self._end_stamp = None
        self._proxy = None
        self._proxy_key = None
        self._lights = None
        self._headlight = None
        self._fxaa = None
        self._cam_full = None  # the camera of the last full frame
        self._t0 = 0.0
        self._schedule_fn = schedule
        self._gen = 0  # scheduled settles of older generations are void
        self._in_settle = False
        rw = plotter.render_window
        self._tags = [(rw, rw.AddObserver("StartEvent", self._on_start, 1.0)),
                      (rw, rw.AddObserver("EndEvent", self._on_end, 1.0))]
        self._prep = None
        if self.mode != "off" and lod is None:
            import threading

            # the simplified meshes (from the disk cache, or decimated once) while the window starts
            self._prep = threading.Thread(target=self._prepare, daemon=True)
            self._prep.start()
        self._iren = None
        iren = getattr(getattr(plotter, "iren", None), "interactor", None)
        if iren is not None:
            self._iren = iren
            self._watch_style()
            self._tags.append((iren, iren.AddObserver("ModifiedEvent", lambda *a: self._watch_style())))

    # -- public ---------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return self.mode == "on" or (self.mode == "auto" and self.last_full_s > SLOW_FRAME_S)

    def settle(self) -> None:
        """The camera has stopped: draw the full picture now (if the last frame was not)."""
        self._cancel_timer()
        self.interacting = False
        if getattr(self.plotter, "render_window", None) is None or getattr(self.plotter, "_closed", False):
            return  # the window has closed meanwhile
        if self.active:
            self._in_settle = True
            try:
                self.plotter.render_window.Render()
            finally:
                self._in_settle = False

    def detach(self) -> None:
        self._cancel_timer()
        if self.active:
            self._show_full()
        for obj, tag in self._tags:
            obj.RemoveObserver(tag)
        self._tags = []

    # -- events ---------------------------------------------------------------------------
    def _watch_style(self) -> None:
        style = self._iren.GetInteractorStyle() if self._iren is not None else None
        if style is None or getattr(self, "_style", None) is style:
            return
        for obj, tag in [t for t in self._tags if t[0] is getattr(self, "_style", None)]:
            obj.RemoveObserver(tag)
        self._tags = [t for t in self._tags if t[0] is not getattr(self, "_style", None)]
        self._style = style
        self._tags.append((style, style.AddObserver("StartInteractionEvent", self._on_start_interaction)))
        self._tags.append((style, style.AddObserver("EndInteractionEvent", self._on_end_interaction)))

    def _on_start_interaction(self, *_):
        self.interacting = True
        self._cancel_timer()

    def _on_end_interaction(self, *_):
        self.interacting = False
        if self.active:
            self._schedule(1)

    def _camera_stamp(self):
        cam = self.plotter.renderer.GetActiveCamera()
        return (cam.GetPosition(), cam.GetFocalPoint(), cam.GetViewUp(), cam.GetViewAngle(),
                cam.GetParallelScale(), tuple(self.plotter.render_window.GetSize()))

    def _frame_stamp(self):
        """What the picture depends on: every renderer's state and camera, and every prop's
        visibility and redraw time (a changed actor, property, mesh or text changes it)."""
        rw = self.plotter.render_window
        out = [tuple(rw.GetSize())]
        rens = rw.GetRenderers()
        rens.InitTraversal()
        for _ in range(rens.GetNumberOfItems()):
            r = rens.GetNextItem()
            # (not the renderer's MTime: switching its drawing on and off, as this and the
            # backdrop do, modifies it without changing the picture)
            out.append((r.GetActiveCamera().GetMTime(), r.GetBackground(), r.GetBackground2(),
                        r.GetGradientBackground(), r.GetViewport(), r.GetLayer(), r.GetUseFXAA()))
            props = r.GetViewProps()
            props.InitTraversal()
            for _ in range(props.GetNumberOfItems()):
                p = props.GetNextProp()
                out.append((p.GetVisibility(), p.GetRedrawMTime()))
        return tuple(out)

    def _on_start(self, *_):
        self._t0 = time.perf_counter()
        self._skipped = None
        if self.enabled and self.dedupe and self._end_stamp is not None and not self._in_settle:
            st = self._frame_stamp()
            if st == self._end_stamp:
                # the same picture as the last frame (the Qt widget's paint after a render
                # by the interactor): no renderer draws, the window shows the last image
                rens = self.plotter.render_window.GetRenderers()
                rens.InitTraversal()
                self._skipped = []
                for _ in range(rens.GetNumberOfItems()):
                    r = rens.GetNextItem()
                    if r.GetDraw():
                        r.SetDraw(False)
                        self._skipped.append(r)
                self.repeat_frames += 1
                return
        cam = self._camera_stamp()
        moving = self.interacting or (self._cam_full is not None and cam != self._cam_full)
        want_lod = moving and self.enabled and not self._in_settle
        if want_lod:
            if not self.active:
                self._show_lod()
            if not self.interacting:
                self._schedule(SETTLE_MS)
        elif self.active:
            self._show_full()

    def _on_end(self, *_):
        dt = time.perf_counter() - self._t0
        if self._skipped is not None:
            for r in self._skipped:
                r.SetDraw(True)
            self._skipped = None
            self.last_frame = "repeat"
            return
        # only a slow frame is worth a stamp (~3 ms for 300 props) to skip its repeat
        self._end_stamp = self._frame_stamp() if self.enabled and self.dedupe and dt > REPEAT_OVER_S else None
        if self.active:
            self.lod_frames += 1
            self.last_frame = "lod"
        else:
            self.full_frames += 1
            self.last_frame = "full"
            if self.plotter.renderer.GetDraw():  # not a reused picture (render/backdrop.py)
                self.last_full_s = dt
            self._cam_full = self._camera_stamp()

    def _schedule(self, ms: int) -> None:
        self._gen += 1
        if self._schedule_fn is None:
            return
        gen = self._gen

        def fire():
            if gen == self._gen and not self.interacting and self._tags:
                self.settle()

        self._schedule_fn(int(ms), fire)

    def _cancel_timer(self) -> None:
        self._gen += 1

    # -- swapping -------------------------------------------------------------------------
    def _prepare(self) -> None:
        try:
            self._lod_src = simplified_meshes(self.scene.atlas)
        except Exception:  # no simplified meshes: full ones are drawn
            self._lod_src = {}

    def _ensure_lod(self) -> dict:
        """{structure id: (vertices, faces)} of the simplified meshes."""
        if self._lod_poly is None:
            if self._prep is not None:
                self._prep.join()
            src = self._lod_src if self._lod_src is not None else simplified_meshes(self.scene.atlas)
            self._lod_poly = {sid: vf for sid, vf in src.items() if sid in self.scene.actors}
        return self._lod_poly

    def _proxy_for(self, visible: tuple) -> object:
        """One actor drawing every visible opaque structure from its simplified mesh, with
        per-vertex colours: one draw call instead of hundreds (per-actor cost dominates a
        software renderer's frame once the meshes are small). Cached per set of visible
        structures."""
        if self._proxy is not None and self._proxy_key == visible:
            return self._proxy
        import pyvista as pv

        lod = self._ensure_lod()
        pts, faces, cols = [], [], []
        off = 0
        for sid in visible:
            actor = self.scene.actors[sid]
            if sid in lod:
                v, f = lod[sid]
            else:
                s = self.scene.atlas.structures.get(sid)
                if s is None:
                    continue
                v, f = s.vertices, s.faces
            pts.append(np.asarray(v, np.float32))
            faces.append(np.asarray(f, np.int64) + off)
            rgb = np.round(np.asarray(actor.GetProperty().GetColor()) * 255).astype(np.uint8)
            cols.append(np.broadcast_to(rgb, (len(v), 3)))
            off += len(v)
        if not pts:
            return None
        f = np.concatenate(faces)
        poly = pv.PolyData(np.concatenate(pts), np.hstack([np.full((len(f), 1), 3, np.int64), f]).ravel())
        poly.point_data["rgb"] = np.concatenate(cols)
        poly = poly.compute_normals(cell_normals=False, split_vertices=False, consistent_normals=False,
                                    auto_orient_normals=False)
        if self._proxy is not None:
            self.plotter.renderer.RemoveActor(self._proxy)
        import vtk

        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(poly)
        mapper.SetScalarModeToUsePointFieldData()
        mapper.SelectColorArray("rgb")
        mapper.SetColorModeToDirectScalars()
        mapper.ScalarVisibilityOn()
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.PickableOff()
        actor.GetProperty().SetInterpolationToGouraud()
        actor.SetVisibility(False)
        self.plotter.renderer.AddActor(actor)
        self._proxy, self._proxy_key = actor, visible
        return actor

    def _show_lod(self) -> None:
        self.scene.swapped.clear()
        visible = []
        for sid, actor in self.scene.actors.items():
            if not actor.GetVisibility():
                continue
            self.scene.swapped.add(sid)
            # translucent layers (the skin's 0.18 veil) cost a second pass and blending of
            # every fragment: left out while moving
            if actor.GetProperty().GetOpacity() >= 0.99:
                visible.append(sid)
        proxy = self._proxy_for(tuple(visible))
        for sid in self.scene.swapped:
            self.scene.actors[sid].SetVisibility(False)
        if proxy is not None:
            proxy.SetVisibility(True)
        ren = self.plotter.renderer
        self._fxaa = ren.GetUseFXAA() if hasattr(ren, "GetUseFXAA") else None
        if self._fxaa:
            ren.SetUseFXAA(False)
        # one headlight instead of the light kit (five lights: the fragment shader's cost)
        lights = ren.GetLights()
        self._lights = [lights.GetItemAsObject(k) for k in range(lights.GetNumberOfItems())]
        if len(self._lights) > 1:
            import vtk

            ren.RemoveAllLights()
            if self._headlight is None:
                self._headlight = vtk.vtkLight()
                self._headlight.SetLightTypeToHeadlight()
            ren.AddLight(self._headlight)
        else:
            self._lights = None
        self.active = True

    def _show_full(self) -> None:
        if self._proxy is not None:
            self._proxy.SetVisibility(False)
        for sid in self.scene.swapped:
            if sid in self.scene.actors:
                self.scene.actors[sid].SetVisibility(True)
        self.scene.swapped.clear()
        ren = self.plotter.renderer
        if self._fxaa:
            ren.SetUseFXAA(True)
        if self._lights:
            ren.RemoveAllLights()
            for light in self._lights:
                ren.AddLight(light)
        self._lights = None
        self.active = False

"""The window's brain: every mouse/keyboard handler as a plain method that calls the core.

The controller owns no widgets. It holds the atlas scene (render layer), the tissue index
(core), the needles and the mode, and reports changes to listeners as ``(event, data)``
pairs; the Qt window only turns widget events into these calls and data into widgets.
Tests drive it directly with fake events (display coordinates, wheel steps, key names).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..core.atlas import Atlas
from ..core.needle import REDIRECT_DEPTH_MM, Needle, NeedleError, direction_from_angles
from ..core.physiology import GRASP_RESISTANCE
from ..core.session import Session, SessionError
from ..core.traversal import TissueIndex, Traversal
from ..render.overlay import NeedleGlyph, Overlay, clearance_colour
from ..render.scene import AtlasScene
from ..render.views import PRESETS, apply_preset, screen_ray

MODES = ("practice", "quiz", "exam")
TOOLS = ("look", "needle", "palpate")
#: targets closer than this share one "missed" label on the body
LABEL_GROUP_MM = 120.0
AIM_STEP_DEG = 2.0
MAX_AIM_DEG = 60.0
STEP_MM = 1.0
#: Kinds a hover/click may name even when translucent.
NAMEABLE_MIN_OPACITY = 0.3


@dataclass
class PlacedNeedle:
    """A needle the trainee placed: poised on the skin (``k`` None) or in the session (``k``)."""

    entry: np.ndarray
    direction: np.ndarray
    normal: np.ndarray  # outward skin normal at the entry
    side: str
    glyph: NeedleGlyph
    length_mm: float
    k: int | None = None  # the session's needle number once the skin is punctured
    depth: float = 0.0
    medial_deg: float = 0.0
    caudal_deg: float = 0.0
    traversal: Traversal | None = None
    stopped: str | None = None  # why the attempt was stopped (practice mode, danger)
    breached: set = field(default_factory=set)

    @property
    def tilt_deg(self) -> float:
        """Angle between the needle and the perpendicular to the skin."""
        c = float(np.clip(-self.normal @ self.direction, -1, 1))
        return float(np.degrees(np.arccos(c)))


def group_labels(points, names, radius_mm: float = LABEL_GROUP_MM, max_labels: int = 5,
                 per_label: int = 3) -> list[tuple[np.ndarray, str]]:
    """One label per cluster of nearby points (in the given order, the most important
    first): "missed: A, B + 2 more" at the cluster's first point. At most ``max_labels``
    labels; each anchor is more than ``radius_mm`` from every other."""
    groups: list[list[int]] = []
    pts = [np.asarray(p, float) for p in points]
    for i, p in enumerate(pts):
        for g in groups:
            if np.linalg.norm(pts[g[0]] - p) <= radius_mm:
                g.append(i)
                break
        else:
            groups.append([i])
    out = []
    for g in groups[:max_labels]:
        shown = [names[i] for i in g[:per_label]]
        more = len(g) - len(shown)
        out.append((pts[g[0]], "missed: " + "\n".join(shown) + (f"\n+ {more} more" if more else "")))
    return out


def recordings_dir() -> Path:
    """Where session recordings are written (IMSSIM_RECORDINGS_DIR or the user data folder)."""
    env = os.environ.get("IMSSIM_RECORDINGS_DIR")
    if env:
        p = Path(env)
    else:
        import platformdirs

        p = Path(platformdirs.user_data_dir("imssim", appauthor=False)) / "sessions"
    p.mkdir(parents=True, exist_ok=True)
    return p


class Controller:
    """Handlers for the trainee's window. ``plotter`` is any pyvista plotter (Qt or off-screen)."""

    def __init__(self, atlas: Atlas, plotter, index: TissueIndex | None = None, mode: str = "practice"):
        self.atlas = atlas
        self.plotter = plotter
        self.scene = AtlasScene.build(plotter, atlas)
        self.overlay = Overlay(self.scene)
        self.index = index if index is not None else TissueIndex(atlas)
        self._indexes: dict[str, TissueIndex] = {}  # per body build, once used
        self._prepared: dict[str, tuple] = {}  # body build -> (atlas, index) being switched to
        self.needles: list[PlacedNeedle] = []
        self.missed_labels: list[tuple[np.ndarray, str]] = []  # (anchor, text) after finishing
        self.active: int | None = None
        self.needle_spec = Needle(50.0, 0.25)
        self.tool = "look"
        self.mode = "practice"
        self.listeners: list[Callable[[str, dict], None]] = []
        self.feedback: list[tuple[float, str, str]] = []  # (t, level, text)
        self.hover_text: str | None = None
        self.selected: str | None = None
        self.scenario = None  # imssim.core.scenario.Scenario once loaded
        self.targets: list = []  # ResolvedTarget list of the scenario
        self.targets_visible = False
        self.palpated: list[dict] = []  # what palpation found (text, point, structure)
        self.marked_segments: list[str] = []
        self.quiz_answers: dict[int, dict] = {}
        self.quiz_pending: int | None = None  # pick-structure question waiting for a click
        self._loci: list[tuple] = []  # (finding, point or None)
        self.session = Session(atlas, None, index=self.index)
        self.session.listeners.append(self._on_session_event)
        self.report = None
        self.recording_path: Path | None = None
        self.set_mode(mode)
        apply_preset(plotter, atlas, "posterior")

    # -- plumbing --------------------------------------------------------------------
    def clock(self) -> float:
        return round(self.session.now(), 3)

    def emit(self, event: str, **data) -> None:
        for f in list(self.listeners):
            f(event, data)

    def say(self, text: str, level: str = "info") -> None:
        if level == "warn" and self.feedback and self.feedback[-1][1:] == (level, text):
            return  # the same refusal again (e.g. a wheel burst) is said once
        self.feedback.append((self.clock(), level, text))
        self.emit("feedback", text=text, level=level)

    def render(self) -> None:
        self.plotter.render()

    @property
    def settings(self):
        """The scenario's settings for the current mode (labels, hints, targets, timer)."""
        if self.scenario is not None:
            return self.scenario.modes.settings(self.mode)
        from types import SimpleNamespace

        p = self.mode == "practice"
        return SimpleNamespace(labels=p, hints=p, targets_shown=p, timer_s=900.0 if self.mode == "exam" else None)

    @property
    def labels_visible(self) -> bool:
        return bool(self.settings.labels)

    @property
    def hints_visible(self) -> bool:
        return bool(self.settings.hints)

    def label(self, sid: str | None) -> str:
        if sid is None:
            return "-"
        s = self.atlas.structures.get(sid)
        return s.name if s else sid

    # -- modes and tools ---------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; modes are {', '.join(MODES)}")
        self.mode = mode
        if not self.labels_visible:
            self.hover_text = None
            self.overlay.clear_highlight()
            self.selected = None
        if not self.settings.targets_shown:
            self.targets_visible = False
        self._apply_targets()
        self.emit("mode", mode=mode)
        if self.needles:
            self.emit("needle", readout=self.readout())

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        self.tool = tool
        self.emit("tool", tool=tool)

    def set_needle_length(self, length_mm: float) -> None:
        self.needle_spec = Needle(float(length_mm), self.needle_spec.gauge_mm)
        self.emit("needle_spec", length=length_mm)

    # -- views and layers ---------------------------------------------------------------
    def view(self, name: str) -> None:
        apply_preset(self.plotter, self.atlas, name)
        self.emit("view", view=name)
        self.render()

    def set_kind_opacity(self, kind: str, opacity: float) -> None:
        self.scene.set_kind_opacity(kind, opacity)
        self.render()

    def set_kind_visible(self, kind: str, visible: bool) -> None:
        self.scene.set_kind_visible(kind, visible)
        self.render()

    def set_region_visible(self, region: str, visible: bool) -> None:
        self.scene.set_region_visible(region, visible)
        self.render()

    def set_danger_visible(self, visible: bool) -> None:
        for sid, a in self.scene.actors.items():
            if self.atlas.structures[sid].is_danger:
                a.SetVisibility(visible)
        self.render()

    def select_structure(self, sid: str | None, focus: bool = False) -> None:
        """Highlight one structure (from the list or a click); ``focus`` aims the camera at it."""
        if self.selected is not None:
            self.overlay.clear_highlight([self.selected])
            self._apply_targets()
        self.selected = sid
        if sid is not None:
            self.overlay.highlight([sid])
            if focus:
                c = self.atlas.structures[sid].centroid
                cam = self.plotter.camera
                off = np.asarray(cam.position) - np.asarray(cam.focal_point)
                cam.focal_point = tuple(c)
                cam.position = tuple(c + off / np.linalg.norm(off) * 650.0)
                self.plotter.reset_camera_clipping_range()
        self.emit("selected", sid=sid)
        self.render()

    # -- picking -------------------------------------------------------------------------
    def _visible(self, sid: str) -> bool:
        a = self.scene.actors.get(sid)
        return bool(a is not None and a.GetVisibility() and a.GetProperty().GetOpacity() >= NAMEABLE_MIN_OPACITY)

    def pick(self, x: float, y: float) -> str | None:
        """The first visible, not see-through structure under display pixel (x, y)."""
        o, d = screen_ray(self.plotter, x, y)
        tr = self.index.query(o, d, 6000.0, stop_at_bone=False)
        for iv in sorted(tr.intervals, key=lambda iv: iv.entry_depth):
            if self._visible(iv.structure):
                return iv.structure
        return None

    def on_hover(self, x: float, y: float) -> str | None:
        """Name under the pointer (None in quiz and exam mode, where names are hidden)."""
        if not self.labels_visible:
            self.hover_text = None
        else:
            sid = self.pick(x, y)
            self.hover_text = self.label(sid) if sid else None
        self.emit("hover", text=self.hover_text)
        return self.hover_text

    def on_click(self, x: float, y: float) -> None:
        """A click (not a drag) in the 3D view at display pixel (x, y)."""
        if self.tool == "needle":
            o, d = screen_ray(self.plotter, x, y)
            self.place_needle_ray(o, d)
        elif self.tool == "palpate":
            o, d = screen_ray(self.plotter, x, y)
            self.palpate_ray(o, d)
        else:
            sid = self.pick(x, y)
            if self.quiz_pending is not None:
                self.answer_quiz(self.quiz_pending, sid)
                return
            if self.labels_visible:
                self.select_structure(sid)
            self.emit("clicked", sid=sid)

    def on_wheel(self, steps: int, fine: bool = False) -> bool:
        """Mouse wheel: advances (+) or withdraws (-) the active needle in the needle tool.

        Returns True when the wheel was used (otherwise the view zooms)."""
        if self.tool != "needle" or self.active is None:
            return False
        mm = (0.5 if fine else STEP_MM) * abs(steps)
        self.advance(mm) if steps > 0 else self.withdraw(mm)
        return True

    def on_drag_aim(self, dx_px: float, dy_px: float) -> None:
        """Aim by dragging (with Ctrl): right/left = medial/lateral, up/down = cranial/caudal."""
        n = self.current
        if n is None:
            return
        med = dx_px * 0.25 * (1 if n.side == "right" else -1)
        self.aim(med, dy_px * 0.25)

    # -- needles ---------------------------------------------------------------------------
    @property
    def current(self) -> PlacedNeedle | None:
        return None if self.active is None else self.needles[self.active]

    def place_needle_ray(self, origin, direction) -> PlacedNeedle | None:
        hit = self.index.snap_to_skin(origin, direction)
        if hit is None:
            self.say("That click missed the body: click on the skin to set the entry point.", "warn")
            return None
        if not hit.on_skin:
            self.say("This atlas has no skin surface; the needle enters at the first surface hit.", "warn")
        return self.place_needle_at(hit.point, hit.normal)

    def place_needle_at(self, entry, normal_out, medial_deg: float = 0.0, caudal_deg: float = 0.0) -> PlacedNeedle:
        """Poise a needle on the skin (not yet in): aim freely, then advance to puncture."""
        entry = np.asarray(entry, float)
        normal = np.asarray(normal_out, float) / np.linalg.norm(normal_out)
        side = "midline" if abs(entry[0]) < 1.0 else ("left" if entry[0] > 0 else "right")
        d = self._direction(entry, normal, side, medial_deg, caudal_deg)
        glyph = NeedleGlyph(self.plotter, self.needle_spec.length_mm)
        n = PlacedNeedle(entry, d, normal, side, glyph, self.needle_spec.length_mm, medial_deg=medial_deg,
                         caudal_deg=caudal_deg)
        self.needles.append(n)
        self._activate(len(self.needles) - 1)
        self.say(f"Needle {len(self.needles)} ({self.needle_spec.length_mm:g} mm) on the skin. "
                 "Aim with A/D and W/S, then advance with the wheel or Up.")
        self._update()
        return n

    @staticmethod
    def _direction(entry, normal, side, medial, caudal) -> np.ndarray:
        s = "right" if side == "midline" else side
        return direction_from_angles(normal, entry, medial, caudal, side=s)

    def _activate(self, i: int | None) -> None:
        for k, n in enumerate(self.needles):
            n.glyph.set_active(k == i)
        self.active = i

    def select_next_needle(self) -> None:
        if not self.needles:
            return
        self._activate(0 if self.active is None else (self.active + 1) % len(self.needles))
        self._update()

    def _call(self, fn, *args):
        """A session call; what the session refuses is said, never raised at the trainee."""
        if self.session.finished is not None:
            self.say("This attempt is finished and scored: start a new attempt (File > New attempt).", "warn")
            return None
        try:
            return fn(*args)
        except SessionError as e:
            self.say(str(e), "warn")
            return None

    def _sync(self, n: PlacedNeedle) -> None:
        p = self.session.needles[n.k].poses[-1]
        n.entry, n.direction, n.depth = np.asarray(p.entry), np.asarray(p.direction), float(p.depth)

    def aim(self, d_medial: float = 0.0, d_caudal: float = 0.0) -> None:
        """Change the angle. Once through the skin this is a redirection: the needle is first
        withdrawn to the subcutaneous layer (as a practitioner must)."""
        n = self.current
        if n is None:
            return
        med = float(np.clip(n.medial_deg + d_medial, -MAX_AIM_DEG, MAX_AIM_DEG))
        cau = float(np.clip(n.caudal_deg + d_caudal, -MAX_AIM_DEG, MAX_AIM_DEG))
        try:
            d = self._direction(n.entry, n.normal, n.side, med, cau)
        except NeedleError as e:
            self.say(str(e), "warn")
            return
        if n.k is None:
            n.direction = d
        else:
            before = n.depth
            if self._call(self.session.redirect, n.k, d) is None:
                return
            self._sync(n)
            n.stopped = None
            if before > REDIRECT_DEPTH_MM:
                self.say(f"Redirected: withdrawn to {REDIRECT_DEPTH_MM:g} mm and re-aimed.")
        n.medial_deg, n.caudal_deg = med, cau
        self._update()

    def aim_at(self, point) -> float:
        """Aim the poised needle straight at a point; returns the distance to it (mm)."""
        n = self.current
        if n is None or n.k is not None:
            raise SessionError("only a needle poised on the skin can be aimed at a point")
        v = np.asarray(point, float) - n.entry
        dist = float(np.linalg.norm(v))
        d = v / dist
        inward = -n.normal

        def angle(toward):
            t = toward - (toward @ inward) * inward
            t /= np.linalg.norm(t)
            return float(np.degrees(np.arctan2(d @ t, d @ inward)))

        n.medial_deg = angle(np.array([1.0, 0, 0]) if n.side != "left" else np.array([-1.0, 0, 0]))
        n.caudal_deg = angle(np.array([0, 0, -1.0]))
        n.direction = d
        self._update()
        return dist

    def advance(self, mm: float = STEP_MM) -> None:
        n = self.current
        if n is None:
            return
        if n.stopped:
            self.say(f"Attempt stopped: {n.stopped} Withdraw (Down) or remove the needle (Delete).", "danger")
            return
        if n.k is None:
            k = self._call(self.session.insert_needle, n.entry, n.direction, float(mm), n.length_mm,
                           self.needle_spec.gauge_mm)
            if k is None:
                return
            n.k = k
        elif self._call(self.session.advance, n.k, float(mm)) is None:
            return
        self._sync(n)
        self._update()

    def withdraw(self, mm: float = STEP_MM) -> None:
        n = self.current
        if n is None or n.k is None:
            return
        if self._call(self.session.withdraw, n.k, float(mm)) is None:
            return
        self._sync(n)
        self._update()
        if n.stopped and not n.traversal.breaches:
            n.stopped = None
            self.say("Out of the danger structure. Redirect (A/D, W/S) before advancing again.")
            self.emit("needle", readout=self.readout())

    def piston(self) -> None:
        """A small in-and-out movement at the same spot (how twitches are provoked)."""
        n = self.current
        if n is None or n.k is None or n.stopped:
            return
        if self._call(self.session.piston, n.k, 3.0) is None:
            return
        self._sync(n)
        self._update()

    def redirect(self) -> None:
        """Withdraw to the subcutaneous layer keeping the angle (then re-aim and advance)."""
        n = self.current
        if n is None or n.k is None:
            return
        if self._call(self.session.redirect, n.k, n.direction) is None:
            return
        self._sync(n)
        n.stopped = None
        self.say(f"Withdrawn to the subcutaneous layer ({REDIRECT_DEPTH_MM:g} mm) to redirect.")
        self._update()

    def remove_needle(self) -> None:
        n = self.current
        if n is None:
            return
        if n.k is not None and not self.session.needles[n.k].removed and self.session.finished is None:
            self._call(self.session.remove, n.k)
        n.glyph.remove()
        k = self.active
        self.needles.pop(k)
        self.say(f"Needle {k + 1} removed.")
        self._activate(len(self.needles) - 1 if self.needles else None)
        self._update()

    # -- the live readout -------------------------------------------------------------
    def _update(self) -> None:
        n = self.current
        if n is None:
            self.emit("needle", readout=None)
            self.render()
            return
        tr = self.index.query(n.entry, n.direction, n.depth)
        n.depth = float(tr.depth)  # bone stops the needle (the session keeps the same depth)
        now = {b.structure for b in tr.breaches}
        new = now - n.breached
        n.breached = now  # leaving a danger structure and re-entering it is a new event
        n.traversal = tr
        for b in tr.breaches:
            if b.structure in new:
                self._danger(n, b)
        mc = tr.min_clearance
        n.glyph.update(n.entry, n.direction, n.depth)
        n.glyph.set_warning(clearance_colour(mc.shaft_mm if mc else None))
        self.emit("needle", readout=self.readout())
        self.render()

    def _danger(self, n: PlacedNeedle, b) -> None:
        what = self.label(b.structure)
        text = {
            "pneumothorax": "the needle went through the pleura into the lung: risk of pneumothorax.",
            "cord injury": "the needle entered the spinal canal: risk of spinal cord injury.",
            "vascular injury": "the needle entered a major blood vessel.",
            "nerve injury": "the needle entered a nerve: risk of nerve injury.",
            "organ puncture": "the needle punctured an organ.",
        }.get(b.harm, f"the needle entered a danger structure ({b.harm}).")
        self.emit("danger", structure=b.structure, harm=b.harm, depth=b.depth, text=text)
        if self.mode == "practice":
            n.stopped = f"{what} at {b.depth:.0f} mm - {text}"
            self.say(f"STOP: {what} at {b.depth:.0f} mm - {text} Withdraw the needle.", "danger")
        else:
            self.say(f"Danger event recorded ({b.harm}); it counts against the exam.", "danger")

    def readout(self) -> dict | None:
        n = self.current
        if n is None or n.traversal is None:
            return None
        tr = n.traversal
        mc = tr.min_clearance
        hide = not self.labels_visible
        layers = [self.label(s) for s in tr.layers]
        tip_kind = self.atlas.structures[tr.structure_at_tip].kind if tr.structure_at_tip in self.atlas.structures else None
        resistance, feel = self.session.physiology.feel(tr.structure_at_tip, tip_kind, tr.bone_contact is not None)
        return {
            "needle": self.active + 1,
            "count": len(self.needles),
            "length": n.length_mm,
            "depth": n.depth,
            "medial_deg": n.medial_deg,
            "caudal_deg": n.caudal_deg,
            "tilt_deg": n.tilt_deg,
            "tip": "(hidden)" if hide else self._tip_text(tr),
            "tip_id": tr.structure_at_tip,
            "layers": ["(hidden)"] if hide and layers else layers,
            "bone": tr.bone_contact is not None,
            "resistance": resistance,  # what the needle hand feels (grasp shown as resistance)
            "feel": feel,
            "grasped": resistance >= GRASP_RESISTANCE and tr.bone_contact is None,
            "clearance_mm": None if mc is None else mc.shaft_mm,
            "clearance_of": None if mc is None else (mc.harm if hide else self.label(mc.structure)),
            "clearance_colour": clearance_colour(mc.shaft_mm if mc else None),
            "stopped": n.stopped,
        }

    def _tip_text(self, tr: Traversal) -> str:
        if tr.bone_contact is not None:
            return f"on bone: {self.label(tr.bone_contact.structure)}"
        if tr.structure_at_tip:
            return self.label(tr.structure_at_tip)
        if tr.depth <= 0:
            return "on the skin"
        return "between structures (fascia / connective tissue)"

    # -- scenario ---------------------------------------------------------------------------
    def load_scenario(self, name_or_path, mode: str | None = None):
        """Load a scenario (library id or file) against the atlas; raises ScenarioError.

        The current needles and findings are cleared only once the new case has loaded."""
        from ..core.scenario import load_scenario

        sc = load_scenario(name_or_path, self.atlas)
        self.use_habitus(sc.patient.habitus)
        self._reset()
        self._take_scenario(sc)
        self._new_session(sc)
        self.set_mode(mode or sc.modes.default)
        self.emit("scenario", scenario=sc)
        return sc

    def _take_scenario(self, sc) -> None:
        """Make ``sc`` the window's case: its targets and the palpable loci of its findings."""
        from ..core.scenario import derive_targets, resolve_locus

        targets = derive_targets(sc, self.atlas)
        loci = []
        for f in sc.patient.findings:
            if f.kind not in ("tender_point", "taut_band"):
                continue
            p = None
            if f.locus is not None:
                try:
                    p = np.asarray(resolve_locus(f.locus, self.atlas, f.structure), float)
                except Exception:  # noqa: BLE001 - an unplaceable locus falls back to the structure
                    p = None
            loci.append((f, p))
        self.scenario, self.targets, self._loci = sc, targets, loci

    def use_habitus(self, habitus: str | None) -> bool:
        """Switch to the patient's body build (lean, average, obese): the built-in atlas's
        skin and fat for that build, in the scene and in the tissue index (kept per build,
        so switching back is instant). Atlases without builds are left as they are.
        Returns True if the atlas changed."""
        new, index = self._habitus_atlas(habitus)
        self._prepared.pop(habitus, None)
        if new is self.atlas:
            return False
        self._indexes[self.atlas.meta.get("habitus")] = self.index
        self.atlas, self.index = new, index
        self.scene.update_meshes(new, [s.id for s in new if s.kind in ("skin", "subcutaneous")])
        self.emit("atlas", atlas=new, habitus=habitus)
        self.render()
        return True

    def _habitus_atlas(self, habitus: str | None):
        """(atlas, index) for the body build ``habitus`` without switching to it (the
        current ones when the atlas has no builds or already is that build)."""
        have = self.atlas.meta.get("habitus")
        if habitus is None or have is None or habitus == have:
            return self.atlas, self.index
        cached = self._prepared.get(habitus)
        if cached is not None:
            return cached
        from ..core import store

        new = store.load_atlas(self.atlas.name, habitus=habitus)
        if new.meta.get("habitus") != habitus:
            return self.atlas, self.index
        index = self._indexes.get(habitus)
        if index is None:
            self.say(f"Preparing the {habitus} build (skin and fat) ...")
            index = TissueIndex(new)
        self._prepared[habitus] = (new, index)
        return new, index

    def new_attempt(self):
        """Start the same case again (a fresh session and recording)."""
        if self.scenario is None:
            self._reset()
            self.session = Session(self.atlas, None, index=self.index)
            self.session.listeners.append(self._on_session_event)
            self.emit("needle", readout=None)
            return None
        return self.load_scenario(self.scenario.path or self.scenario.id, mode=self.mode)

    def _reset(self) -> None:
        for n in self.needles:
            n.glyph.remove()
        self.needles, self.active = [], None
        self.session.close()
        self.overlay.clear_highlight()
        self.overlay.clear_markers("palpation")
        self.overlay.clear_markers("missed")
        self.palpated, self.marked_segments, self.quiz_answers = [], [], {}
        self.quiz_pending = None
        self.feedback.clear()
        self.report = None
        self.selected = None

    def _new_session(self, sc, seed: int | None = None) -> Session:
        """A fresh session on the case, recorded as it goes (JSON lines, flushed every record)."""
        seed = int(time.time() * 1000) % 2**31 if seed is None else int(seed)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = recordings_dir() / f"{sc.id}-{stamp}-{seed}.jsonl"
        self.session = Session(self.atlas, sc, seed=seed, index=self.index, record_to=path)
        self.session.listeners.append(self._on_session_event)
        self.recording_path = path
        return self.session

    def resume(self, recording_path) -> Session:
        """Continue an interrupted session: its recorded actions are replayed into a new
        session (same case and seed, so the same responses) that keeps recording.

        The replay is the core's (:func:`~imssim.core.session.resume_session`, the same path
        as ``imssim replay``): actions refused live are skipped, and nothing here changes
        (current session, case, recording files) unless the whole replay succeeded."""
        from ..core.recording import read_recording
        from ..core.scenario import load_scenario
        from ..core.session import resume_session

        rec = read_recording(recording_path)
        h = rec.header
        src = h.get("scenario_path") or h.get("scenario")
        if not src or not isinstance(src, str):
            raise SessionError(f"{recording_path}: the recording names no scenario")
        sc = load_scenario(src, self.atlas)
        atlas, index = self._habitus_atlas(sc.patient.habitus)
        if atlas is not self.atlas:
            sc = load_scenario(src, atlas)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = recordings_dir() / f"{sc.id}-{stamp}-{int(h.get('seed', 0))}-resumed.jsonl"
        k = 1
        while path.exists():
            k += 1
            path = path.with_name(f"{sc.id}-{stamp}-{int(h.get('seed', 0))}-resumed-{k}.jsonl")
        session = resume_session(rec, atlas, sc, path, index=index)
        # it worked: now the window takes the resumed case and session
        self.use_habitus(sc.patient.habitus)
        self._reset()
        self._take_scenario(sc)
        self.session = session
        self.recording_path = session.recorder.path if session.recorder is not None else path
        self.session.listeners.append(self._on_session_event)
        self.set_mode(sc.modes.default)
        self.emit("scenario", scenario=sc)
        for k, trk in enumerate(self.session.needles):
            if trk.removed:
                continue
            p = trk.poses[-1]
            hit = self.index.snap_to_skin(np.asarray(p.entry) - np.asarray(p.direction) * 50.0, p.direction)
            normal = hit.normal if hit is not None else -np.asarray(p.direction)
            n = PlacedNeedle(np.asarray(p.entry), np.asarray(p.direction), normal,
                             "left" if p.entry[0] > 0 else "right", NeedleGlyph(self.plotter, trk.needle.length_mm),
                             trk.needle.length_mm, k=k, depth=p.depth)
            self.needles.append(n)
        self._activate(len(self.needles) - 1 if self.needles else None)
        # what else the trainee did: palpation markers, the segment call, quiz answers
        items = self.quiz
        for a in rec.actions:
            if a.get("name") == "palpate" and a.get("point") is not None and a.get("normal") is not None:
                self.palpate_at(a["point"], a["normal"], record=False)
            elif a.get("name") == "answer":
                k = next((j for j, q in enumerate(items) if str(q.id or j) == str(a.get("item"))), None)
                if k is None and str(a.get("item")).isdigit():
                    k = int(a["item"])
                if k is not None and k < len(items):
                    ans = a.get("answer")
                    self.answer_quiz(k, ans if items[k].type == "multiple_choice" else (ans or None), record=False)
        self.marked_segments = list(self.session.marked_segments)
        self.emit("segments", segments=list(self.marked_segments))
        self.say(f"Resumed: {len(rec.actions)} recorded actions replayed, {len(self.needles)} needle(s) in place.",
                 "good")
        self._update()
        return self.session

    # -- the patient's responses ------------------------------------------------------------
    EVENT_LEVEL = {"grasp": "info", "painless": "info", "bone_contact": "warn", "nerve": "danger",
                   "pleura": "danger", "cough": "danger", "breathless": "danger", "breach": "danger",
                   "twitch": "good", "release": "good", "palpation": "info", "quiz_answer": "info"}

    def _on_session_event(self, e) -> None:
        if e.kind in ("palpation", "quiz_answer"):
            return  # said by the handlers that asked for them
        text = e.message
        if not self.labels_visible and e.structure:
            name = self.label(e.structure)
            text = text.replace(f"the {name}", "the muscle").replace(name, "the structure")
        if e.kind == "twitch":
            self.emit("twitch", structure=e.structure, needle=e.needle, amplitude=float(e.data.get("amplitude", 0.5)),
                      duration=float(e.data.get("duration_s", 0.3)), text=text)
        elif e.kind == "release":
            self.emit("release", structure=e.structure, needle=e.needle, text=text,
                      delay=max(0.0, e.t - self.session.now()))
            return  # said when the twitch has settled
        self.say(text, self.EVENT_LEVEL.get(e.kind, "info"))

    def pulse_frame(self, structure: str | None, amount: float, needle: int | None = None, jolt_mm: float = 0.0) -> None:
        """One frame of a twitch (amount > 0: contraction) or release (< 0: lengthening) and
        the needle's jolt; the window calls it from a timer, a script at any moment."""
        if structure:
            self.overlay.set_contraction(structure, amount)
        n = next((x for x in self.needles if x.k == needle), None) if needle is not None else None
        if n is not None:
            n.glyph.update(n.entry, n.direction, n.depth, jolt=jolt_mm)
        self.render()

    def finish(self):
        """End the attempt: the scoring engine's report (also written to the recording)."""
        if self.report is not None:
            return self.report
        self.report = self.session.finish()
        self.show_missed()
        self.emit("report", report=self.report)
        return self.report

    def missed_targets(self) -> list:
        if self.report is None:
            return []
        reached: set = set()
        try:
            det = self.report.metric("coverage").details or []
            for d in det:
                reached |= set(d.get("paraspinal_reached", [])) | set(d.get("peripheral_reached", []))
        except KeyError:
            pass
        return [t for t in self.targets if t.structure not in reached]

    def show_missed(self) -> None:
        """Mark the targets that no needle reached, on the body (orange, labelled: targets
        close together share one label, so labels do not cover each other)."""
        self.overlay.clear_markers("missed")
        missed = self.missed_targets()
        self.overlay.highlight([t.structure for t in missed], colour=(1.0, 0.45, 0.0), opacity=1.0)
        points = [self.atlas.structures[t.structure].centroid for t in missed]
        for p in points:
            self.overlay.add_marker("missed", p, colour=(1.0, 0.45, 0.0), radius=5.0)
        self.missed_labels = group_labels(points, [t.name for t in missed])
        for anchor, text in self.missed_labels:
            self.overlay.add_label("missed", anchor, text)
        self.render()

    def palpate_ray(self, origin, direction) -> list[dict]:
        hit = self.index.snap_to_skin(origin, direction)
        if hit is None:
            self.say("Palpate on the skin: that click missed the body.", "warn")
            return []
        return self.palpate_at(hit.point, hit.normal)

    def palpate_at(self, point, normal_out, record: bool = True) -> list[dict]:
        """Press on the skin at ``point``: the scenario's tender points and taut bands under
        the fingers (within a locus radius, or the finding's muscle lying under the skin).
        ``record=False`` only shows it again (a resumed session's palpations)."""
        if self.scenario is None:
            self.say("Load a scenario to palpate a patient (Ctrl+O).", "warn")
            return []
        point = np.asarray(point, float)
        inward = -np.asarray(normal_out, float) / np.linalg.norm(normal_out)
        tr = self.index.query(point, inward, 70.0)
        under = [iv.structure for iv in tr.intervals]
        found = []
        for f, p in self._loci:
            if p is not None:
                v = p - point
                lateral = np.linalg.norm(v - (v @ inward) * inward)
                hit = lateral <= (f.locus.radius_mm + 10.0) and -5.0 <= v @ inward <= 90.0
            else:
                hit = f.structure is not None and f.structure in under
            if hit:
                found.append({"kind": f.kind, "text": f.description, "structure": f.structure})
        muscle = next((sid for sid in under if self.atlas.structures[sid].kind == "muscle"), None)
        if muscle is not None and (not record or self.session.finished is None):
            if record:  # recorded (with where on the skin); the physiology says how it feels
                pf = self._call(self.session.palpate, muscle, None, point, normal_out)
            else:
                pf = self.session.feel(muscle)
            if pf is not None and pf.tender and not found:
                found.append({"kind": "taut_band" if pf.taut_band else "tender_point", "structure": muscle,
                              "text": "Tender, with a taut, ropy band; the patient flinches."
                              + (f" ({self.label(muscle)})" if self.labels_visible else "")})
        colour = (1.0, 0.55, 0.0) if found else (0.55, 0.6, 0.65)
        self.overlay.add_marker("palpation", point, colour=colour, radius=4.0 if found else 2.5)
        if found:
            for r in found:
                r["point"] = point
                self.palpated.append(r)
                what = {"tender_point": "Tender point", "taut_band": "Taut band"}.get(r["kind"], "Finding")
                if record:
                    self.say(f"{what}: {r['text']}", "good")
        else:
            self.palpated.append({"kind": "none", "text": "", "structure": None, "point": point})
            if record:
                self.say("Nothing remarkable under your fingers here.")
        self.emit("palpation", found=found, point=point)
        if record:
            self.render()
        return found

    def mark_segment(self, segment: str, on: bool = True) -> None:
        """The trainee's call on the involved segment(s) (recorded for scoring)."""
        from ..core.atlas import segment_index

        segment_index(segment)
        if on and segment not in self.marked_segments:
            self.marked_segments.append(segment)
        if not on and segment in self.marked_segments:
            self.marked_segments.remove(segment)
        if self.scenario is not None and self.session.finished is None:
            self._call(self.session.mark_segments, list(self.marked_segments))  # recorded, reported
        self.emit("segments", segments=list(self.marked_segments))

    def show_targets(self, on: bool) -> None:
        """Colour the scenario's targets (practice mode, when the scenario allows it)."""
        self.targets_visible = bool(on and self.targets and self.settings.targets_shown)
        self._apply_targets()
        self.render()

    def _apply_targets(self) -> None:
        ids = [t.structure for t in self.targets]
        self.overlay.clear_highlight(ids)
        if self.targets_visible:
            self.overlay.highlight(ids, colour=(0.15, 0.8, 0.35), opacity=1.0)

    # -- quiz ----------------------------------------------------------------------------
    @property
    def quiz(self) -> list:
        return list(self.scenario.quiz) if self.scenario is not None else []

    def ask_quiz(self, i: int) -> None:
        """Show question ``i``; a pick-structure question waits for a click on the body."""
        q = self.quiz[i]
        self.quiz_pending = i if q.type == "pick_structure" else None
        if self.quiz_pending is not None:
            self.set_tool("look")
        self.emit("quiz_question", index=i)

    def answer_quiz(self, i: int, answer, record: bool = True) -> dict:
        """Answer question ``i``: choice index/indices, or a structure id (pick questions).
        ``record=False`` only shows a resumed session's answer again."""
        q = self.quiz[i]
        if q.type == "multiple_choice":
            given = sorted({int(a) for a in (answer if isinstance(answer, (list, tuple, set)) else [answer])})
            correct = given == sorted(q.answers)
            shown = ", ".join(q.choices[g] for g in given)
        else:
            given = answer
            correct = answer is not None and answer in q.answer
            shown = "nothing" if answer is None else self.label(answer)
            self.quiz_pending = None
        if record and self.session.finished is None:
            self._call(self.session.answer_quiz, i, given if q.type == "multiple_choice" else (answer or ""))
        r = {"index": i, "answer": given, "shown": shown, "correct": correct, "explanation": q.explanation}
        self.quiz_answers[i] = r
        if record:
            self.say(("Right: " if correct else f"Not quite ({shown}): ") + q.explanation, "good" if correct else "warn")
        self.emit("quiz_answer", **r)
        return r

    # -- keyboard -------------------------------------------------------------------------
    def shortcuts(self) -> list[tuple[str, str, Callable[[], None]]]:
        """(key, description, action) for everything frequent; the window binds and lists them."""
        out = [
            ("N", "Needle tool: click the skin to insert a needle", lambda: self.set_tool("needle")),
            ("Esc", "Look tool: click names a structure, drag rotates", lambda: self.set_tool("look")),
            ("P", "Palpate tool: click the skin to feel for tender points", lambda: self.set_tool("palpate")),
            ("Up", "Advance the needle 1 mm (also the mouse wheel)", lambda: self.advance(STEP_MM)),
            ("Down", "Withdraw the needle 1 mm", lambda: self.withdraw(STEP_MM)),
            ("Shift+Up", "Advance 5 mm", lambda: self.advance(5.0)),
            ("Shift+Down", "Withdraw 5 mm", lambda: self.withdraw(5.0)),
            ("A", "Aim medially (toward the midline)", lambda: self.aim(d_medial=AIM_STEP_DEG)),
            ("D", "Aim laterally", lambda: self.aim(d_medial=-AIM_STEP_DEG)),
            ("W", "Aim cranially (toward the head)", lambda: self.aim(d_caudal=-AIM_STEP_DEG)),
            ("S", "Aim caudally (toward the feet)", lambda: self.aim(d_caudal=AIM_STEP_DEG)),
            ("R", "Redirect: withdraw to the subcutaneous layer", self.redirect),
            ("T", "Piston: a small in-and-out movement (provokes a twitch)", self.piston),
            ("Tab", "Select the next needle", self.select_next_needle),
            ("Delete", "Remove the selected needle", self.remove_needle),
        ]
        for name, p in PRESETS.items():
            out.append((p.key, f"View: {p.title}", lambda name=name: self.view(name)))
        return out

    def on_key(self, key: str) -> bool:
        """Run the shortcut bound to ``key`` (e.g. "Up", "Shift+Up", "A", "5"); True if bound."""
        for k, _, f in self.shortcuts():
            if k.lower() == key.lower():
                f()
                return True
        return False

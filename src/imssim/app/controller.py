"""The window's handlers as plain methods over the core's session (no Qt, no widgets).

The :class:`~imssim.core.training.session.Session` owns the attempt (needles, palpations, segment
call, quiz answers, mode, phase, one trace per needle move). The controller turns the
view's input into session calls and keeps only view state: the needle glyphs and aim
angles, the tool, the selection, hover text. It tells listeners what changed with the
dataclasses of :mod:`imssim.app.events`. Tests drive it with fake events (display
coordinates, wheel steps, key names).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..core.training.case import BodyBuilds, Case, explore, open_case
from ..core.engines.needle import REDIRECT_DEPTH_MM, Needle, NeedleError, direction_from_angles
from ..core.engines.physiology import GRASP_RESISTANCE
from ..core.training.recording import new_recording_path
from ..core.training.session import MODES, Session, SessionError, resume_case
from ..core.engines.wording import danger_text
from ..render.overlay import NeedleGlyph, Overlay, clearance_colour
from ..render.scene import AtlasScene
from ..render.views import PRESETS, apply_preset, in_view, screen_ray
from . import events as ev

TOOLS = ("look", "needle", "palpate", "point")  # point: place a tender point (Author mode)
#: targets closer than this share one "missed" label on the body
LABEL_GROUP_MM = 120.0
AIM_STEP_DEG = 2.0
MAX_AIM_DEG = 60.0
STEP_MM = 1.0
#: Kinds a hover/click may name even when translucent.
NAMEABLE_MIN_OPACITY = 0.3
FINISHED_TEXT = "This attempt is finished and scored: start a new attempt (File > New attempt)."
#: a region of the case's first target -> the preset view that frames it
REGION_VIEW = {"lumbar": "lumbar", "thoracic": "thorax", "cervical": "neck", "neck": "neck", "gluteal": "buttock",
               "hip": "buttock", "pelvis": "buttock", "thigh": "leg", "leg": "leg", "lower_limb": "leg"}


@dataclass
class NeedleView:
    """View state of one needle: its glyph and aim. Poised on the skin (``k`` None) it has
    its own entry and direction; once in, the session's track is the truth."""

    session: Session
    glyph: NeedleGlyph
    normal: np.ndarray  # outward skin normal at the entry
    side: str
    length_mm: float
    poised_entry: np.ndarray
    poised_direction: np.ndarray
    k: int | None = None  # the session's needle number once the skin is punctured
    medial_deg: float = 0.0
    caudal_deg: float = 0.0

    def _pose(self):
        return None if self.k is None else self.session.needles[self.k].poses[-1]

    @property
    def entry(self) -> np.ndarray:
        p = self._pose()
        return self.poised_entry if p is None else np.asarray(p.entry, float)

    @property
    def direction(self) -> np.ndarray:
        p = self._pose()
        return self.poised_direction if p is None else np.asarray(p.direction, float)

    @property
    def depth(self) -> float:
        p = self._pose()
        return 0.0 if p is None else float(p.depth)

    @property
    def traversal(self):
        return None if self.k is None else self.session.traces.get(self.k)

    @property
    def stopped(self) -> str | None:
        return None if self.k is None else self.session.stopped.get(self.k)

    @property
    def breached(self) -> set:
        return set() if self.k is None else set(self.session.breached.get(self.k, set()))

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


class Controller:
    """Handlers for the trainee's window. ``plotter`` is any pyvista plotter (Qt or off-screen).

    ``record``: write each attempt's recording (off for ``--screenshot``)."""

    def __init__(self, atlas, plotter, index=None, mode: str = "practice", record: bool = True,
                 bodies: BodyBuilds | None = None):
        self.bodies = bodies if bodies is not None else BodyBuilds(atlas, index)
        self.case: Case = explore(self.bodies)
        self.plotter = plotter
        self.record = record
        self.scene = AtlasScene.build(plotter, self.case.atlas)
        self.overlay = Overlay(self.scene)
        self.needles: list[NeedleView] = []
        self.missed_labels: list[tuple[np.ndarray, str]] = []  # (anchor, text) after finishing
        self.active: int | None = None
        self.needle_spec = Needle(50.0, 0.25)
        self.tool = "look"
        self.listeners: list[Callable[[object], None]] = []
        self.feedback: list[tuple[float, str, str]] = []  # (t, level, text)
        self.hover_text: str | None = None
        self.selected: str | None = None
        self.targets_visible = False
        self.quiz_pending: int | None = None  # pick-structure question waiting for a click
        self.author = None  # the Author mode's desk (app.authoring.AuthorDesk) while the window has one
        self.session = self._make_session(mode)
        self._after_mode()
        apply_preset(plotter, self.atlas, "posterior")

    # -- what the view reads (the case and the session own it) ----------------------------
    @property
    def atlas(self):
        return self.case.atlas

    @property
    def index(self):
        return self.case.index

    @property
    def scenario(self):
        return self.case.scenario

    @property
    def targets(self) -> list:
        return self.session.targets

    @property
    def mode(self) -> str:
        return self.session.mode

    @property
    def report(self):
        return self.session.finished

    @property
    def recording_path(self):
        r = self.session.recorder
        return None if r is None else r.path

    @property
    def marked_segments(self) -> list[str]:
        return list(self.session.marked_segments)

    @property
    def palpated(self) -> list[dict]:
        """What palpation found, one entry per finding (``kind`` "none" where nothing was)."""
        out = []
        for p in self.session.palpations:
            out += [{**f, "point": p.point} for f in p.found] or [
                {"kind": "none", "text": "", "structure": None, "point": p.point}]
        return out

    @property
    def quiz_answers(self) -> dict[int, dict]:
        """The session's graded answers by question index (the panel shows these verdicts)."""
        return {i: {"index": r.index, "answer": r.answer, "shown": r.shown, "correct": r.correct,
                    "explanation": r.explanation} for i, r in self.session.quiz_results.items()}

    @property
    def settings(self):
        """The case's settings for the mode; quiz and exam never show names, hints or targets."""
        s = self.session.settings
        if self.mode != "practice":
            return s.model_copy(update={"labels": False, "hints": False, "targets_shown": False})
        return s

    @property
    def labels_visible(self) -> bool:
        return bool(self.settings.labels)

    @property
    def hints_visible(self) -> bool:
        return bool(self.settings.hints)

    @property
    def finished(self) -> bool:
        return self.session.phase == "finished"

    @property
    def exam_running(self) -> bool:
        """An exam at a case is under way: leaving it (another mode, case or attempt, closing
        the window) ends and scores it."""
        return self.mode == "exam" and self.scenario is not None and not self.finished

    @property
    def patient_state(self):
        """The course's patient this attempt started with (None: not a course session)."""
        from ..core.training.course import PatientState

        ps = self.session.patient_state
        return ps if isinstance(ps, PatientState) else None

    # -- plumbing --------------------------------------------------------------------
    def clock(self) -> float:
        return round(self.session.now(), 3)

    def emit(self, event) -> None:
        for f in list(self.listeners):
            f(event)

    def say(self, text: str, level: str = "info") -> None:
        if level == "warn" and self.feedback and self.feedback[-1][1:] == (level, text):
            return  # the same refusal again (e.g. a wheel burst) is said once
        self.feedback.append((self.clock(), level, text))
        self.emit(ev.Feedback(text, level))

    def render(self) -> None:
        self.plotter.render()

    def label(self, sid: str | None) -> str:
        if sid is None:
            return "-"
        s = self.atlas.structures.get(sid)
        return s.name if s else sid

    def _make_session(self, mode: str, seed: int | None = None, patient_state=None) -> Session:
        """A fresh session on the current case (recorded as it goes when there is a case);
        ``patient_state``: a course's patient as the earlier sessions left them."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; modes are {', '.join(MODES)}")
        sc = self.case.scenario
        path = None
        seed = int(time.time() * 1000) % 2**31 if seed is None else int(seed)
        if sc is not None and self.record:
            path = new_recording_path(sc.id, seed)
        s = Session.from_case(self.case, seed=seed, record_to=path, mode=mode, stop_on_danger=True,
                              patient_state=patient_state)
        s.listeners.append(self._on_session_event)
        return s

    def _refused_finished(self) -> bool:
        if self.finished:
            self.say(FINISHED_TEXT, "warn")
            return True
        return False

    def _call(self, fn, *args):
        """A session call; what the session refuses is said, never raised at the trainee."""
        if self._refused_finished():
            return None
        try:
            return fn(*args)
        except SessionError as e:
            self.say(str(e), "warn")
            return None

    # -- modes and tools ---------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        """Change the mode. Leaving an exam ends the attempt (scored as it stands, recorded);
        entering an exam after the attempt began starts a clean exam attempt."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; modes are {', '.join(MODES)}")
        if mode == self.mode:
            return
        s = self.session
        began = bool(s.needles or s.palpations or s.marked_segments or s.quiz_results)
        if mode == "exam" and self.scenario is not None and not self.finished and began:
            self.say("Exam mode starts a new attempt: the practice attempt is closed.", "warn")
            self.new_attempt(mode="exam")
            return
        try:
            ended = s.set_mode(mode)
        except SessionError as e:
            self.say(str(e), "warn")
            return
        self._after_mode()
        if ended:
            self.say(f"The exam ended when the mode was changed to {mode}; it is scored as it stood.", "warn")
            self._finished()

    def _after_mode(self) -> None:
        if not self.labels_visible:
            self.hover_text = None
            self.overlay.clear_highlight()
            self.selected = None
        if not self.settings.targets_shown:
            self.targets_visible = False
        self._apply_targets()
        self.emit(ev.ModeChanged(self.mode))
        if self.needles:
            self.emit(ev.NeedleChanged(self.readout()))

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        self.tool = tool
        self.emit(ev.ToolChanged(tool))

    def set_needle_length(self, length_mm: float) -> None:
        self.needle_spec = Needle(float(length_mm), self.needle_spec.gauge_mm)
        self.emit(ev.NeedleSpecChanged(length_mm))

    # -- views and layers ---------------------------------------------------------------
    def view(self, name: str) -> None:
        apply_preset(self.plotter, self.atlas, name)
        self.emit(ev.ViewChanged(name))
        self.render()

    def case_view(self) -> str:
        """The preset view that frames the case's region (its first target's), else posterior."""
        for t in self.targets:
            s = self.atlas.structures.get(t.structure)
            v = REGION_VIEW.get(getattr(s, "region", None) or "")
            if v is not None:
                return v
        return "posterior"

    def frame_case(self) -> None:
        if self.author is not None and self.author.active and self.author.scenario is not None:
            self.author.frame()  # Author mode: the region of the case being written
            return
        self.view(self.case_view())

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
        for sid in self.scene.actors:
            if self.atlas.structures[sid].is_danger:
                self.scene.set_visible(sid, visible)
        self.render()

    def select_structure(self, sid: str | None, focus: bool = False) -> None:
        """Highlight one structure (from the list or a click); ``focus`` aims the camera at it.
        Names are hidden in quiz and exam mode, so nothing is selected there."""
        if sid is not None and not self.labels_visible:
            self.say("Structures cannot be looked up in quiz and exam mode.", "warn")
            return
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
        self.emit(ev.Selected(sid))
        self.render()

    # -- picking -------------------------------------------------------------------------
    def _visible(self, sid: str) -> bool:
        a = self.scene.actors.get(sid)
        # (shown: also while the camera moves and the simplified meshes stand in, render/lod.py)
        return bool(self.scene.shown(sid) and a.GetProperty().GetOpacity() >= NAMEABLE_MIN_OPACITY)

    def pick(self, x: float, y: float) -> str | None:
        """The first visible, not see-through structure under display pixel (x, y)."""
        o, d = screen_ray(self.plotter, x, y)
        tr = self.index.query(o, d, 6000.0, stop_at_bone=False)
        for iv in sorted(tr.intervals, key=lambda iv: iv.entry_depth):
            # what is drawn: a mesh (the fill grid's naming of the gaps has no surface there)
            if not iv.filled and self._visible(iv.structure):
                return iv.structure
        return None

    def on_hover(self, x: float, y: float) -> str | None:
        """Name under the pointer (None in quiz and exam mode, where names are hidden)."""
        if not self.labels_visible:
            self.hover_text = None
        else:
            sid = self.pick(x, y)
            self.hover_text = self.label(sid) if sid else None
        self.emit(ev.Hover(self.hover_text))
        return self.hover_text

    def on_click(self, x: float, y: float) -> None:
        """A click (not a drag) in the 3D view at display pixel (x, y)."""
        if self.tool == "point":
            if self.author is not None and self.author.active:
                o, d = screen_ray(self.plotter, x, y)
                self.author.place_ray(o, d)
            else:
                self.say("Place points in Author mode (Mode: author).", "warn")
        elif self.tool == "needle":
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
            self.emit(ev.Clicked(sid if self.labels_visible else None))

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
    def current(self) -> NeedleView | None:
        return None if self.active is None else self.needles[self.active]

    def _need_needle(self, what: str) -> NeedleView | None:
        n = self.current
        if n is None:
            self.say(f"No needle to {what}: press N and click the skin to place one.", "warn")
        return n

    def place_needle_ray(self, origin, direction) -> NeedleView | None:
        if self._refused_finished():
            return None
        hit = self.index.snap_to_skin(origin, direction)
        if hit is None:
            self.say("That click missed the body: click on the skin to set the entry point.", "warn")
            return None
        if not hit.on_skin:
            self.say("This atlas has no skin surface; the needle enters at the first surface hit.", "warn")
        return self.place_needle_at(hit.point, hit.normal)

    def place_needle_at(self, entry, normal_out, medial_deg: float = 0.0, caudal_deg: float = 0.0):
        """Poise a needle on the skin (not yet in): aim freely, then advance to puncture."""
        if self._refused_finished():
            return None
        entry = np.asarray(entry, float)
        normal = np.asarray(normal_out, float) / np.linalg.norm(normal_out)
        side = "midline" if abs(entry[0]) < 1.0 else ("left" if entry[0] > 0 else "right")
        d = self._direction(entry, normal, side, medial_deg, caudal_deg)
        glyph = NeedleGlyph(self.plotter, self.needle_spec.length_mm)
        n = NeedleView(self.session, glyph, normal, side, self.needle_spec.length_mm, entry, d,
                       medial_deg=medial_deg, caudal_deg=caudal_deg)
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
            self.say("No needles placed yet: press N and click the skin.", "warn")
            return
        self._activate(0 if self.active is None else (self.active + 1) % len(self.needles))
        self._update()

    def aim(self, d_medial: float = 0.0, d_caudal: float = 0.0) -> None:
        """Change the angle. Once through the skin this is a redirection: the needle is first
        withdrawn to the subcutaneous layer (as a practitioner must)."""
        n = self._need_needle("aim")
        if n is None or self._refused_finished():
            return
        med = float(np.clip(n.medial_deg + d_medial, -MAX_AIM_DEG, MAX_AIM_DEG))
        cau = float(np.clip(n.caudal_deg + d_caudal, -MAX_AIM_DEG, MAX_AIM_DEG))
        if not (d_medial or d_caudal):
            return
        if (med, cau) == (n.medial_deg, n.caudal_deg):
            self.say(f"The needle is already at the steepest angle ({MAX_AIM_DEG:g} degrees).", "warn")
            return
        try:
            d = self._direction(n.entry, n.normal, n.side, med, cau)
        except NeedleError as e:
            self.say(str(e), "warn")
            return
        if n.k is None:
            n.poised_direction = d
        else:
            before = n.depth
            if self._call(self.session.redirect, n.k, d) is None:
                return
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
        n.poised_direction = d
        self._update()
        return dist

    def advance(self, mm: float = STEP_MM) -> None:
        n = self._need_needle("advance")
        if n is None or self._refused_finished():
            return
        if n.stopped:
            self.say(f"Attempt stopped: {n.stopped} Withdraw (Down) or remove the needle (Delete).", "danger")
            return
        if n.k is None:
            k = self._call(self.session.insert_needle, n.poised_entry, n.poised_direction, float(mm), n.length_mm,
                           self.needle_spec.gauge_mm)
            if k is None:
                return
            n.k = k
        elif self._call(self.session.advance, n.k, float(mm)) is None:
            return
        self._moved(n)

    def withdraw(self, mm: float = STEP_MM) -> None:
        n = self._need_needle("withdraw")
        if n is None or self._refused_finished():
            return
        if n.k is None:
            self.say("The needle is only resting on the skin: there is nothing to withdraw.", "warn")
            return
        was = n.stopped
        if self._call(self.session.withdraw, n.k, float(mm)) is None:
            return
        self._moved(n)
        if was and not n.stopped:
            self.say("Out of the danger structure. Redirect (A/D, W/S) before advancing again.")
            self.emit(ev.NeedleChanged(self.readout()))

    def piston(self) -> None:
        """A small in-and-out movement at the same spot (how twitches are provoked)."""
        n = self._need_needle("piston")
        if n is None or self._refused_finished():
            return
        if n.k is None:
            self.say("Advance the needle through the skin before pistoning (T).", "warn")
            return
        if n.stopped:
            self.say(f"Attempt stopped: {n.stopped} Withdraw (Down) or remove the needle (Delete).", "danger")
            return
        if self._call(self.session.piston, n.k, 3.0) is None:
            return
        tr = n.traversal
        tip = tr.structure_at_tip if tr is not None else None
        if tip is None or self.atlas.structures[tip].kind != "muscle":
            self.say("Pistoned between structures: a twitch comes only from inside a muscle's taut band.",
                     "warn")
        self._moved(n)

    def redirect(self) -> None:
        """Withdraw to the subcutaneous layer keeping the angle (then re-aim and advance)."""
        n = self._need_needle("redirect")
        if n is None or self._refused_finished():
            return
        if n.k is None:
            self.say("The needle is not in yet: aim it with A/D and W/S, then advance.", "warn")
            return
        if self._call(self.session.redirect, n.k, n.direction) is None:
            return
        self.say(f"Withdrawn to the subcutaneous layer ({REDIRECT_DEPTH_MM:g} mm) to redirect.")
        self._moved(n)

    def remove_needle(self) -> None:
        n = self._need_needle("remove")
        if n is None or self._refused_finished():
            return
        if n.k is not None and not self.session.needles[n.k].removed:
            if self._call(self.session.remove, n.k) is None:
                return
        n.glyph.remove()
        k = self.active
        self.needles.pop(k)
        self.say(f"Needle {k + 1} removed.")
        self._activate(len(self.needles) - 1 if self.needles else None)
        self._update()

    # -- the live readout (the session's trace of the last move) -----------------------
    def _moved(self, n: NeedleView) -> None:
        """After a needle move: say what the move entered (the session traced it once)."""
        for sid, harm, depth in list(self.session.entered):
            self._danger(n, sid, harm, depth)
        self._update()

    def _update(self) -> None:
        n = self.current
        if n is None:
            self.emit(ev.NeedleChanged(None))
            self.render()
            return
        tr = n.traversal
        mc = tr.min_clearance if tr is not None else None
        n.glyph.update(n.entry, n.direction, n.depth)
        n.glyph.set_warning(clearance_colour(mc.shaft_mm if mc else None))
        self.emit(ev.NeedleChanged(self.readout()))
        self.render()

    def _danger(self, n: NeedleView, sid: str, harm: str, depth: float) -> None:
        text = danger_text(harm)
        self.emit(ev.Danger(sid, harm, depth, text))
        if n.stopped:
            what = self.label(sid) if self.labels_visible else "a danger structure"
            self.say(f"STOP: {what} at {depth:.0f} mm - {text} Withdraw the needle.", "danger")
        else:
            self.say(f"Danger event recorded ({harm}); it counts against the score.", "danger")

    def readout(self) -> dict | None:
        n = self.current
        if n is None:
            return None
        tr = n.traversal
        hide = not self.labels_visible
        if tr is None:  # poised on the skin: nothing traced yet
            tip_id, layers, bone, mc, tip_text = None, [], None, None, "on the skin"
        else:
            tip_id, bone, mc = tr.structure_at_tip, tr.bone_contact, tr.min_clearance
            layers = [self.label(s) for s in tr.layers]
            tip_text = self._tip_text(tr)
        tip_kind = self.atlas.structures[tip_id].kind if tip_id in self.atlas.structures else None
        resistance, feel = self.session.physiology.feel(tip_id, tip_kind, bone is not None)
        return {
            "needle": self.active + 1,
            "count": len(self.needles),
            "length": n.length_mm,
            "depth": n.depth,
            "medial_deg": n.medial_deg,
            "caudal_deg": n.caudal_deg,
            "tilt_deg": n.tilt_deg,
            "tip": "(hidden)" if hide else tip_text,
            "tip_id": tip_id,
            "layers": ["(hidden)"] if hide and layers else layers,
            "bone": bone is not None,
            "resistance": resistance,  # what the needle hand feels (grasp shown as resistance)
            "feel": feel,
            "grasped": resistance >= GRASP_RESISTANCE and bone is None,
            "clearance_mm": None if mc is None else mc.shaft_mm,
            "clearance_of": None if mc is None else (mc.harm if hide else self.label(mc.structure)),
            "clearance_colour": clearance_colour(mc.shaft_mm if mc else None),
            "stopped": n.stopped,
        }

    def _tip_text(self, tr) -> str:
        if tr.bone_contact is not None:
            return f"on bone: {self.label(tr.bone_contact.structure)}"
        if tr.structure_at_tip:
            return self.label(tr.structure_at_tip)
        if tr.depth <= 0:
            return "on the skin"
        return "between structures (fascia / connective tissue)"

    # -- cases and attempts --------------------------------------------------------------------
    def load_scenario(self, name_or_path, mode: str | None = None, patient_state=None):
        """Open a case (library id or file) the one way (:func:`~imssim.core.training.case.open_case`:
        the patient's body build and its index); raises ScenarioError. The current attempt
        is replaced only once the new case has opened (a running exam ends, scored)."""
        case = self.open_case(name_or_path)
        self.start_case(case, mode, patient_state)
        return case.scenario

    def open_case(self, name_or_path) -> Case:
        """The case opened (scenario, body build, index), without starting it: nothing changes."""
        return open_case(name_or_path, self.bodies)

    def start_case(self, case: Case, mode: str | None = None, patient_state=None) -> None:
        """Start an attempt at an opened case (``patient_state``: a course session's patient)."""
        self._take_case(case, mode or case.scenario.modes.default, patient_state=patient_state,
                        leaving="another case was opened")

    def end_exam(self, reason: str) -> bool:
        """End a running exam (scored as it stands; the recording and the report say why).
        Returns True when there was one."""
        if not self.exam_running:
            return False
        self.session.finish(ended_by=reason)
        self._finished()
        return True

    def _take_case(self, case: Case, mode: str, session: Session | None = None, patient_state=None,
                   leaving: str = "a new attempt was started") -> None:
        self.end_exam(leaving)  # an exam is never dropped unscored
        old = self.case.atlas
        self._clear_view()
        self.session.close()
        self.case = case
        if case.atlas is not old:  # another body build: the scene shows its skin and fat
            self.scene.update_meshes(case.atlas, [s.id for s in case.atlas if s.kind in ("skin", "subcutaneous")])
        self.session = session if session is not None else self._make_session(mode, patient_state=patient_state)
        if session is not None:
            session.listeners.append(self._on_session_event)
        if case.scenario is not None:
            self.emit(ev.CaseOpened(case.scenario))
        self.emit(ev.AttemptStarted(self.mode, resumed=session is not None))
        self._after_mode()
        self._update()

    def explore(self, habitus: str | None = None) -> None:
        """No case: the body (of ``habitus``'s build) to look at, e.g. while a case is authored."""
        self._take_case(explore(self.bodies, habitus), "practice", leaving="the case was closed")

    def new_attempt(self, mode: str | None = None):
        """Start the same case again: a fresh session and recording, nothing carried over (a
        course session starts again with the same patient)."""
        self._take_case(self.case, mode or self.mode, patient_state=self.session.patient_state)
        return self.scenario

    def _clear_view(self) -> None:
        for n in self.needles:
            n.glyph.remove()
        self.needles, self.active = [], None
        self.overlay.clear_highlight()
        self.overlay.clear_markers("palpation")
        self.overlay.clear_markers("missed")
        self.missed_labels = []
        self.quiz_pending = None
        self.feedback.clear()
        self.selected = None
        self.targets_visible = False

    def resume(self, recording_path) -> Session:
        """Continue an interrupted session (the core's :func:`~imssim.core.training.session.resume_case`:
        the same replay as ``imssim replay``); nothing here changes unless it succeeded."""
        case, session = resume_case(recording_path, self.bodies)
        self._take_case(case, session.mode, session=session, leaving="an interrupted session was resumed")
        for k, trk in enumerate(session.needles):
            if trk.removed:
                continue
            p = trk.poses[-1]
            hit = self.index.snap_to_skin(np.asarray(p.entry) - np.asarray(p.direction) * 50.0, p.direction)
            normal = hit.normal if hit is not None else -np.asarray(p.direction)
            self.needles.append(NeedleView(session, NeedleGlyph(self.plotter, trk.needle.length_mm), normal,
                                           "left" if p.entry[0] > 0 else "right", trk.needle.length_mm,
                                           np.asarray(p.entry), np.asarray(p.direction), k=k))
        self._activate(len(self.needles) - 1 if self.needles else None)
        for pr in session.palpations:
            self._palpation_marker(pr)
        self.emit(ev.SegmentsChanged(tuple(session.marked_segments)))
        for i in session.quiz_results:
            self.emit(ev.QuizChanged(i))
        skipped = f" ({len(session.skipped)} refused live, skipped)" if session.skipped else ""
        self.say(f"Resumed: the recorded actions were replayed{skipped}; {len(self.needles)} needle(s) in place.",
                 "good")
        self._update()
        return session

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
            self.emit(ev.Twitch(e.structure, e.needle, float(e.data.get("amplitude", 0.5)),
                                float(e.data.get("duration_s", 0.3)), text))
        elif e.kind == "release":
            self.emit(ev.Release(e.structure, e.needle, text, max(0.0, e.t - self.session.now())))
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
        if self.finished:
            return self.report
        self.session.finish()
        self._finished()
        return self.report

    def _finished(self) -> None:
        self.quiz_pending = None
        self.show_missed()
        self.emit(ev.Finished(self.report, self.session.ended_by))

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
        anchors = [a for a, _ in self.missed_labels]
        if anchors and not in_view(self.plotter, anchors):
            # a label off the view is no help: show the whole body, where every target lies
            self.view("posterior")
        for anchor, text in self.missed_labels:
            self.overlay.add_label("missed", anchor, text)
        self.render()

    # -- palpation, segment, targets --------------------------------------------------------
    def palpate_ray(self, origin, direction) -> list[dict]:
        if self._refused_finished():
            return []
        hit = self.index.snap_to_skin(origin, direction)
        if hit is None:
            self.say("Palpate on the skin: that click missed the body.", "warn")
            return []
        return self.palpate_at(hit.point, hit.normal)

    def palpate_at(self, point, normal_out) -> list[dict]:
        """Press on the skin at ``point``: the session finds and records what is under the
        fingers (the case's tender points and taut bands, the muscle there)."""
        if self.scenario is None:
            self.say("Open a case to palpate a patient (Ctrl+O).", "warn")
            return []
        r = self._call(self.session.palpate_at, point, normal_out)
        if r is None:
            return []
        found = [dict(f) for f in r.found]
        for f in found:
            if f["text"].startswith("Tender, with a taut") and self.labels_visible and f["structure"]:
                f["text"] += f" ({self.label(f['structure'])})"
            what = {"tender_point": "Tender point", "taut_band": "Taut band"}.get(f["kind"], "Finding")
            self.say(f"{what}: {f['text']}", "good")
        if not found:
            self.say("Nothing remarkable under your fingers here.")
        self._palpation_marker(r)
        self.render()
        return found

    def _palpation_marker(self, r) -> None:
        colour = (1.0, 0.55, 0.0) if r.found else (0.55, 0.6, 0.65)
        self.overlay.add_marker("palpation", r.point, colour=colour, radius=4.0 if r.found else 2.5)
        self.emit(ev.Palpated(tuple(r.found), r.point))

    def mark_segment(self, segment: str, on: bool = True) -> None:
        """The trainee's call on the involved segment(s) (recorded for scoring)."""
        from ..core.model.atlas import segment_index

        if self.scenario is None:
            self.say("Open a case to call its segment (Ctrl+O).", "warn")
            return
        segment = str(segment).strip().upper()
        try:
            segment_index(segment)
        except Exception:  # noqa: BLE001 - said, not raised
            self.say(f"{segment!r} is not a spinal segment (e.g. C7, T12, L5, S1).", "warn")
            return
        segs = list(self.session.marked_segments)
        if on and segment not in segs:
            segs.append(segment)
        if not on and segment in segs:
            segs.remove(segment)
        if self._call(self.session.mark_segments, segs) is None:
            return
        self.emit(ev.SegmentsChanged(tuple(self.session.marked_segments)))

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
        self.quiz_pending = i if q.type == "pick_structure" and not self.finished else None
        if self.quiz_pending is not None:
            self.set_tool("look")
        self.emit(ev.QuizChanged(i))

    def answer_quiz(self, i: int, answer) -> dict | None:
        """Answer question ``i``: choice index/indices, or a structure id (pick questions).
        The session grades it (the same rule as the score); the verdict shown is the session's."""
        if self._call(self.session.answer_quiz, i, answer) is None:
            return None
        if self.quiz[i].type != "multiple_choice":
            self.quiz_pending = None
        r = self.quiz_answers[i]
        self.say(("Right: " if r["correct"] else f"Not quite ({r['shown']}): ") + r["explanation"],
                 "good" if r["correct"] else "warn")
        self.emit(ev.QuizChanged(i))
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

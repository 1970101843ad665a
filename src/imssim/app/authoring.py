"""The window's Author mode (no Qt): write a case on the body, then try it as a student.

The core holds the case and its history (:class:`imssim.core.training.authoring.Authoring`:
each edit a command with undo/redo, unsaved changes, saving through the round trip); this
desk links it to the controller: the body the case is written on (the patient's build),
clicks on the body placing tender points (snapped to the skin or into the muscle under
the click, the same ray the needle and palpation tools use), the points drawn on the body,
and *Preview as student* (the case as it stands opened in practice mode). It tells the
views what changed with :class:`~imssim.app.events.AuthoringChanged` and
:class:`~imssim.app.events.AuthorModeChanged`; everything the author cannot do is said
(:class:`~imssim.app.events.Feedback`), never raised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.training.authoring import Authoring, AuthoringError
from ..core.training.case import open_case
from ..core.training.palpation import FEEL_DEPTH_MM
from ..core.training.scenario import ScenarioError
from . import events as ev

#: how far into the muscle under the click a point "in the muscle" goes (at most half its
#: thickness there), mm
INTO_MUSCLE_MM = 8.0
POINT_COLOUR = (0.85, 0.1, 0.55)


class AuthorDesk:
    """Author mode for ``controller``'s window. ``authoring`` is the case being written
    (None before New or Open); ``active``: the window is in Author mode."""

    def __init__(self, controller):
        self.controller = controller
        self.authoring: Authoring | None = None
        self.active = False
        self.snap = "muscle"  # where a click puts the point: "muscle" (under the click) or "skin"
        self.kind = "tender_point"
        self.last_error: str | None = None
        controller.author = self

    # -- state the views read ----------------------------------------------------------
    @property
    def dirty(self) -> bool:
        return self.authoring is not None and self.authoring.dirty

    @property
    def scenario(self):
        return None if self.authoring is None else self.authoring.scenario

    def say(self, text: str, level: str = "info") -> None:
        self.controller.say(text, level)

    def _changed(self, what: str = "") -> None:
        self.draw()
        self.controller.emit(ev.AuthoringChanged(self.dirty, what))

    # -- entering and leaving ----------------------------------------------------------------
    def enter(self) -> None:
        """Author mode: the body of the case's build, no attempt (nothing is recorded)."""
        self.active = True
        habitus = self.scenario.patient.habitus if self.scenario is not None else None
        self.controller.explore(habitus)
        self.frame()
        self.controller.set_tool("point" if self.authoring is not None else "look")
        self.controller.emit(ev.AuthorModeChanged(True))
        self._changed()

    def frame(self) -> None:
        """The preset view of the case's region (its first derived target's), as practice frames it."""
        from ..core.training.scenario import derive_targets
        from .controller import REGION_VIEW

        if self.scenario is None:
            return
        c = self.controller
        try:
            targets = derive_targets(self.scenario, c.atlas)
        except Exception:  # noqa: BLE001 - a view is no reason to refuse Author mode
            targets = []
        for t in targets:
            s = c.atlas.structures.get(t.structure)
            v = REGION_VIEW.get(getattr(s, "region", None) or "")
            if v is not None:
                c.view(v)
                return

    def leave(self) -> None:
        self.active = False
        self.controller.overlay.clear_markers("author")
        if self.controller.tool == "point":
            self.controller.set_tool("look")
        self.controller.emit(ev.AuthorModeChanged(False))
        self.controller.render()

    def _take(self, a: Authoring, said: str) -> None:
        self.authoring = a
        if self.active:
            self.enter()  # the patient's build (habitus) may differ
        self.say(said, "good")

    def new(self, segments: str = "L5", side: str = "right", condition: str = "chronic low back pain",
            scenario_id: str | None = None) -> bool:
        """A new case from the template (``imssim scenario new``): the diagnosis's
        paraspinal and myotome muscles prefilled; TODOs left for the author."""
        try:
            a = Authoring.new(self.controller.bodies.default, segments, side, condition, scenario_id)
        except (ValueError, ScenarioError) as e:
            self.say(f"No new case: {e}", "warn")
            return False
        self._take(a, f"New case '{a.scenario.id}' from the template: fill in the fields, place the tender "
                      "points on the body, pick the supersensitive muscles, then save.")
        return True

    def open(self, path) -> bool:
        """Edit a case file (or library id); raises nothing: a broken file is said."""
        try:
            bare = Authoring.open(path)  # schema first, then on the patient's build
            atlas = self.controller.bodies.atlas(bare.scenario.patient.habitus)
            a = Authoring.open(bare.scenario.path, atlas)
        except ScenarioError as e:
            self.say(f"Cannot open {path}: {str(e).splitlines()[0]}", "warn")
            self.last_error = str(e)
            return False
        self._take(a, f"Editing {a.path}.")
        return True

    # -- edits (each one an undo step) ----------------------------------------------------------
    def _edit(self, fn, *args, **kw):
        if self.authoring is None:
            self.say("Start a case first: New case or Open.", "warn")
            return None
        try:
            r = fn(*args, **kw)
        except AuthoringError as e:
            self.say(str(e), "warn")
            self._changed()  # the form shows the case as it is
            return None
        self._changed(self.authoring.undo_label or "")
        return r

    def set_field(self, name: str, value) -> bool:
        return bool(self._edit(lambda: self.authoring.set_field(name, value)))

    def set_supersensitive(self, structure: str, on: bool = True) -> bool:
        return bool(self._edit(lambda: self.authoring.set_supersensitive(structure, on)))

    def describe_point(self, i: int, text: str) -> bool:
        return bool(self._edit(lambda: self.authoring.describe_finding(i, text)))

    def remove_point(self, i: int) -> bool:
        return bool(self._edit(lambda: self.authoring.remove_finding(i)))

    def undo(self) -> str | None:
        if self.authoring is None:
            return None
        label = self.authoring.undo()
        self.say(f"Undone: {label}." if label else "Nothing to undo.", "info" if label else "warn")
        self._changed()
        return label

    def redo(self) -> str | None:
        if self.authoring is None:
            return None
        label = self.authoring.redo()
        self.say(f"Redone: {label}." if label else "Nothing to redo.", "info" if label else "warn")
        self._changed()
        return label

    # -- points on the body ------------------------------------------------------------------------
    def point_from_ray(self, origin, direction) -> tuple[np.ndarray, str | None, bool] | None:
        """Where a click puts a point: (xyz, the muscle under the click, on the skin?), or
        None when the click missed the body. In the muscle (``snap`` "muscle"): a little way
        into the first muscle under the skin there; on the skin otherwise (or when no muscle
        lies under it)."""
        ix = self.controller.index
        hit = ix.snap_to_skin(origin, direction)
        if hit is None:
            return None
        p, n = np.asarray(hit.point, float), np.asarray(hit.normal, float)
        inward = -n / np.linalg.norm(n)
        tr = ix.query(p, inward, FEEL_DEPTH_MM)
        atlas = self.controller.atlas
        iv = next((iv for iv in tr.intervals if atlas.structures[iv.structure].kind == "muscle"), None)
        if iv is None:
            return p, None, True
        if self.snap == "skin":
            return p, iv.structure, True
        d = iv.entry_depth + min(INTO_MUSCLE_MM, max(0.0, iv.exit_depth - iv.entry_depth) / 2)
        return p + inward * d, iv.structure, False

    def place_ray(self, origin, direction) -> int | None:
        """Place a tender point (or taut band, :attr:`kind`) where the ray meets the body."""
        if self.authoring is None:
            self.say("Start a case first (New case or Open), then click the body.", "warn")
            return None
        r = self.point_from_ray(origin, direction)
        if r is None:
            self.say("That click missed the body: click on the skin where the point is.", "warn")
            return None
        p, muscle, on_skin = r
        i = self._edit(lambda: self.authoring.add_point(muscle, p, self.kind, on_skin=on_skin))
        if i is not None:
            where = f"in the {self.controller.label(muscle)}" if muscle else "on the skin (no muscle under it)"
            self.say(f"{self.kind.replace('_', ' ').capitalize()} {len(self.authoring.points)} placed {where}.", "good")
        return i

    def draw(self) -> None:
        """The case's tender points and taut bands on the body (Author mode only)."""
        ov = self.controller.overlay
        ov.clear_markers("author")
        if not self.active or self.authoring is None:
            self.controller.render()
            return
        from ..core.training.case import palpable_loci

        # numbered as the panel lists them (points without a position have no marker)
        for k, (f, p) in enumerate(palpable_loci(self.authoring.scenario, self.controller.atlas), 1):
            if p is None:
                continue
            ov.add_marker("author", p, colour=POINT_COLOUR, radius=5.0)
            ov.add_label("author", p, str(k))
        self.controller.render()

    # -- saving and trying ---------------------------------------------------------------------------
    def save(self, path=None) -> Path | None:
        """Save (``path``: save as). The replaced file is kept as NAME.bak; a case the schema
        refuses is never written. None when not saved (said why)."""
        if self.authoring is None:
            return None
        try:
            p = self.authoring.save(path)
        except AuthoringError as e:
            self.say(str(e), "warn")
            return None
        issues = self.authoring.issues()
        left = f"; {len(issues)} thing(s) to look at before students use it (see Check)" if issues else ""
        self.say(f"Saved {p}{left}.", "good")
        self._changed()
        return p

    def preview(self, mode: str = "practice") -> bool:
        """Preview as student: the case as it stands (saved or not) opened in ``mode``;
        the authoring (and its undo history) stays for when Author mode is chosen again."""
        if self.authoring is None:
            self.say("Nothing to preview: start or open a case first.", "warn")
            return False
        c = self.controller
        try:
            case = open_case(self.authoring.preview(), c.bodies)
        except ScenarioError as e:
            self.say(f"The case cannot be opened as it stands: {str(e).splitlines()[0]}", "warn")
            return False
        self.leave()
        record, c.record = c.record, False  # a preview is not a trainee's attempt: no recording,
        try:
            c.start_case(case, mode)
        finally:
            c.record = record
        c.session.preview = True  # ... and nothing saved to the progress store
        c.say(f"Preview as student ({mode} mode): this is what a student sees. Choose Mode: author to go on "
              "editing.", "good")
        return True

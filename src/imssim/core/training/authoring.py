"""Authoring a case: the scenario being edited, each edit a command with undo and redo.

:class:`Authoring` holds one scenario (loaded from a file, or new from the template of
``imssim scenario new``), applies edits as commands (every edit validated through the
schema, so the held scenario is always a valid case), keeps undo and redo stacks, knows
whether there are unsaved changes and saves through
:func:`~imssim.core.training.scenario.save_scenario` (only what changed is written into the
author's document, comments and order kept; the replaced file kept as ``NAME.bak``).

No GUI here: the window's Author mode (``imssim.app.authoring``, ``imssim.qt``) only calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from .scenario import Scenario, ScenarioError, load_scenario, save_scenario
from .scenario.roundtrip import snapshot

#: the finding kinds a click on the body places
POINT_KINDS = ("tender_point", "taut_band")
#: radius of a placed point's locus (palpation feels it within this plus a finger width), mm
POINT_RADIUS_MM = 12.0


class AuthoringError(Exception):
    """An edit or save that cannot be done (said to the author; nothing changed)."""


@dataclass(frozen=True)
class Edit:
    """One applied command: what it did (``label``) and the scenario before and after."""

    label: str
    before: Scenario
    after: Scenario


@dataclass(frozen=True)
class MuscleChoice:
    """A muscle the author may make supersensitive; ``supplied``: the diagnosis supplies it."""

    id: str
    name: str
    supplied: bool
    segments: tuple[str, ...]


def _keep_private(new: Scenario, old: Scenario) -> Scenario:
    """``new`` remembers ``old``'s file, document and baseline (what a save compares with)."""
    new._path, new._document, new._baseline, new._warnings = old._path, old._document, old._baseline, []
    return new


def _message(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:3]:
        where = ".".join(str(x) for x in e.get("loc", ()) if not str(x).startswith("function"))
        parts.append(f"{where}: {e.get('msg', '')}" if where else e.get("msg", ""))
    return "; ".join(parts)


class Authoring:
    """The case being written (``scenario``), with undo/redo and unsaved-change tracking.

    ``atlas``: the body the case is written on (names are bound to its ids; the muscle
    list and the review's checks use it). ``path`` None: a new case not saved yet.
    """

    def __init__(self, scenario: Scenario, atlas=None, path: str | Path | None = None):
        self.atlas = atlas
        self.scenario = scenario
        self.path: Path | None = Path(path) if path is not None else None
        self.undo_stack: list[Edit] = []
        self.redo_stack: list[Edit] = []
        self._saved = snapshot(scenario) if self.path is not None else None
        self.listeners: list[Callable[["Authoring"], None]] = []

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, atlas=None) -> "Authoring":
        """Edit a case file (or library id); raises ScenarioError."""
        sc = load_scenario(path, atlas)
        return cls(sc, atlas, sc.path)

    @classmethod
    def new(cls, atlas, segments: str = "L5", side: str = "right", condition: str = "chronic low back pain",
            scenario_id: str | None = None) -> "Authoring":
        """A new case from the template of ``imssim scenario new`` (its comments kept); not
        saved anywhere until :meth:`save` is given a path. Raises ValueError for bad input."""
        from .scenario.template import new_scenario_text, slug

        text = new_scenario_text(atlas, segments, side, condition, scenario_id)
        sid = scenario_id or slug(segments, side, condition)
        sc = load_scenario(f"{sid}.yaml", atlas, text=text)
        sc._path = None
        return cls(sc, atlas, None)

    # -- state ---------------------------------------------------------------------------
    @property
    def dirty(self) -> bool:
        """Changes not saved (a new case is unsaved until its first save)."""
        return self._saved is None or snapshot(self.scenario) != self._saved

    @property
    def can_undo(self) -> bool:
        return bool(self.undo_stack)

    @property
    def can_redo(self) -> bool:
        return bool(self.redo_stack)

    @property
    def undo_label(self) -> str | None:
        return self.undo_stack[-1].label if self.undo_stack else None

    @property
    def redo_label(self) -> str | None:
        return self.redo_stack[-1].label if self.redo_stack else None

    def _changed(self) -> None:
        for f in list(self.listeners):
            f(self)

    def name(self, sid: str | None) -> str:
        if sid is None:
            return "-"
        if self.atlas is not None and sid in self.atlas.structures:
            return self.atlas.structures[sid].name
        return sid

    # -- commands ------------------------------------------------------------------------
    def apply(self, label: str, change: Callable[[dict], Any]) -> bool:
        """Run one edit: ``change`` alters the scenario's plain data in place; the result is
        validated through the schema (AuthoringError: nothing changed). False when the edit
        changes nothing (no undo step then)."""
        data = self.scenario.model_dump(mode="python")
        change(data)
        try:
            new = Scenario.model_validate(data)
        except ValidationError as e:
            raise AuthoringError(f"{label}: {_message(e)}") from None
        if snapshot(new) == snapshot(self.scenario):
            return False
        _keep_private(new, self.scenario)
        self.undo_stack.append(Edit(label, self.scenario, new))
        self.redo_stack.clear()
        self.scenario = new
        self._changed()
        return True

    def undo(self) -> str | None:
        """Take back the last edit; its label (None: nothing to undo)."""
        if not self.undo_stack:
            return None
        e = self.undo_stack.pop()
        self.redo_stack.append(e)
        self.scenario = e.before
        self._changed()
        return e.label

    def redo(self) -> str | None:
        if not self.redo_stack:
            return None
        e = self.redo_stack.pop()
        self.undo_stack.append(e)
        self.scenario = e.after
        self._changed()
        return e.label

    # -- the edits the window offers -------------------------------------------------------
    FIELDS = {
        "title": ("title",), "author": ("author",),
        "age": ("patient", "age"), "sex": ("patient", "sex"), "habitus": ("patient", "habitus"),
        "history": ("patient", "history"), "complaint": ("patient", "presenting_complaint"),
        "condition": ("diagnosis", "condition"), "side": ("diagnosis", "side"),
    }
    TITLES = {"title": "title", "author": "author", "age": "age", "sex": "sex", "habitus": "habitus",
              "history": "history", "complaint": "presenting complaint", "condition": "condition",
              "side": "side", "segments": "diagnosis segments"}

    def field(self, name: str):
        """The value of a form field (see :attr:`FIELDS`; ``segments``: the diagnosis's list)."""
        if name == "segments":
            return list(self.scenario.diagnosis.segments)
        node: Any = self.scenario
        for k in self.FIELDS[name]:
            node = getattr(node, k)
        return node

    def set_field(self, name: str, value) -> bool:
        """Set a form field (``segments``: a list or "L5, S1")."""
        if name == "segments":
            return self.set_segments(value)
        if name not in self.FIELDS:
            raise AuthoringError(f"unknown field {name!r}")
        if isinstance(value, str):
            value = " ".join(value.split()) if name not in ("history", "complaint") else value.strip()
        keys = self.FIELDS[name]

        def change(d):
            for k in keys[:-1]:
                d = d[k]
            d[keys[-1]] = value

        return self.apply(f"set the {self.TITLES[name]}", change)

    def set_segments(self, segments) -> bool:
        if isinstance(segments, str):
            segments = [x for x in segments.replace(",", " ").replace("/", " ").split() if x]
        segs = [str(s).strip().upper() for s in segments]

        def change(d):
            d["diagnosis"]["segments"] = segs

        return self.apply("set the diagnosis segments", change)

    # points on the body (findings with a position)
    @property
    def points(self) -> list[tuple[int, Any]]:
        """(index in patient.findings, finding) of every tender point and taut band."""
        return [(i, f) for i, f in enumerate(self.scenario.patient.findings) if f.kind in POINT_KINDS]

    def add_point(self, structure: str | None, xyz, kind: str = "tender_point", description: str | None = None,
                  on_skin: bool = False, radius_mm: float = POINT_RADIUS_MM) -> int:
        """A tender point (or taut band) at ``xyz`` (mm, LPS) in ``structure`` (the muscle under
        the click). ``on_skin``: the point is on the skin (not moved into the muscle).
        Returns its index in ``patient.findings``."""
        if kind not in POINT_KINDS:
            raise AuthoringError(f"a point on the body is one of {', '.join(POINT_KINDS)}")
        what = "Tender point" if kind == "tender_point" else "Taut, ropy band"
        desc = description or (f"{what} in the {self.name(structure)}; the patient flinches." if structure
                               else f"{what}; the patient flinches.")
        locus = {"xyz": tuple(round(float(c), 1) for c in xyz), "radius_mm": float(radius_mm)}
        if on_skin:
            locus["snap"] = False
        finding = {"kind": kind, "description": desc, "structure": structure, "locus": locus}
        self.apply(f"place a {kind.replace('_', ' ')}" + (f" in the {self.name(structure)}" if structure else ""),
                   lambda d: d["patient"]["findings"].append(finding))
        return len(self.scenario.patient.findings) - 1

    def describe_finding(self, i: int, description: str) -> bool:
        """What the patient's examination says for finding ``i`` (palpation says it when the
        student finds the point)."""
        text = " ".join(str(description).split())
        return self.apply(f"describe finding {i + 1}",
                          lambda d: d["patient"]["findings"][i].__setitem__("description", text))

    def remove_finding(self, i: int) -> bool:
        f = self.scenario.patient.findings[i]
        return self.apply(f"remove the {f.kind.replace('_', ' ')}" + (f" in the {self.name(f.structure)}"
                                                                        if f.structure else ""),
                          lambda d: d["patient"]["findings"].pop(i))

    # supersensitive muscles
    @property
    def supersensitive(self) -> list[str]:
        return [m.structure for m in self.scenario.supersensitive_muscles]

    def set_supersensitive(self, structure: str, on: bool = True, supersensitivity: float = 0.7) -> bool:
        """Make ``structure`` supersensitive (or not); a muscle already listed keeps its loci."""
        if self.atlas is not None:
            s = self.atlas.structures.get(structure)
            if s is None or s.kind != "muscle":
                raise AuthoringError(f"{structure!r} is not a muscle of this body")
        listed = structure in self.supersensitive
        if on == listed:
            return False
        if on:
            return self.apply(f"make the {self.name(structure)} supersensitive",
                              lambda d: d["supersensitive_muscles"].append(
                                  {"structure": structure, "supersensitivity": supersensitivity}))
        return self.apply(f"make the {self.name(structure)} normal", lambda d: d.__setitem__(
            "supersensitive_muscles", [m for m in d["supersensitive_muscles"] if m["structure"] != structure]))

    def muscle_choices(self) -> list[MuscleChoice]:
        """Every muscle of the body on the diagnosis's side(s): those the diagnosed segments
        supply first (their myotome, from the innervation data; the multifidus within the
        level tolerance), then the others, each group by name."""
        from .scenario.review import supply_fits

        if self.atlas is None:
            return []
        dx = self.scenario.diagnosis
        sides = set(dx.sides) | {"midline"}
        tol = self.scenario.targets.level_tolerance
        out = []
        for s in self.atlas.find(kind="muscle"):
            if s.side not in sides:
                continue
            out.append(MuscleChoice(s.id, s.name, bool(supply_fits(s, list(dx.segments), tol)), tuple(s.segments)))
        out.sort(key=lambda m: (not m.supplied, m.name.lower()))
        return out

    # -- checking and saving ------------------------------------------------------------------
    def issues(self) -> list:
        """What ``imssim scenario validate`` would say about the case as it stands (warnings
        from the reviewer's checks included)."""
        if self.atlas is None:
            return []
        from .scenario.validate import check_against_atlas

        return check_against_atlas(self.scenario, self.atlas, str(self.path or f"{self.scenario.id}.yaml"))

    def save(self, path: str | Path | None = None) -> Path:
        """Write the case (``path``: save as; needed for a new case). Only the changes go into
        the author's document; a replaced file is kept as ``NAME.bak``. Raises AuthoringError."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise AuthoringError("a new case needs a file name: use Save as")
        try:
            save_scenario(self.scenario, target, backup=True)
        except ScenarioError as e:
            raise AuthoringError(f"not saved: {e}") from None
        except OSError as e:
            raise AuthoringError(f"not saved: {target}: {e.strerror or e}") from None
        self.path = target
        self._saved = snapshot(self.scenario)
        self._changed()
        return target

    def preview(self) -> Scenario:
        """The case as it stands (saved or not), for opening in practice mode: a copy with no
        file, so the open case is this one and not what is on disk."""
        sc = self.scenario.model_copy()
        sc._path = None
        return sc

"""Checking a scenario's names and cross-references against an atlas."""

from __future__ import annotations

from typing import Any

from ...model.atlas import Atlas, AtlasLookupError
from .errors import ScenarioIssue
from .loader import format_path, node_position
from .model import Scenario
from .review import FAR_MM as LOCUS_WARN_MM  # noqa: F401 (a locus this far from its muscle: warning)
from .review import review


class _Checker:
    def __init__(self, sc: Scenario, atlas: Atlas, name: str):
        self.sc, self.atlas, self.name = sc, atlas, name
        self.doc = sc.document
        self.issues: list[ScenarioIssue] = []

    def add(self, loc: tuple, msg: str, severity: str = "error") -> None:
        line, col, shown = node_position(self.doc, loc) if self.doc is not None else (0, 0, loc)
        self.issues.append(ScenarioIssue(self.name, line, col, format_path(shown), msg, severity))

    def structure(self, loc: tuple, name: str, kind: str | None = None):
        try:
            s = self.atlas.get(name)
        except AtlasLookupError as e:
            hint = f"; did you mean {', '.join(repr(x) for x in e.suggestions)}?" if e.suggestions else ""
            if loc[:2] == ("targets", "add"):
                self.add(loc, f"target muscle {name!r} is absent from this body (atlas {self.atlas.name!r}){hint}; "
                              "remove the target or pick a muscle the body has (`imssim atlas list --kind muscle`)")
            else:
                self.add(loc, f"unknown structure {name!r} in atlas {self.atlas.name!r}{hint}")
            return None
        if kind and s.kind != kind:
            self.add(loc, f"{name!r} is a {s.kind}, expected a {kind}")
            return None
        return s

    def landmark(self, loc: tuple, name: str):
        try:
            return self.atlas.landmark(name)
        except AtlasLookupError as e:
            hint = f"; did you mean {', '.join(repr(x) for x in e.suggestions)}?" if e.suggestions else ""
            self.add(loc, f"unknown landmark {name!r} in atlas {self.atlas.name!r}{hint}")
            return None

    def locus(self, loc: tuple, locus, s) -> None:
        if locus is None:
            return
        if locus.landmark is not None:
            self.landmark(loc + ("landmark",), locus.landmark)
        # how far it lies from its muscle: review.far_loci, once every name is known

    def run(self) -> list[ScenarioIssue]:
        sc = self.sc
        p = sc.patient
        for i, pa in enumerate(p.pain):
            if pa.structure:
                self.structure(("patient", "pain", i, "structure"), pa.structure)
        for i, f in enumerate(p.findings):
            s = self.structure(("patient", "findings", i, "structure"), f.structure) if f.structure else None
            if f.locus is not None and (s is not None or f.structure is None):
                self.locus(("patient", "findings", i, "locus"), f.locus, s)
        sides = set(sc.diagnosis.sides)
        seen: dict[str, int] = {}
        for i, m in enumerate(sc.supersensitive_muscles):
            loc = ("supersensitive_muscles", i, "structure")
            s = self.structure(loc, m.structure, kind="muscle")
            if s is None:
                for j, lc in enumerate(m.trigger_loci):
                    if lc.landmark is not None:
                        self.landmark(("supersensitive_muscles", i, "trigger_loci", j, "landmark"), lc.landmark)
                continue
            if s.id in seen:
                self.add(loc, f"{s.id} is already listed at supersensitive_muscles[{seen[s.id]}]")
            seen[s.id] = i
            if s.side in ("left", "right") and s.side not in sides:
                self.add(loc, f"{s.id} is on the {s.side}, but the diagnosis side is {sc.diagnosis.side}", "warning")
            for j, lc in enumerate(m.trigger_loci):
                self.locus(("supersensitive_muscles", i, "trigger_loci", j), lc, s)
        t = sc.targets
        for i, name in enumerate(t.remove):
            self.structure(("targets", "remove", i), name)
        for i, a in enumerate(t.add):
            self.structure(("targets", "add", i, "structure"), a.structure, kind="muscle")
        if sc.safety.watch is not None:
            for i, name in enumerate(sc.safety.watch):
                s = self.structure(("safety", "watch", i), name)
                if s is not None and not s.is_danger:
                    self.add(("safety", "watch", i), f"{s.id} is not a danger structure in this atlas (no harm set)", "warning")
        for i, z in enumerate(sc.safety.zones):
            self.landmark(("safety", "zones", i, "landmark"), z.landmark)
        for i, q in enumerate(sc.quiz):
            if q.type == "pick_structure":
                for j, name in enumerate(q.answer):
                    self.structure(("quiz", i, "answer", j), name)
        longest = max(sc.safety.needles.lengths_mm)
        for i, z in enumerate(sc.safety.zones):
            if z.max_length_mm < min(sc.safety.needles.lengths_mm):
                self.add(("safety", "zones", i, "max_length_mm"),
                         f"no allowed needle is as short as {z.max_length_mm:g} mm (shortest: {min(sc.safety.needles.lengths_mm):g})",
                         "warning")
        for i, a in enumerate(t.add):
            if a.depth_mm and a.depth_mm[0] >= longest:
                self.add(("targets", "add", i, "depth_mm"), f"no allowed needle ({longest:g} mm max) reaches {a.depth_mm[0]:g} mm", "warning")
        if self.errors():
            return self.issues
        # what a reviewer would catch (placeholders, another segment, far loci): warnings
        review(sc, self.atlas, lambda loc, msg: self.add(loc, msg, "warning"))
        # derived targets: empty or notes -> warnings
        from .targets import derive

        d = derive(sc, self.atlas)
        for n in d.notes:
            self.add(("diagnosis", "segments"), n, "warning")
        if not d.targets and sc.modes.default != "quiz":
            self.add(("targets",), "the scenario has no targets (the segmental rule found none and none were "
                     "added); add some under targets.add, or make it a quiz (modes.default: quiz)", "warning")
        return self.issues

    def errors(self) -> list[ScenarioIssue]:
        return [i for i in self.issues if i.severity == "error"]


def check_against_atlas(sc: Scenario, atlas: Atlas, name: str | None = None) -> list[ScenarioIssue]:
    """Every name and cross-reference problem in ``sc`` against ``atlas`` (errors and warnings)."""
    issues = _Checker(sc, atlas, name or str(sc.path or "<scenario>")).run()
    return sorted(issues, key=lambda i: (i.line, i.column))


def canonicalise(sc: Scenario, atlas: Atlas) -> Scenario:
    """A copy of a valid scenario with every structure and landmark name turned into its atlas id."""

    def sid(n: str) -> str:
        return atlas.get(n).id

    def lid(n: str) -> str:
        return atlas.landmark(n).id

    def locus(lc):
        return lc.model_copy(update={"landmark": lid(lc.landmark)}) if lc is not None and lc.landmark else lc

    data: dict[str, Any] = {}
    p = sc.patient
    data["patient"] = p.model_copy(update={
        "pain": [pa.model_copy(update={"structure": sid(pa.structure) if pa.structure else None}) for pa in p.pain],
        "findings": [f.model_copy(update={"structure": sid(f.structure) if f.structure else None, "locus": locus(f.locus)})
                     for f in p.findings],
    })
    data["supersensitive_muscles"] = [
        m.model_copy(update={"structure": sid(m.structure), "trigger_loci": [locus(x) for x in m.trigger_loci]})
        for m in sc.supersensitive_muscles
    ]
    data["targets"] = sc.targets.model_copy(update={
        "remove": [sid(x) for x in sc.targets.remove],
        "add": [a.model_copy(update={"structure": sid(a.structure)}) for a in sc.targets.add],
    })
    data["safety"] = sc.safety.model_copy(update={
        "watch": [sid(x) for x in sc.safety.watch] if sc.safety.watch is not None else None,
        "zones": [z.model_copy(update={"landmark": lid(z.landmark)}) for z in sc.safety.zones],
    })
    data["quiz"] = [q.model_copy(update={"answer": [sid(x) for x in q.answer]}) if q.type == "pick_structure" else q
                    for q in sc.quiz]
    out = sc.model_copy(update=data)
    out._path, out._document = sc._path, sc._document
    return out

"""What a reviewer would catch in a scenario that the schema cannot: placeholders left in,
findings and answers that point at another segment than the diagnosis, tender points far
from their muscle.

A muscle deliberately outside the diagnosed segments (local needling where it hurts, say)
is marked by an end-of-line comment starting ``# local`` on its ``structure:`` line; the
segment checks then leave it alone (the comment tells the reader why).

Every check gives a warning (``imssim scenario validate --strict`` makes them errors)
with the field's position and a suggestion. Called by :mod:`.validate` once the names
are known to be right.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterator

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from ...model.atlas import SEGMENTS, Atlas, Structure, segment_index
from .model import MultipleChoice, Scenario

#: Text an author leaves to fill in later.
PLACEHOLDER = re.compile(r"\b(TODO|TBD|FIXME|XXX)\b|lorem ipsum", re.IGNORECASE)
#: A brief (history, complaint) shorter than this many words tells a student nothing.
MIN_BRIEF_WORDS = 4
#: A tender point or trigger locus given by coordinates further than this from its muscle.
FAR_MM = 40.0

_SEG = r"(?:C[1-8]|T(?:1[0-2]|[1-9])|L[1-5]|S[1-5])"
#: A quiz choice that names segments only: "L5", "C5-C6", "L5/S1", "C5, C6".
_SEG_CHOICE = re.compile(rf"^{_SEG}(?:\s*(?:-|–|/|,|and|to)\s*{_SEG})*$", re.IGNORECASE)

Add = Callable[[tuple, str], None]


def _strings(node: Any, loc: tuple = ()) -> Iterator[tuple[tuple, str]]:
    if isinstance(node, CommentedMap):
        for k, v in node.items():
            yield from _strings(v, loc + (k,))
    elif isinstance(node, CommentedSeq):
        for i, v in enumerate(node):
            yield from _strings(v, loc + (i,))
    elif isinstance(node, str):
        yield loc, str(node)


#: An end-of-line comment starting with this marks a muscle deliberately outside the segment.
LOCAL_MARK = re.compile(r"^#\s*local\b", re.IGNORECASE)


def _eol_comment(node: Any, key: Any) -> str:
    try:
        items = node.ca.items.get(key)
    except AttributeError:
        return ""
    if not items:
        return ""
    tok = items[2] if isinstance(node, CommentedMap) else items[0]
    return (getattr(tok, "value", "") or "").strip()


def marked_local(doc: Any, loc: tuple) -> bool:
    """Whether the item at ``loc`` (ending in ``structure``) carries a ``# local: why`` comment:
    on its ``structure:`` line, or after a one-line ``{structure: ...}`` item."""
    if doc is None or len(loc) < 2:
        return False
    node = doc
    try:
        for part in loc[:-2]:
            node = node[part]
        item = node[loc[-2]]
    except (KeyError, IndexError, TypeError):
        return False
    return any(LOCAL_MARK.match(c) for c in (_eol_comment(item, loc[-1]), _eol_comment(node, loc[-2])))


def placeholders(sc: Scenario, add: Add) -> None:
    """``TODO`` and friends left in any text; a history or complaint too short to brief a student."""
    doc = sc.document
    if doc is not None:
        for loc, text in _strings(doc):
            m = PLACEHOLDER.search(text)
            if m:
                add(loc, f"placeholder {m.group(0)!r} left in the text ({text[:60]!r}); "
                         "write the real content before students see it")
    p = sc.patient
    for field in ("history", "presenting_complaint"):
        words = len(getattr(p, field).split())
        if words < MIN_BRIEF_WORDS:
            add(("patient", field), f"the {field.replace('_', ' ')} is {words} word(s): too short to brief a "
                                    "student; describe the patient's story in a sentence or two")
    if not sc.learning_objectives:
        add(("learning_objectives",), "no learning objectives; add one or two lines saying what the case teaches")


def _levels_apart(a: str, b: str) -> int:
    try:
        return abs(segment_index(a) - segment_index(b))
    except ValueError:
        return 99


def supply_fits(s: Structure, segments: list[str], tolerance: int) -> bool | None:
    """Whether muscle ``s`` is supplied by one of ``segments`` (None: its supply is unknown).

    A segmental paraspinal muscle (multifidus) counts within ``tolerance`` levels; other
    muscles by their root range."""
    from .targets import is_multifidus

    if is_multifidus(s):
        return any(_levels_apart(s.level, x) <= tolerance for x in segments)
    roots = s.segments
    if not roots:
        return None
    return bool(set(roots) & set(segments))


def _supply_text(s: Structure) -> str:
    from .targets import is_multifidus

    if is_multifidus(s):
        return f"level {s.level}"
    r = s.segments
    return f"roots {r[0]}-{r[-1]}" if len(r) > 1 else f"root {r[0]}"


def segment_consistency(sc: Scenario, atlas: Atlas, add: Add) -> None:
    """Findings, supersensitive muscles, added targets and segment quiz answers that point
    at another segment than the diagnosis."""
    segs = list(sc.diagnosis.segments)
    segtxt = ", ".join(segs)
    tol = sc.targets.level_tolerance

    def muscle(name: str | None) -> Structure | None:
        if not name:
            return None
        try:
            s = atlas.get(name)
        except Exception:
            return None
        return s if s.kind == "muscle" else None

    fitting: list[str] | None = None

    def suggest(paraspinal: bool = False) -> str:
        nonlocal fitting
        if fitting is None:
            from .model import Targets
            from .targets import derive_targets

            probe = sc.model_copy(update={"targets": Targets(level_tolerance=0)})
            fitting = [t.structure for t in derive_targets(probe, atlas)
                       if t.kind == "peripheral" or (t.level or "") in segs]
        names = [n for n in fitting if paraspinal or not n.startswith(("multifidus", "rotatores"))] or fitting
        return f"e.g. {', '.join(names[:4])}" if names else f"a muscle supplied by {segtxt}"

    doc = sc.document
    mark = "; if it is deliberately local, end its line with `# local: why`"

    # a finding is evidence the student reads: a multifidus finding must be at the level itself
    for i, f in enumerate(sc.patient.findings):
        s = muscle(f.structure)
        loc = ("patient", "findings", i, "structure")
        if s is None or f.kind not in ("tender_point", "taut_band") or marked_local(doc, loc):
            continue
        if supply_fits(s, segs, 0) is False:
            add(loc, f"the {f.kind.replace('_', ' ')} in {s.id} ({_supply_text(s)}) points at another segment than "
                     f"the diagnosis ({segtxt}); a student will reason from it: move it to a muscle the diagnosis "
                     f"supplies ({suggest(True)}), or change diagnosis.segments{mark}")
    for i, m in enumerate(sc.supersensitive_muscles):
        s = muscle(m.structure)
        loc = ("supersensitive_muscles", i, "structure")
        if s is not None and not marked_local(doc, loc) and supply_fits(s, segs, tol) is False:
            add(loc, f"{s.id} ({_supply_text(s)}) is not supplied by the diagnosed segment(s) {segtxt}; in IMS "
                     f"supersensitivity follows the segment ({suggest()}){mark}")
    for i, t in enumerate(sc.targets.add):
        s = muscle(t.structure)
        loc = ("targets", "add", i, "structure")
        ttol = t.level_tolerance if t.level_tolerance is not None else tol
        if s is not None and not marked_local(doc, loc) and supply_fits(s, segs, ttol) is False:
            add(loc, f"target {s.id} ({_supply_text(s)}) is not supplied by the diagnosed segment(s) {segtxt}; "
                     f"pick one the diagnosis supplies ({suggest()}){mark}")
    for i, q in enumerate(sc.quiz):
        if not isinstance(q, MultipleChoice):
            continue
        named = [choice_segments(c) for c in q.choices]
        if any(n is None for n in named):
            continue  # not a "which segment" question
        wrong = [q.choices[a] for a in q.answers if not set(named[a]) & set(segs)]
        if wrong:
            right = [j for j, n in enumerate(named) if set(n) & set(segs)]
            hint = (f"set answer: {right[0] if len(right) == 1 else right}" if right else
                    f"add {segtxt} to the choices and make it the answer")
            add(("quiz", i, "answer"),
                f"the answer {', '.join(repr(w) for w in wrong)} names another segment than the diagnosis "
                f"({segtxt}); {hint}, or change diagnosis.segments")


def choice_segments(choice: str) -> list[str] | None:
    """The segments a quiz choice names ("C5-C6" -> C5, C6), or None when it names other things."""
    text = choice.strip()
    if not _SEG_CHOICE.match(text):
        return None
    found = [x.upper() for x in re.findall(_SEG, text, re.IGNORECASE)]
    if len(found) == 2 and re.search(r"-|–|to", text):
        a, b = sorted(segment_index(x) for x in found)
        return list(SEGMENTS[a : b + 1])
    return found


def nearest_muscle(atlas: Atlas, p) -> tuple[Structure | None, float]:
    """The muscle closest to point ``p`` (mm) and its distance (0 inside)."""
    import numpy as np

    from ...model.loci import distance_to

    p = np.asarray(p, dtype=float)
    best, bd = None, float("inf")
    for s in atlas.find(kind="muscle"):
        lo, hi = s.bounds
        box = float(np.linalg.norm(np.maximum(0.0, np.maximum(lo - p, p - hi))))
        if box >= bd:
            continue
        d = distance_to(s, p)
        if d < bd:
            best, bd = s, d
    return best, bd


def far_loci(sc: Scenario, atlas: Atlas, add: Add) -> None:
    """A tender point (or trigger locus) placed by landmark or coordinates well outside its muscle."""
    from .targets import distance_to, resolve_locus

    def check(loc: tuple, locus, name: str | None, what: str) -> None:
        if locus is None or name is None or locus.fraction is not None:
            return
        try:
            s = atlas.get(name)
        except Exception:
            return
        p = resolve_locus(locus.model_copy(update={"snap": False}), atlas)
        d = distance_to(s, p)
        if d <= FAR_MM:
            return
        near, nd = nearest_muscle(atlas, p)
        hint = (f"the point is in {near.id}: name that muscle, or move the point onto {s.id}"
                if near is not None and nd <= 1.0 and near.id != s.id else
                f"move the point onto {s.id} (or give it as a fraction along the muscle)")
        add(loc, f"{what} lies {d:.0f} mm from {s.id}; {hint}")

    for i, f in enumerate(sc.patient.findings):
        check(("patient", "findings", i, "locus"), f.locus, f.structure, f"the {f.kind.replace('_', ' ')}")
    for i, m in enumerate(sc.supersensitive_muscles):
        for j, lc in enumerate(m.trigger_loci):
            check(("supersensitive_muscles", i, "trigger_loci", j), lc, m.structure, "the trigger locus")


def review(sc: Scenario, atlas: Atlas, add: Add) -> None:
    """Every reviewer check (warnings through ``add(loc, message)``)."""
    placeholders(sc, add)
    segment_consistency(sc, atlas, add)
    far_loci(sc, atlas, add)

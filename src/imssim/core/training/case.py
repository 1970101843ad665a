"""Opening a case: the scenario, the patient's body build of the atlas, and its tissue index.

This is the one way a case is opened, by the window, the CLI and the tests:

    bodies = BodyBuilds.load()              # the selected atlas (or BodyBuilds(atlas, index))
    case = open_case("l5-radiculopathy-low-back", bodies)
    session = Session.from_case(case, seed=7)

:class:`BodyBuilds` is the one holder of the atlas of each body build (lean, average, obese)
and of its :class:`~imssim.core.engines.traversal.TissueIndex`, each loaded/built once and kept, so
switching builds back and forth is instant. A :class:`Case` is what a session starts from.
The scenario file is read once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class BodyBuilds:
    """The atlas of each body build of one atlas, and its tissue index (built on first use)."""

    def __init__(self, atlas, index=None, progress=None):
        self.name = atlas.name
        self.progress = progress
        self._atlases: dict = {atlas.meta.get("habitus"): atlas}
        self._indexes: dict = {} if index is None else {atlas.meta.get("habitus"): index}
        self.default = atlas

    @classmethod
    def load(cls, atlas_name: str | None = None, progress=None, habitus: str | None = "average") -> "BodyBuilds":
        from ..model import store

        return cls(store.load_atlas(atlas_name, progress=progress, habitus=habitus), progress=progress)

    def atlas(self, habitus: str | None):
        """The atlas of body build ``habitus`` (the default one when the atlas has no builds)."""
        have = self.default.meta.get("habitus")
        if habitus is None or have is None:
            return self.default
        a = self._atlases.get(habitus)
        if a is None:
            from ..model import store

            a = store.load_atlas(self.name, progress=self.progress, habitus=habitus)
            if a.meta.get("habitus") != habitus:  # an imported atlas without builds
                a = self.default
            self._atlases[habitus] = a
        return a

    def index(self, atlas):
        """The tissue index of ``atlas`` (one of this holder's builds), built once."""
        key = atlas.meta.get("habitus")
        ix = self._indexes.get(key)
        if ix is None or ix.atlas is not atlas:
            from ..engines.traversal import TissueIndex

            ix = TissueIndex(atlas)
            self._indexes[key] = ix
        return ix

    def has_index(self, habitus: str | None) -> bool:
        return self.atlas(habitus).meta.get("habitus") in self._indexes


@dataclass
class Case:
    """An opened case: the scenario bound to the atlas of the patient's build, and its index.

    ``scenario`` None is free exploration (no patient)."""

    atlas: object
    index: object
    scenario: object | None = None
    loci: list = field(default_factory=list)  # (finding, point or None): palpable findings

    @property
    def habitus(self) -> str | None:
        return self.atlas.meta.get("habitus")


def palpable_loci(scenario, atlas) -> list:
    """(finding, point or None) for the scenario's tender points and taut bands; the point is
    the finding's locus when it can be placed, else None (the finding's muscle is felt)."""
    from .scenario import resolve_locus

    out = []
    if scenario is None:
        return out
    for f in scenario.patient.findings:
        if f.kind not in ("tender_point", "taut_band"):
            continue
        p = None
        if f.locus is not None:
            try:
                p = np.asarray(resolve_locus(f.locus, atlas, f.structure), float)
            except Exception:  # noqa: BLE001 - an unplaceable locus falls back to the structure
                p = None
        out.append((f, p))
    return out


def open_case(scenario=None, bodies: BodyBuilds | None = None, atlas_name: str | None = None,
              progress=None) -> Case:
    """Open a case: ``scenario`` (a path, a library id, None for the default case, or an
    already loaded :class:`~imssim.core.training.scenario.Scenario`) on the atlas of its patient's
    body build from ``bodies`` (loaded from ``atlas_name`` when not given). Raises
    ScenarioError for a bad file or names the atlas does not have."""
    from .scenario import bind_scenario, load_scenario

    if bodies is None:
        bodies = BodyBuilds.load(atlas_name, progress=progress)
    if scenario is not None and not isinstance(scenario, (str, Path)):
        bare = scenario  # a loaded scenario (bound to some build): bind it again from its file's names
        src = getattr(bare, "path", None)
        if src is not None:
            bare = load_scenario(src)
    else:
        bare = load_scenario(scenario)  # schema only, read once
    atlas = bodies.atlas(bare.patient.habitus)
    sc = bind_scenario(bare, atlas, str(getattr(bare, "path", None) or scenario or bare.id))
    return Case(atlas, bodies.index(atlas), sc, palpable_loci(sc, atlas))


def explore(bodies: BodyBuilds, habitus: str | None = None) -> Case:
    """No patient: the atlas (of a build) to explore and practise on."""
    atlas = bodies.atlas(habitus) if habitus else bodies.default
    return Case(atlas, bodies.index(atlas), None, [])

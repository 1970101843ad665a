"""Innervation knowledge: which nerve and roots supply each canonical muscle.

Read from ``meshes/muscles.yaml`` (and the added-muscles file), where each entry cites its
sources. The functions here answer the questions IMS asks: which muscles share a
root (a myotome), and which segment does a muscle belong to.
"""

from __future__ import annotations

from dataclasses import dataclass

from .atlas import Innervation, segment_index, segment_range
from .data import muscles_data


@dataclass(frozen=True)
class MuscleFacts:
    """One canonical muscle (or part) and its supply."""

    key: str  # entry name in the data file, e.g. "gluteus medius" or "longissimus (lumbar part)"
    canonical: str  # the muscle it is part of, e.g. "longissimus"
    nerve: str
    roots: tuple[str, ...]
    dominant: str | None
    segmental: bool
    uncertain: bool
    region: str
    sources: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    target: bool = True  # False: never a derived IMS target (see scenario.targets)

    def innervation(self, level: str | None = None) -> Innervation:
        src = "; ".join(self.sources)
        if self.segmental and level:
            return Innervation(self.nerve, (level,), level, src)
        return Innervation(self.nerve, self.roots, self.dominant, src)


def _facts_from(entries: dict, sources: dict) -> dict[str, MuscleFacts]:
    out = {}
    for key, e in entries.items():
        # cranial-nerve muscles (face, jaw) have no spinal roots: ``roots: null``
        first, last = e["roots"] if e.get("roots") else (None, None)
        srcs = tuple(sources.get(k, k) for k in e.get("sources", []))
        out[key] = MuscleFacts(
            key=key,
            canonical=e.get("canonical", key),
            nerve=e["nerve"],
            roots=tuple(segment_range(first, last)) if first else (),
            dominant=e.get("dominant"),
            segmental=bool(e.get("segmental", False)),
            uncertain=bool(e.get("uncertain", False)),
            region=e.get("region", ""),
            sources=srcs,
            aliases=tuple(e.get("aliases", ())),
            target=bool(e.get("target", True)),
        )
    return out


def all_muscles() -> dict[str, MuscleFacts]:
    """Every muscle the built-in knowledge has facts for, by key."""
    data = muscles_data()
    facts = _facts_from(data["muscles"], data["sources"])
    try:
        from .data import read_yaml, meshes_dir

        extra_path = meshes_dir() / "added_muscles.yaml"
        if extra_path.exists():
            extra = read_yaml(extra_path)
            facts.update(_facts_from(extra.get("muscles", {}), {**data["sources"], **extra.get("sources", {})}))
    except FileNotFoundError:
        pass
    return facts


def lookup(name: str) -> MuscleFacts:
    """Facts for a muscle by key, canonical name or alias (case-insensitive)."""
    n = name.strip().lower()
    facts = all_muscles()
    if n in facts:
        return facts[n]
    for f in facts.values():
        if n == f.canonical or n in f.aliases:
            return f
    import difflib

    close = difflib.get_close_matches(n, list(facts), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise KeyError(f"no innervation facts for muscle {name!r}{hint}")


def myotome(segment: str) -> list[MuscleFacts]:
    """Peripheral (non-segmental) muscles whose root range includes ``segment``."""
    segment_index(segment)  # validates
    seg = segment.upper()
    return [f for f in all_muscles().values() if not f.segmental and seg in f.roots]

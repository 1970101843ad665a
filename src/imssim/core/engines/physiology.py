"""What the simulated patient does when a needle arrives (deterministic for a seed).

Every response is an :class:`Event` with a time; the view, the text/sound feedback, the
recording and the scoring all read the same stream (see docs/physiology.md).

Model (parameters from the scenario's ``physiology`` block and supersensitive muscles;
clinical-facts.md marks the twitch duration and the firing radius as weakly sourced, so
they are parameters with defaults, not constants):

* tip enters a supersensitive muscle (supersensitivity >= ``GRASP_THRESHOLD``): the needle
  is *grasped* (resistance rises) and the patient reports a deep cramping ache;
  a healthy muscle is painless; bone contact, a nerve (sharp, electric, radiating) and
  pleura (sudden sharp pain, a cough, breathlessness ``breathless_delay_s`` later) each
  have their own event; other danger structures (canal, artery, kidney) give a sharp pain
  and a ``breach`` event.
* local twitch response: fires only on needle movement (advance or pistoning, at least
  ``min_movement_mm`` deeper) with probability
  ``p = min(1, scale * s * exp(-(d / r)^2 / 2))`` where ``s`` is the muscle's current
  supersensitivity, ``d`` the tip-to-locus distance and ``r`` the locus radius; no twitch
  beyond ``3 r``. Amplitude ``s * habituation^n`` (``n`` twitches already at that locus),
  duration ``twitch_duration_s`` scaled by the amplitude.
* release: each twitch lowers the muscle's supersensitivity by ``release_rate`` (a
  fraction of what is left) and its shortening with it; :class:`MuscleState` gives the
  view a contraction pulse (during a twitch) and a lengthening (after release).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .wording import tightness_change

GRASP_THRESHOLD = 0.2  # supersensitivity above which a muscle grasps the needle
GRASP_RESISTANCE = 0.4  # the least resistance a grasping muscle gives (Physiology.feel)


@dataclass(frozen=True)
class PhysiologyParams:
    baseline_supersensitivity: float = 0.0
    twitch_probability_scale: float = 1.0
    habituation_factor: float = 0.7
    release_rate: float = 0.3
    default_locus_radius_mm: float = 10.0
    twitch_duration_s: float = 0.25  # [U] clinical-facts: not well sourced
    min_movement_mm: float = 0.5  # a twitch needs the tip to move at least this far inward
    breathless_delay_s: float = 60.0  # pleura: breathlessness follows after this
    max_shortening: float = 0.15  # fractional shortening of a maximally supersensitive muscle

    @classmethod
    def from_scenario(cls, scenario) -> "PhysiologyParams":
        if scenario is None:
            return cls()
        p = scenario.physiology
        return cls(
            baseline_supersensitivity=p.baseline_supersensitivity,
            twitch_probability_scale=p.twitch_probability_scale,
            habituation_factor=p.habituation_factor,
            release_rate=p.release_rate,
            default_locus_radius_mm=p.default_locus_radius_mm,
            **{k: getattr(p, k) for k in ("twitch_duration_s", "breathless_delay_s") if hasattr(p, k)},
        )


@dataclass(frozen=True)
class Event:
    """One response of the patient (or of the needle) at time ``t`` (s)."""

    t: float
    kind: str  # grasp, painless, bone_contact, nerve, pleura, cough, breathless, breach, twitch, release
    needle: int | None
    structure: str | None
    message: str
    data: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["data"] = _jsonable(d["data"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Event":
        return cls(float(d["t"]), str(d["kind"]), d.get("needle"), d.get("structure"), str(d.get("message", "")),
                   dict(d.get("data") or {}))


def _jsonable(v):
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float):
        return round(v, 6)
    return v


@dataclass
class Locus:
    structure: str
    index: int
    xyz: np.ndarray
    radius_mm: float
    label: str = ""
    twitches: int = 0


@dataclass
class MuscleState:
    """Per-muscle state the 3D view animates and scoring reads."""

    structure: str
    initial: float  # supersensitivity at the start
    supersensitivity: float
    twitches: int = 0
    last_twitch_t: float | None = None
    last_twitch_duration: float = 0.0
    last_twitch_amplitude: float = 0.0
    max_shortening: float = 0.15

    @property
    def shortening(self) -> float:
        """Fractional shortening now (eases as supersensitivity is released)."""
        return self.max_shortening * self.supersensitivity

    @property
    def lengthening(self) -> float:
        """How much the muscle has lengthened since the start (fraction of its length)."""
        return self.max_shortening * (self.initial - self.supersensitivity)

    def contraction(self, t: float) -> float:
        """Twitch pulse 0..1 at time ``t``: a half-sine over the twitch duration."""
        if self.last_twitch_t is None or self.last_twitch_duration <= 0:
            return 0.0
        u = (t - self.last_twitch_t) / self.last_twitch_duration
        if not 0.0 <= u <= 1.0:
            return 0.0
        return self.last_twitch_amplitude * math.sin(math.pi * u)


class Physiology:
    """The patient's responses; feed it every needle pose with its traversal."""

    def __init__(self, atlas, scenario=None, seed: int = 0, params: PhysiologyParams | None = None,
                 loci: list[Locus] | None = None, state: dict[str, float] | None = None):
        """``state``: each supersensitive muscle's supersensitivity at the start of this
        session (a course's carried-over state, :mod:`imssim.core.training.course`); the scenario's
        values where left out."""
        self.atlas = atlas
        self.scenario = scenario
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.params = params or PhysiologyParams.from_scenario(scenario)
        self.scales: dict[str, float] = {}
        self.muscles: dict[str, MuscleState] = {}
        self.loci: list[Locus] = []
        if scenario is not None:
            from ..model.loci import resolve_locus

            for m in scenario.supersensitive_muscles:
                if m.structure not in atlas.structures:
                    continue
                s0 = float(state.get(m.structure, m.supersensitivity)) if state else m.supersensitivity
                self.muscles[m.structure] = MuscleState(m.structure, s0, s0, max_shortening=self.params.max_shortening)
                if m.twitch_probability_scale is not None:
                    self.scales[m.structure] = m.twitch_probability_scale
                for k, loc in enumerate(m.trigger_loci):
                    xyz = resolve_locus(loc, atlas, m.structure)
                    self.loci.append(Locus(m.structure, k, np.asarray(xyz, float), float(loc.radius_mm),
                                           loc.label or ""))
        if loci:
            self.loci.extend(loci)
        self._loci_xyz = np.array([lc.xyz for lc in self.loci]).reshape(-1, 3)
        self._pending: list[Event] = []  # scheduled (breathlessness)
        self._tip: dict[int, tuple] = {}  # needle -> (tip structure, depth, breached set, bone)

    # -- state ----------------------------------------------------------------------
    def supersensitivity(self, structure: str) -> float:
        m = self.muscles.get(structure)
        if m is not None:
            return m.supersensitivity
        return self.params.baseline_supersensitivity

    def muscle_state(self, structure: str) -> MuscleState:
        if structure not in self.muscles:
            b = self.params.baseline_supersensitivity
            self.muscles[structure] = MuscleState(structure, b, b, max_shortening=self.params.max_shortening)
        return self.muscles[structure]

    def feel(self, tip_structure: str | None, tip_kind: str | None, on_bone: bool = False) -> tuple[float, str]:
        """What the needle hand feels at the tip: (resistance 0-1, a few words).

        A supersensitive muscle grasps the needle (0.4-1.0, rising with its current
        supersensitivity, so it eases as the muscle releases); healthy muscle and fat let
        it glide; bone is a hard stop; skin and fascia a light pop-through."""
        if on_bone:
            return 1.0, "hard stop: bone"
        if tip_kind == "muscle" and tip_structure:
            s = self.supersensitivity(tip_structure)
            if s >= GRASP_THRESHOLD:
                grip = GRASP_RESISTANCE + (1.0 - GRASP_RESISTANCE) * min(1.0, s)
                return round(grip, 3), "grasped: the muscle grips the needle"
            return 0.15, "soft: the needle glides"
        if tip_kind == "skin":
            return 0.3, "skin"
        if tip_kind == "subcutaneous":
            return 0.05, "soft: fat"
        if tip_kind == "connective":
            return _connective_feel(tip_structure)
        if tip_kind in ("organ", "vessel", "nerve", "canal"):
            return 0.1, "gives way"
        return 0.0, "-"

    def nearest_locus(self, tip) -> tuple[Locus | None, float]:
        if not self.loci:
            return None, math.inf
        d = np.linalg.norm(self._loci_xyz - np.asarray(tip, float), axis=1)
        k = int(np.argmin(d))
        return self.loci[k], float(d[k])

    def twitch_probability(self, structure: str, distance_mm: float, radius_mm: float) -> float:
        if distance_mm > 3 * radius_mm:
            return 0.0
        s = self.supersensitivity(structure)
        scale = self.scales.get(structure, self.params.twitch_probability_scale)
        return float(min(1.0, scale * s * math.exp(-0.5 * (distance_mm / radius_mm) ** 2)))

    # -- the stream -----------------------------------------------------------------
    def tick(self, t: float) -> list[Event]:
        """Scheduled events due by time ``t``."""
        due = [e for e in self._pending if e.t <= t]
        self._pending = [e for e in self._pending if e.t > t]
        return due

    def flush(self) -> list[Event]:
        """All scheduled events (at the end of a session)."""
        out, self._pending = sorted(self._pending, key=lambda e: e.t), []
        return out

    def on_pose(self, t: float, needle: int, action: str, tip_structure: str | None, tip_kind: str | None,
                depth: float, tip, bone: str | None, breaches, moved_mm: float | None = None) -> list[Event]:
        """Responses to needle ``needle`` arriving at a pose.

        ``breaches`` is a sequence of (structure, harm, depth) entered along the shaft.
        """
        ev = self.tick(t)
        prev = self._tip.get(needle)
        prev_struct, prev_depth, prev_breached, prev_bone = prev if prev else (None, 0.0, frozenset(), None)
        if action == "remove":
            self._tip.pop(needle, None)
            return ev
        breached = frozenset(b[0] for b in breaches)
        for s, harm, bdepth in breaches:
            if s in prev_breached:
                continue
            name = self._name(s)
            kind = self.atlas.structures[s].kind if s in self.atlas.structures else ""
            if harm == "pneumothorax":
                ev.append(Event(t, "pleura", needle, s, f"Sudden sharp pain in the chest ({name}); the patient coughs.",
                                {"harm": harm, "depth": bdepth}))
                ev.append(Event(t, "cough", needle, s, "The patient coughs.", {}))
                self._pending.append(Event(t + self.params.breathless_delay_s, "breathless", needle, s,
                                           "The patient is increasingly short of breath.", {"harm": harm}))
            elif kind == "nerve" or harm == "nerve injury":
                ev.append(Event(t, "nerve", needle, s,
                                f"Sharp, electric pain shooting down the limb: the needle touched the {name}.",
                                {"harm": harm, "depth": bdepth}))
            else:
                ev.append(Event(t, "breach", needle, s, f"Sharp pain: the needle entered the {name} ({harm}).",
                                {"harm": harm, "depth": bdepth}))
        if bone and bone != prev_bone:
            ev.append(Event(t, "bone_contact", needle, bone, f"The needle stops on bone ({self._name(bone)}).",
                            {"depth": depth}))
        if tip_kind == "muscle" and tip_structure != prev_struct:
            s = self.supersensitivity(tip_structure)
            if s >= GRASP_THRESHOLD:
                ev.append(Event(t, "grasp", needle, tip_structure,
                                f"The needle is grasped in the {self._name(tip_structure)}: "
                                "deep cramping ache, resistance rises.", {"supersensitivity": s}))
            else:
                ev.append(Event(t, "painless", needle, tip_structure,
                                f"The needle passes painlessly into the {self._name(tip_structure)}.",
                                {"supersensitivity": s}))
        moved_in = depth - prev_depth if action in ("insert", "advance", "move") else 0.0
        if moved_mm is not None:
            moved_in = moved_mm  # pistoning: out and in again
        if tip_kind == "muscle" and moved_in >= self.params.min_movement_mm:
            ev.extend(self._maybe_twitch(t, needle, tip_structure, tip))
        self._tip[needle] = (tip_structure, depth, breached, bone)
        return ev

    def _maybe_twitch(self, t, needle, structure, tip) -> list[Event]:
        locus, d = self.nearest_locus(tip)
        # a draw every time the needle moves near a locus keeps the stream reproducible
        if locus is None or locus.structure != structure:
            return []
        p = self.twitch_probability(structure, d, locus.radius_mm)
        if p <= 0.0:
            return []
        if self.rng.random() >= p:
            return []
        st = self.muscle_state(structure)
        amp = st.supersensitivity * self.params.habituation_factor ** locus.twitches
        dur = self.params.twitch_duration_s * (0.5 + 0.5 * amp)
        locus.twitches += 1
        st.twitches += 1
        st.last_twitch_t, st.last_twitch_duration, st.last_twitch_amplitude = t, dur, amp
        before = st.supersensitivity
        st.supersensitivity = before * (1.0 - self.params.release_rate)
        name = self._name(structure)
        return [
            Event(t, "twitch", needle, structure, f"Local twitch response in the {name}.",
                  {"amplitude": amp, "duration_s": dur, "locus": locus.index, "distance_mm": d, "probability": p,
                   "count_at_locus": locus.twitches}),
            Event(t + dur, "release", needle, structure,
                  f"The {name} releases: {tightness_change(before, st.supersensitivity)}.",
                  {"before": before, "after": st.supersensitivity, "lengthening": st.lengthening}),
        ]

    def _name(self, sid: str) -> str:
        s = self.atlas.structures.get(sid)
        return s.name if s is not None else sid


def _connective_feel(structure: str | None) -> tuple[float, str]:
    """Fascia gives a pop as the needle goes through; ligaments and discs are firm and
    gritty; the epidural space is a sudden loss of resistance (build/fill.py names them)."""
    sid = structure or ""
    if sid.startswith(("ligamentum_flavum", "interspinous_ligament")):
        return 0.7, "firm: ligament"
    if sid.startswith("intervertebral_disc"):
        return 0.8, "firm and gritty: disc"
    if sid == "epidural_space":
        return 0.02, "sudden loss of resistance: epidural space"
    if sid == "thoracolumbar_fascia":
        return 0.45, "a pop and give: fascia"
    return 0.1, "soft: fat and fascia between the muscles"


"""A case run as a course of sessions: the patient's state carries over (docs/progress.md).

IMS is delivered as a course (typically eight to ten sessions). Between sessions each
supersensitive muscle keeps its supersensitivity (and with it its shortening,
tenderness and taut band); a session changes it:

* **segment treated well** (a paraspinal target reached at every affected segment and
  side, with a twitch in one of them when any is supersensitive): the release the
  session's twitches gave each muscle holds (``carry_over`` of it), and every
  supersensitive muscle of the segment falls by the *segmental release* ``r`` on top,
  with ``r`` chosen so that the most supersensitive muscle falls below
  ``resolved_below`` after ``expected_sessions`` such sessions
  (``s_max * (1 - r) ** expected_sessions = 0.9 * resolved_below``);
* **segment not treated** (wrong segment, or local needling only): only
  ``off_segment_carry_over`` of a twitch's release holds (the irritated root keeps
  sensitising the muscle), and ``untreated.change_per_session`` is added; after
  ``relapse.after_missed_sessions`` such sessions in a row a patient who had improved
  flares (``relapse.rise`` of each muscle's initial value comes back).

The patient's pain score, tender muscles, taut bands and range of motion follow from the
supersensitivities (:meth:`PatientState.findings`), so the examination changes from
session to session. Everything here is deterministic and GUI-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..engines.physiology import GRASP_THRESHOLD


class CourseError(ValueError):
    """A course call that cannot be carried out (the message says why)."""


@dataclass
class PatientState:
    """The patient at the start of a course session."""

    case: str
    session: int  # 1-based number of the session this state starts
    supersensitivity: dict[str, float]  # supersensitive muscle id -> value now
    initial: dict[str, float]  # the same at the start of the course
    missed: int = 0  # consecutive sessions without segmental treatment
    history: list[dict] = field(default_factory=list)  # one entry per finished session
    pain0: int = 7
    rom0: float = 60.0
    resolved_below: float = 0.2

    # -- what follows from the supersensitivities -------------------------------------
    @property
    def burden(self) -> float:
        """Mean supersensitivity relative to the course's start (1 at the start, 0 resolved)."""
        s0 = sum(self.initial.values())
        return sum(self.supersensitivity.values()) / s0 if s0 > 0 else 0.0

    @property
    def pain(self) -> int:
        """Pain score 0-10 (follows the burden)."""
        return int(round(self.pain0 * min(1.5, self.burden)))

    @property
    def rom_percent(self) -> float:
        """Range of motion, percent of normal (the restriction eases with the burden)."""
        return round(min(100.0, 100.0 - (100.0 - self.rom0) * self.burden), 1)

    @property
    def tender(self) -> list[str]:
        """Muscles tender with a taut band (the same threshold as palpation and grasp)."""
        return sorted(k for k, v in self.supersensitivity.items() if v >= GRASP_THRESHOLD)

    @property
    def resolved(self) -> bool:
        return all(v < self.resolved_below for v in self.supersensitivity.values())

    def findings(self, atlas=None) -> list[str]:
        """Sentences for the case brief: what the examination finds at this session."""
        def name(sid):
            st = atlas.structures.get(sid) if atlas is not None else None
            return st.name if st is not None else sid

        out = [f"Session {self.session}: pain {self.pain}/10 (at the first session {self.pain0}/10)."]
        t = self.tender
        out.append("Tender with a taut band: " + ", ".join(name(x) for x in t) + "." if t else
                   "No muscle is tender; no taut bands.")
        out.append(f"Range of motion {self.rom_percent:.0f}% of normal.")
        return out

    def changes_since_last(self, atlas=None) -> list[str]:
        """What changed since the previous session (for the brief of a continued course)."""
        if not self.history:
            return []
        prev = self.history[-1]
        out = [f"Pain {prev['pain_before']}/10 last time, {self.pain}/10 now."]
        before = set(prev.get("tender_before", []))
        now = set(self.tender)
        nm = (lambda s: atlas.structures[s].name if atlas is not None and s in atlas.structures else s)
        if before - now:
            out.append("No longer tender: " + ", ".join(nm(x) for x in sorted(before - now)) + ".")
        if now - before:
            out.append("Newly tender: " + ", ".join(nm(x) for x in sorted(now - before)) + ".")
        if prev.get("relapse"):
            out.append("The pain has flared up again since the last session.")
        return out

    def muscles(self, atlas=None) -> list[str]:
        """Each supersensitive muscle now against the start of the course, in words (for the
        brief of a continued course: which muscles the earlier sessions released), most
        released first."""
        from ..engines.wording import tightness_change

        def name(sid):
            st = atlas.structures.get(sid) if atlas is not None else None
            return st.name if st is not None else sid

        rows = sorted(self.supersensitivity.items(), key=lambda kv: kv[1] - self.initial.get(kv[0], kv[1]))
        out = []
        for sid, now in rows:
            start = self.initial.get(sid, now)
            released = " (released)" if now < self.resolved_below <= start else ""
            out.append(f"{name(sid)}: {tightness_change(start, now)} since the first session{released}")
        return out

    def to_dict(self) -> dict:
        return {"case": self.case, "session": self.session,
                "supersensitivity": dict(self.supersensitivity),  # exact: a replay must start from the same floats
                "initial": dict(self.initial), "missed": self.missed, "history": list(self.history),
                "pain0": self.pain0, "rom0": self.rom0, "resolved_below": self.resolved_below,
                "pain": self.pain, "rom_percent": self.rom_percent, "resolved": self.resolved}

    @classmethod
    def from_dict(cls, d: dict) -> "PatientState":
        return cls(str(d["case"]), int(d["session"]), {k: float(v) for k, v in d["supersensitivity"].items()},
                   {k: float(v) for k, v in d["initial"].items()}, int(d.get("missed", 0)),
                   list(d.get("history", [])), int(d.get("pain0", 7)), float(d.get("rom0", 60.0)),
                   float(d.get("resolved_below", 0.2)))


class Course:
    """The course rules of one scenario (its ``course:`` block)."""

    def __init__(self, scenario, atlas=None):
        if scenario.course is None:
            raise CourseError(f"the case {scenario.id!r} has no course (add a 'course:' block to run it as one)")
        self.scenario = scenario
        self.spec = scenario.course
        known = atlas.structures if atlas is not None else None
        self.initial = {m.structure: float(m.supersensitivity) for m in scenario.supersensitive_muscles
                        if known is None or m.structure in known}

    @property
    def sessions(self) -> int:
        return self.spec.sessions

    @property
    def segmental_release(self) -> float:
        """Fall per well-treated session (see the module's docstring)."""
        smax = max(self.initial.values(), default=0.0)
        goal = 0.9 * self.spec.resolved_below
        if smax <= goal:
            return 0.0
        return 1.0 - (goal / smax) ** (1.0 / self.spec.expected_sessions)

    def start(self) -> PatientState:
        return PatientState(self.scenario.id, 1, dict(self.initial), dict(self.initial), 0, [],
                            self.spec.initial_pain, self.spec.initial_rom_percent, self.spec.resolved_below)

    def expected_curve(self) -> list[float]:
        """The burden (1 at the start) at the start of each session under good treatment."""
        r = self.segmental_release
        s = dict(self.initial)
        s0 = sum(s.values()) or 1.0
        out = []
        for _ in range(self.sessions + 1):
            out.append(sum(s.values()) / s0)
            s = {k: v * (1 - r) for k, v in s.items()}
        return out

    def segment_treated(self, report) -> bool:
        """Did the session treat the segment: a paraspinal target at every affected segment and
        side, and a twitch in one when any of them is still supersensitive (a resolved muscle
        no longer twitches)?"""
        try:
            cov = report.metric("coverage").details[0]
        except (KeyError, IndexError):
            return False
        if not cov.get("paraspinal_groups") or cov.get("paraspinal_groups_missed"):
            return False
        reached = set(cov.get("paraspinal_reached", []))
        sens = [s for s in reached if s in report.muscles and report.muscles[s]["start"] >= self.spec.resolved_below]
        if not sens:
            return True
        return any(report.muscles[s]["twitches"] > 0 for s in sens)

    def advance(self, state: PatientState, report) -> PatientState:
        """The patient at the next session after ``report`` (a finished session that started in ``state``)."""
        if state.case != self.scenario.id:
            raise CourseError(f"this patient state belongs to {state.case!r}, not {self.scenario.id!r}")
        sp = self.spec
        treated = self.segment_treated(report)
        keep = sp.carry_over if treated else sp.off_segment_carry_over
        r = self.segmental_release if treated else 0.0
        nxt: dict[str, float] = {}
        for sid, s in state.supersensitivity.items():
            m = report.muscles.get(sid)
            end = float(m["end"]) if m is not None else s
            v = s - keep * max(0.0, s - end)
            if treated:
                v *= 1.0 - r
            else:
                v += sp.untreated.change_per_session
            nxt[sid] = min(1.0, max(0.0, v))
        missed = 0 if treated else state.missed + 1
        relapse = False
        if (not treated and sp.relapse is not None and missed >= sp.relapse.after_missed_sessions
                and state.burden < 0.999):
            relapse = True
            nxt = {k: min(self.initial.get(k, 1.0), v + sp.relapse.rise * self.initial.get(k, v)) for k, v in nxt.items()}
            missed = 0
        entry = {"session": state.session, "segment_treated": treated, "score": round(float(report.total), 2),
                 "passed": bool(report.passed), "pain_before": state.pain, "burden_before": round(state.burden, 4),
                 "tender_before": state.tender, "relapse": relapse}
        out = PatientState(state.case, state.session + 1, nxt, dict(state.initial), missed,
                           state.history + [entry], state.pain0, state.rom0, state.resolved_below)
        entry["pain_after"], entry["burden_after"] = out.pain, round(out.burden, 4)
        return out

    def finished(self, state: PatientState) -> bool:
        return state.session > self.sessions


__all__ = ["Course", "CourseError", "PatientState"]

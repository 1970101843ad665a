"""A training session: everything a trainee can do is a call on this object.

The window (or a script, or a replay) calls :class:`Session` methods; each call moves a
needle (a timed :class:`~imssim.core.engines.needle.Pose`), asks the traversal engine what the
needle is in, lets the physiology respond with :class:`~imssim.core.engines.physiology.Event` s,
feeds the scoring metrics, and appends the call, the pose and the events to the
recording. Replaying a recording calls the same methods with the recorded times and
arguments on a fresh session with the same seed, so it reproduces the events and score.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engines.needle import Needle, NeedleError, NeedleTrack, Placement, unit
from .palpation import PalpationResult, findings_at, under_fingers
from ..engines.physiology import Event, Physiology
from .quiz import QuizAnswerError, QuizResult, item_key, normalise_answer
from .quiz import grade as grade_answer
from .quiz import shown as shown_answer
from .recording import RecordingError, RecordingWriter, read_recording
from .scoring import Context, PoseSample, Report, Scorer
from .scoring.base import muscle_above_bone
from ..engines.wording import danger_text

MODES = ("practice", "quiz", "exam")


class SessionError(ValueError):
    """A call the session cannot carry out (the message says why)."""


@dataclass
class PalpationFinding:
    structure: str
    tender: bool
    taut_band: bool
    supersensitivity: float
    message: str


def watched_structures(scenario, atlas) -> set[str] | None:
    if scenario is None or scenario.safety.watch is None:
        return None
    out = set()
    for w in scenario.safety.watch:
        try:
            out.add(atlas.get(w).id)
        except Exception:
            out.add(w)
    return out


def _mode_settings(scenario, mode: str):
    if scenario is not None:
        return scenario.modes.settings(mode)
    from .scenario import ModeSettings

    p = mode == "practice"
    return ModeSettings(labels=p, hints=p, targets_shown=p, timer_s=900.0 if mode == "exam" else None)


class Session:
    """The one owner of a training attempt's state: the needles (and each needle's last
    trace), the palpations, the segment call, the quiz answers, the mode, the phase
    (running / finished), the events and the recording. A window only shows it."""

    def __init__(self, atlas, scenario=None, seed: int = 0, index=None, record_to=None, clock=None,
                 metric_names=None, header: dict | None = None, patient_state=None, mode: str | None = None,
                 stop_on_danger: bool = False):
        """``patient_state``: a course's :class:`~imssim.core.training.course.PatientState` (or its
        ``supersensitivity`` dict) the patient starts this session in; None: the case's start.
        ``mode``: practice, quiz or exam (default: the case's); ``stop_on_danger``: in
        practice mode a needle entering a danger structure can only be withdrawn, redirected
        or removed until it is out (the window's rule; kept in the recording's header)."""
        from .case import palpable_loci
        from ..engines.traversal import TissueIndex

        self.atlas = atlas
        self.scenario = scenario
        self.seed = int(seed)
        self.index = index if index is not None else TissueIndex(atlas)
        if scenario is not None:
            from .scenario import derive_targets

            self.targets = derive_targets(scenario, atlas)
        else:
            self.targets = []
        self.patient_state = patient_state
        start = getattr(patient_state, "supersensitivity", patient_state)
        self.physiology = Physiology(atlas, scenario, seed=self.seed, state=start)
        self.context = Context(atlas, scenario, self.targets, self.physiology.loci, watched_structures(scenario, atlas))
        self.scorer = Scorer(self.context, metric_names)
        self.needles: list[NeedleTrack] = []
        self.events: list[Event] = []
        self.samples: list[PoseSample] = []
        self.quiz_answers: dict[str, bool] = {}
        self.marked_segments: list[str] = []
        self.listeners: list = []  # callables(event)
        self._clock = clock or time.monotonic
        self._t0 = self._clock()
        self._last_t = 0.0
        self.finished: Report | None = None
        self.skipped: list[dict] = []  # replayed actions the session refused (as it did live)
        self.enforce_limits = True  # the case's needle limit (off for bulk grading)
        mode = mode or (scenario.modes.default if scenario is not None else "practice")
        if mode not in MODES:
            raise SessionError(f"unknown mode {mode!r}; modes are {', '.join(MODES)}")
        self.mode = mode
        self.stop_on_danger = bool(stop_on_danger)
        self.mode_changes: list[dict] = []  # {t, from, to}
        self.ended_by: str | None = None  # why the attempt ended other than Finish (e.g. a mode change)
        self.traces: dict = {}  # needle -> the traversal of its last move (the one trace per move)
        self.breached: dict[int, set] = {}  # needle -> danger structures it is in now
        self.entered: list[tuple] = []  # (structure, harm, depth) the last move entered
        self.stopped: dict[int, str] = {}  # needle -> why it is stopped (practice, danger)
        self.loci = palpable_loci(scenario, atlas)
        self.palpations: list[PalpationResult] = []
        self.quiz_results: dict[int, QuizResult] = {}
        self.recorder = None
        if record_to is not None:
            try:
                self.recorder = RecordingWriter(record_to, {
                    "scenario": scenario.id if scenario is not None else None,
                    "scenario_path": str(getattr(scenario, "path", "") or "") if scenario is not None else None,
                    "atlas": atlas.name if hasattr(atlas, "name") else None,
                    "seed": self.seed,
                    "mode": self.mode,
                    **({"stop_on_danger": True} if self.stop_on_danger else {}),
                    **({"patient_state": patient_state.to_dict() if hasattr(patient_state, "to_dict") else
                        {"supersensitivity": dict(start)}} if patient_state is not None else {}),
                    **(header or {})})
            except RecordingError as e:  # e.g. the file exists: never truncated
                raise SessionError(str(e)) from None

    @classmethod
    def from_case(cls, case, **kw) -> "Session":
        """A session on an opened :class:`~imssim.core.training.case.Case` (its atlas, scenario, index)."""
        return cls(case.atlas, case.scenario, index=case.index, **kw)

    # -- phase and mode -------------------------------------------------------------
    @property
    def phase(self) -> str:
        """"running" or "finished" (then nothing alters the attempt)."""
        return "running" if self.finished is None else "finished"

    @property
    def settings(self):
        """The case's settings for the current mode (labels, hints, targets_shown, timer_s)."""
        return _mode_settings(self.scenario, self.mode)

    @property
    def graded_mode(self) -> str:
        """The mode the attempt counts as in the progress store: "exam" when it was an exam
        at any moment (an exam left early is still an exam), else the mode at the finish."""
        if self.mode == "exam" or any("exam" in (c["from"], c["to"]) for c in self.mode_changes):
            return "exam"
        return self.mode

    def set_mode(self, mode: str, t=None) -> bool:
        """Change the mode (recorded). Leaving exam mode ends the attempt at a case (it is
        scored as it stands, ``ended_by`` says why; without a case there is no exam to end).
        Returns True when the attempt ended. After the attempt finished only the shown mode
        changes (nothing is recorded)."""
        if mode not in MODES:
            raise SessionError(f"unknown mode {mode!r}; modes are {', '.join(MODES)}")
        if mode == self.mode:
            return False
        if self.finished is not None:
            self.mode = mode
            return False
        old = self.mode
        t = self._act("mode", t, mode=mode, previous=old)
        self.mode = mode
        self.mode_changes.append({"t": t, "from": old, "to": mode})
        if old == "exam" and self.scenario is not None:
            self.finish(t, ended_by=f"the mode was changed from exam to {mode}")
            return True
        return False

    # -- time and recording ---------------------------------------------------------
    def now(self) -> float:
        return self._clock() - self._t0

    def _time(self, t) -> float:
        t = self.now() if t is None else float(t)
        if t < self._last_t:
            t = self._last_t  # never go back in time
        self._last_t = t
        return t

    def _record(self, rec: dict) -> None:
        if self.recorder is not None:
            self.recorder.write(rec)

    def _emit(self, events) -> None:
        for e in events:
            self.events.append(e)
            self.scorer.add_event(e)
            if self.recorder is not None:
                self._record({"type": "event", **e.to_dict()})
            for cb in self.listeners:
                cb(e)

    def _needle(self, i: int) -> NeedleTrack:
        if not isinstance(i, (int, np.integer)) or not 0 <= i < len(self.needles):
            raise SessionError(f"there is no needle {i!r} (needles: 0..{len(self.needles) - 1})")
        return self.needles[i]

    def _after_move(self, i: int, pose, moved_mm: float | None = None) -> PoseSample:
        tr = self.index.query(pose.entry, pose.direction, pose.depth)  # the one trace of this move
        self.traces[i] = tr
        now = {b.structure for b in tr.breaches}
        self.entered = [(b.structure, b.harm, float(b.depth)) for b in tr.breaches
                        if b.structure not in self.breached.get(i, set())]
        self.breached[i] = now  # leaving a danger structure and re-entering it is a new entry
        if not now:
            self.stopped.pop(i, None)
        elif self.entered and self.stop_on_danger and self.mode == "practice":
            sid, harm, depth = self.entered[0]
            self.stopped[i] = f"{self.atlas.structures[sid].name} at {depth:.0f} mm - {danger_text(harm)}"
        s = PoseSample.from_traversal(pose.t, i, pose.action, tr, self.atlas)
        s.length_mm = self.needles[i].needle.length_mm
        if tr.depth < pose.depth - 1e-6:  # bone stopped the needle: the track keeps the real depth
            trk = self.needles[i]
            trk.poses[-1] = type(pose)(pose.t, pose.entry, pose.direction, float(tr.depth), pose.action)
        self._record({"type": "pose", "needle": i, **self.needles[i].poses[-1].to_dict(),
                      "tip_structure": s.tip_structure, "bone": s.bone})
        return self._take_sample(s, moved_mm)

    def _take_sample(self, s: PoseSample, moved_mm: float | None = None) -> PoseSample:
        """The one path of a needle sample into the attempt: kept, scored, felt by the
        patient (live moves, replays and batch grading alike)."""
        self.samples.append(s)
        self.scorer.add_sample(s)
        self._emit(self.physiology.on_pose(s.t, s.needle, s.action, s.tip_structure, s.tip_kind, s.depth, s.tip,
                                           s.bone, s.breaches, moved_mm))
        return s

    def _act(self, name: str, t, **args):
        if self.finished is not None:
            raise SessionError("this attempt is finished and scored: start a new attempt")
        t = self._time(t)
        limit = self.scenario.safety.time_limit_s if self.scenario is not None else None
        if self.enforce_limits and limit is not None and name != "finish" and t > limit:
            raise SessionError(f"time is up: the case allows {limit:g} s; finish the attempt to see the score")
        self._record({"type": "action", "name": name, "t": t, **args})
        return t

    def _refused(self, name: str, t: float, err: Exception) -> SessionError:
        """Record that the action just recorded was refused (so a replay knows to skip it)."""
        msg = str(err)
        self._record({"type": "refused", "name": name, "t": t, "reason": msg})
        return SessionError(msg)

    # -- what a trainee can do ------------------------------------------------------
    def insert_needle(self, entry, direction, depth: float = 0.0, length_mm: float = 50.0, gauge_mm: float = 0.25,
                      t: float | None = None) -> int:
        """Puncture the skin at ``entry`` along ``direction`` (to ``depth`` mm); returns the needle number (0-based)."""
        try:
            needle = Needle(float(length_mm), float(gauge_mm))
            e = [float(x) for x in np.asarray(entry, float).reshape(3)]
            d = [float(x) for x in unit(direction)]
            depth = _number(depth, "depth")
        except (NeedleError, ValueError, TypeError) as err:
            raise SessionError(str(err)) from None
        if self.enforce_limits and self.scenario is not None and len(self.needles) >= self.scenario.safety.max_needles:
            raise SessionError(f"the case allows at most {self.scenario.safety.max_needles} needles")
        t = self._act("insert", t, entry=e, direction=d, depth=float(depth), length_mm=needle.length_mm,
                      gauge_mm=needle.gauge_mm)
        trk = NeedleTrack(needle)
        try:
            pose = trk.insert(t, e, d, float(depth))
        except NeedleError as err:
            raise self._refused("insert", t, err) from None
        self.needles.append(trk)
        i = len(self.needles) - 1
        self._after_move(i, pose)
        return i

    def insert_placement(self, placement: Placement, needle: Needle | None = None, t=None) -> int:
        needle = needle or Needle()
        return self.insert_needle(placement.entry, placement.direction, placement.depth, needle.length_mm,
                                  needle.gauge_mm, t)

    def _move(self, name, i, t, fn, moved_mm=None, **args) -> PoseSample:
        trk = self._needle(i)
        if i in self.stopped and name in ("advance", "piston") and self.finished is None:
            raise SessionError(f"Attempt stopped: {self.stopped[i]} Withdraw or remove the needle.")
        t = self._act(name, t, needle=i, **args)
        try:
            pose = fn(trk, t)
        except NeedleError as err:
            raise self._refused(name, t, f"needle {i}: {err}") from None
        return self._after_move(i, pose, moved_mm)

    def advance(self, i: int, mm: float, t=None) -> PoseSample:
        mm = _number(mm, "mm")
        return self._move("advance", i, t, lambda k, t: k.advance(t, mm), mm=mm)

    def withdraw(self, i: int, mm: float, t=None) -> PoseSample:
        mm = _number(mm, "mm")
        return self._move("withdraw", i, t, lambda k, t: k.withdraw(t, mm), mm=mm)

    def set_depth(self, i: int, depth: float, t=None) -> PoseSample:
        depth = _number(depth, "depth")
        return self._move("set_depth", i, t, lambda k, t: k.set_depth(t, depth), depth=depth)

    def redirect(self, i: int, direction, t=None) -> PoseSample:
        """Point needle ``i`` along ``direction``; a zero or non-finite direction raises SessionError."""
        try:
            d = [float(x) for x in unit(direction)]
        except (NeedleError, ValueError, TypeError) as err:
            raise SessionError(f"needle {i}: direction: {err}") from None
        return self._move("redirect", i, t, lambda k, t: k.redirect(t, d), direction=d)

    def piston(self, i: int, amplitude_mm: float = 3.0, t=None) -> PoseSample:
        """Withdraw a little and advance again (the movement that provokes twitches)."""
        a = _number(amplitude_mm, "amplitude_mm")

        def fn(k, t):
            k.withdraw(t, a)
            p = k.advance(t, a)
            return type(p)(p.t, p.entry, p.direction, p.depth, "piston")

        return self._move("piston", i, t, lambda k, t: _replace_last(k, fn(k, t)), moved_mm=a, amplitude_mm=a)

    def remove(self, i: int, t=None) -> PoseSample:
        return self._move("remove", i, t, lambda k, t: k.remove(t))

    def palpate(self, structure: str, t=None, point=None, normal=None) -> PalpationFinding:
        """Press on the skin over ``structure``; ``point``/``normal`` (where on the skin, the
        skin's outward normal) are recorded so a resumed session can show the marker again."""
        try:
            sid = self.atlas.get(structure).id
        except Exception as e:
            raise SessionError(str(e)) from None
        where = {}
        if point is not None:
            where["point"] = [round(float(x), 3) for x in point]
        if normal is not None:
            where["normal"] = [round(float(x), 5) for x in normal]
        t = self._act("palpate", t, structure=sid, **where)
        f = self.feel(sid)
        if point is not None and normal is not None:
            self._keep_palpation(point, normal, t, sid, f)
        self._emit([Event(t, "palpation", None, sid, f.message, {"supersensitivity": f.supersensitivity,
                                                                  "tender": f.tender})])
        return f

    def palpate_at(self, point, normal, t=None) -> PalpationResult:
        """Press on the skin at ``point`` (``normal``: the skin's outward normal): the case's
        tender points and taut bands under the fingers, and the muscle under them, which is
        palpated (recorded, with where). Kept in :attr:`palpations`."""
        if self.finished is not None:
            raise SessionError("this attempt is finished and scored: start a new attempt")
        point, normal = np.asarray(point, float), np.asarray(normal, float)
        under = under_fingers(self.index, point, normal)
        muscle = next((sid for sid in under if self.atlas.structures[sid].kind == "muscle"), None)
        if muscle is not None:
            self.palpate(muscle, t, point, normal)
            return self.palpations[-1]
        return self._keep_palpation(point, normal, self._time(t), None, None, under)

    def _keep_palpation(self, point, normal, t, muscle, feel, under=None) -> PalpationResult:
        point, normal = np.asarray(point, float), np.asarray(normal, float)
        if under is None:
            under = under_fingers(self.index, point, normal)
        found = findings_at(self.loci, point, normal, under)
        if feel is not None and feel.tender and not found:
            found.append({"kind": "taut_band" if feel.taut_band else "tender_point", "structure": muscle,
                          "text": "Tender, with a taut, ropy band; the patient flinches."})
        r = PalpationResult(point, normal, found, muscle, t)
        self.palpations.append(r)
        return r

    def feel(self, structure: str) -> PalpationFinding:
        """How ``structure`` feels under the fingers (nothing recorded: see :meth:`palpate`)."""
        sid = self.atlas.get(structure).id
        s = self.physiology.supersensitivity(sid)
        name = self.atlas.structures[sid].name
        tender = s >= 0.2
        msg = (f"The {name} is tender, with a taut, ropy band." if tender else f"The {name} feels normal.")
        return PalpationFinding(sid, tender, tender, s, msg)

    def mark_segments(self, segments, t=None) -> list[str]:
        """The trainee's call on the involved spinal segment(s) (replaces the earlier call)."""
        from ..model.atlas import segment_index

        segs = [str(x) for x in segments]
        for g in segs:
            try:
                segment_index(g)
            except Exception as e:
                raise SessionError(f"segment {g!r}: {e}") from None
        self._act("mark", t, segments=segs)
        self.marked_segments = segs
        return segs

    def answer_quiz(self, item, answer, t=None) -> bool:
        if self.scenario is None or not self.scenario.quiz:
            raise SessionError("this case has no quiz")
        items = self.scenario.quiz
        key = item
        if isinstance(item, int) and not isinstance(item, bool):
            if not 0 <= item < len(items):
                raise SessionError(f"no quiz item {item}")
            q = items[item]
        else:
            q = next((x for x in items if x.id == item), None)
            if q is None:
                raise SessionError(f"no quiz item {item!r}")
        try:
            given = normalise_answer(q, answer)
        except QuizAnswerError as e:
            raise SessionError(f"quiz item {item!r}: {e}") from None
        t = self._act("answer", t, item=key, answer=given if given is not None else "")
        ok = grade_answer(q, given, self.atlas)  # the one rule: the panel shows this verdict
        k = items.index(q)
        self.quiz_answers[item_key(items, q)] = ok
        self.quiz_results[k] = QuizResult(k, item_key(items, q), given, shown_answer(q, given, self.atlas), ok,
                                          q.explanation)
        self._emit([Event(t, "quiz_answer", None, None, ("Right. " if ok else "Not quite. ") + q.explanation,
                          {"item": str(q.id or items.index(q)), "correct": ok})])
        return ok

    def tick(self, t=None) -> list[Event]:
        """Let time pass (scheduled responses such as breathlessness)."""
        t = self._time(t)
        ev = self.physiology.tick(t)
        self._emit(ev)
        return ev

    def muscle_state(self, structure: str):
        return self.physiology.muscle_state(self.atlas.get(structure).id)

    def finish(self, t=None, ended_by: str | None = None) -> Report:
        """End and score the attempt (once; later calls return the same report). The
        reported total time is the session's time at the finish."""
        if self.finished is not None:
            return self.finished
        t = self._act("finish", t, **({"ended_by": ended_by} if ended_by else {}))
        self.ended_by = ended_by
        self.context.t_end = t
        self._emit(self.physiology.flush())
        quiz = None
        if self.scenario is not None and self.scenario.quiz and (self.quiz_answers or self.scenario.scoring.quiz_weight > 0):
            quiz = {"items": len(self.scenario.quiz), "correct": sum(self.quiz_answers.values()),
                    "answers": dict(self.quiz_answers)}
        self.finished = self.scorer.finish(quiz)
        self.finished.muscles = {sid: {"start": round(m.initial, 6), "end": round(m.supersensitivity, 6),
                                       "twitches": m.twitches}
                                 for sid, m in self.physiology.muscles.items()
                                 if self.scenario is not None and any(x.structure == sid for x in
                                                                      self.scenario.supersensitive_muscles)}
        if self.scenario is not None and self.marked_segments:
            self.finished.segment_call = segment_call(self.marked_segments, self.scenario.diagnosis.segments)
        self._record({"type": "report", "t": t, "total": round(self.finished.total, 4), "passed": self.finished.passed,
                      "mode": self.mode, **({"ended_by": ended_by} if ended_by else {})})
        if self.recorder is not None:
            self.recorder.close()
        return self.finished

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()

    # -- replay ---------------------------------------------------------------------
    @classmethod
    def replay(cls, recording, atlas, scenario=None, index=None, record_to=None, stop_at_finish: bool = False,
               header: dict | None = None, patient_state=None) -> "Session":
        """Run a recording's actions through a fresh session with the same seed (and the
        patient state its header names, else ``patient_state``).

        The one path for ``imssim replay``/``score`` and for resuming an interrupted session
        (:func:`resume_session`). Every action is checked first (a damaged value raises
        :class:`~imssim.core.training.recording.RecordingError` naming the file, line and field); an
        action the session refuses is skipped: it was refused the same way live (actions
        are recorded before they run, and newer recordings mark the refusal with a
        ``refused`` record). With ``record_to`` the new session records as it replays.
        """
        rec = recording if hasattr(recording, "actions") else read_recording(recording)
        ps = rec.header.get("patient_state")
        if isinstance(ps, dict) and ps:
            patient_state = ps.get("supersensitivity")
            if all(k in ps for k in ("case", "session", "initial")):  # a course's whole state: keep it
                from .course import PatientState

                try:
                    patient_state = PatientState.from_dict(ps)
                except (KeyError, TypeError, ValueError, AttributeError):
                    pass
        for a in rec.actions:
            check_action(a, rec)
        mode = rec.header.get("mode")
        s = cls(atlas, scenario, seed=int(rec.header.get("seed", 0)), index=index, record_to=record_to, header=header,
                patient_state=patient_state, mode=mode if mode in MODES else None,
                stop_on_danger=bool(rec.header.get("stop_on_danger", False)))
        try:
            for a in rec.actions:
                if stop_at_finish and a.get("name") == "finish":
                    break
                try:
                    apply_action(s, a)
                except SessionError:
                    s.skipped.append(a)  # refused live the same way: skip it
        except BaseException:
            if s.recorder is not None:
                s.recorder.discard()
            raise
        return s


def resume_session(recording, atlas, scenario, record_to, index=None) -> "Session":
    """Continue an interrupted session: replay ``recording`` (up to a ``finish``) into a new
    session with the same seed that keeps recording to ``record_to``.

    The new recording is written to a hidden ``.partial`` file beside ``record_to`` and
    moved into place only once the replay succeeded; on any failure nothing is left
    behind and the error is raised (RecordingError for a damaged recording).
    """
    rec = recording if hasattr(recording, "actions") else read_recording(recording)
    record_to = Path(record_to)
    if record_to.exists():
        raise SessionError(f"{record_to}: already exists; a recording is never overwritten")
    tmp = record_to.with_name(f".{record_to.name}.partial")
    if tmp.exists():
        tmp.unlink()  # left by a resume that was killed: it was never moved into place
    s = Session.replay(rec, atlas, scenario, index=index, record_to=tmp, stop_at_finish=True,
                       header={"resumed_from": str(rec.path)})
    try:
        s.recorder.rename(record_to)
    except (OSError, RecordingError) as e:
        s.recorder.discard()
        raise SessionError(f"{record_to}: cannot write the resumed recording: {e}") from None
    return s


def segment_call(marked, case) -> dict:
    """How the trainee's call on the involved segments compares with the case's (reported,
    not weighted: the needles' segments carry the score)."""
    marked, case = [str(x) for x in marked], [str(x) for x in case]
    hit, extra = [g for g in case if g in marked], [g for g in marked if g not in case]
    right = bool(hit) and not extra and len(hit) == len(case)
    if right:
        sent = f"Segment call: {', '.join(marked)}, as in this case."
    else:
        sent = (f"Segment call: you marked {', '.join(marked)}; this case's segment"
                f"{'s are' if len(case) > 1 else ' is'} {', '.join(case)}.")
    return {"marked": marked, "case": case, "right": right, "sentence": sent}


ACTIONS = ("insert", "advance", "withdraw", "set_depth", "redirect", "piston", "remove", "palpate", "mark", "answer",
           "mode", "finish")


def _number(v, what: str) -> float:
    if isinstance(v, bool):
        raise SessionError(f"{what}: expected a number, got {v!r}")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise SessionError(f"{what}: expected a number, got {v!r}") from None
    if not np.isfinite(f):
        raise SessionError(f"{what}: expected a finite number, got {v!r}")
    return f


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))


def _is_vec(v) -> bool:
    return isinstance(v, list) and len(v) == 3 and all(_is_num(x) for x in v)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_text(v) -> bool:
    return isinstance(v, str) and len(v) <= 200


#: Each action's fields: name -> (check, required).
ACTION_FIELDS = {
    "insert": {"entry": (_is_vec, True), "direction": (_is_vec, True), "depth": (_is_num, False),
               "length_mm": (_is_num, False), "gauge_mm": (_is_num, False)},
    "advance": {"needle": (_is_int, True), "mm": (_is_num, True)},
    "withdraw": {"needle": (_is_int, True), "mm": (_is_num, True)},
    "set_depth": {"needle": (_is_int, True), "depth": (_is_num, True)},
    "redirect": {"needle": (_is_int, True), "direction": (_is_vec, True)},
    "piston": {"needle": (_is_int, True), "amplitude_mm": (_is_num, False)},
    "remove": {"needle": (_is_int, True)},
    "palpate": {"structure": (_is_text, True), "point": (_is_vec, False), "normal": (_is_vec, False)},
    "mark": {"segments": (lambda v: isinstance(v, list) and all(_is_text(x) for x in v), True)},
    "answer": {"item": (lambda v: _is_int(v) or _is_text(v), True),
               "answer": (lambda v: v is None or _is_text(v) or _is_int(v)
                          or (isinstance(v, list) and len(v) <= 100 and all(_is_text(x) or _is_int(x) for x in v)),
                          True)},
    "mode": {"mode": (lambda v: v in MODES, True), "previous": (lambda v: v is None or v in MODES, False)},
    "finish": {"ended_by": (_is_text, False)},
}


def check_action(a: dict, rec=None) -> None:
    """Raise RecordingError (file, line, field) unless ``a`` is a well-formed action record."""
    where = ""
    if rec is not None:
        line = rec.line_of(a) if hasattr(rec, "line_of") else None
        where = f"{rec.path}: line {line}: " if line else f"{rec.path}: "
    name = a.get("name")
    if name not in ACTION_FIELDS:
        raise RecordingError(f"{where}field name: unknown action {name!r}")
    if not _is_num(a.get("t")) or a["t"] < 0:
        raise RecordingError(f"{where}field t: expected a time in seconds, got {a.get('t')!r}")
    for k, (ok, required) in ACTION_FIELDS[name].items():
        if k not in a:
            if required:
                raise RecordingError(f"{where}action {name}: missing field {k!r}")
            continue
        if not ok(a[k]):
            raise RecordingError(f"{where}action {name}: field {k}: unexpected value {a[k]!r}")


def _replace_last(track: NeedleTrack, pose):
    track.poses[-2:] = [pose]  # a piston is one movement: keep a single pose
    return pose


def apply_action(s: Session, a: dict):
    name, t = a.get("name"), a.get("t")
    try:
        if name == "insert":
            return s.insert_needle(a["entry"], a["direction"], a.get("depth", 0.0), a.get("length_mm", 50.0),
                                   a.get("gauge_mm", 0.25), t)
        if name == "advance":
            return s.advance(a["needle"], a["mm"], t)
        if name == "withdraw":
            return s.withdraw(a["needle"], a["mm"], t)
        if name == "set_depth":
            return s.set_depth(a["needle"], a["depth"], t)
        if name == "redirect":
            return s.redirect(a["needle"], a["direction"], t)
        if name == "piston":
            return s.piston(a["needle"], a.get("amplitude_mm", 3.0), t)
        if name == "remove":
            return s.remove(a["needle"], t)
        if name == "palpate":
            return s.palpate(a["structure"], t, a.get("point"), a.get("normal"))
        if name == "mark":
            return s.mark_segments(a["segments"], t)
        if name == "answer":
            return s.answer_quiz(a["item"], a["answer"], t)
        if name == "mode":
            return s.set_mode(a["mode"], t)
        if name == "finish":
            return s.finish(t, a.get("ended_by"))
    except KeyError as e:
        raise SessionError(f"action {name!r} at t={t}: missing field {e}") from None
    raise SessionError(f"unknown action {name!r} at t={t}")


# -- headless grading of placements --------------------------------------------------
def grade_placements(atlas, scenario, specs, index=None, seed: int = 0, batch: bool = True,
                     patient_state=None, return_session: bool = False):
    """Grade a list of NeedleSpec (a placements file) without the window.

    ``batch=True`` traces all needles in one vectorised pass (``TissueIndex.query_batch``)
    and measures danger clearance along the shaft (``TissueIndex.shaft_clearances``); ``batch=False`` is the naive way: one full
    session call per needle (``TissueIndex.query`` each). ``patient_state``: a course's state
    the patient starts in; ``return_session``: return (report, session).
    """
    if not batch:
        s = Session(atlas, scenario, seed=seed, index=index, patient_state=patient_state)
        s.enforce_limits = False
        for k, sp in enumerate(specs):
            s.insert_placement(sp.placement, sp.needle, t=sp.t if sp.t is not None else float(k))
        r = s.finish()
        return (r, s) if return_session else r
    from ..engines.traversal import Interval, TissueIndex

    index = index if index is not None else TissueIndex(atlas)
    s = Session(atlas, scenario, seed=seed, index=index, patient_state=patient_state)
    n = len(specs)
    E = np.array([sp.placement.entry for sp in specs], float).reshape(n, 3)
    D = np.array([sp.placement.direction for sp in specs], float).reshape(n, 3)
    dep = np.array([sp.placement.depth for sp in specs], float)
    br = index.query_batch(E, D, dep, intervals=True)
    ids, kinds, harm = index.ids, index.kinds, index.harm
    atlas_structs = atlas.structures
    # the report keeps each danger structure's closest approach over all needles (the
    # min_clearance metric), so that is what is measured: exactly, once per structure; each
    # sample carries the closest approaches its needle made (a needle sample of the live
    # session carries every clearance within 100 mm)
    dnames = index.danger_ids
    drow = {index._sidx[nm]: r for r, nm in enumerate(dnames)}
    dharm = [harm[index._sidx[nm]] for nm in dnames]
    best, who = index.closest_approaches(E, D, br.depth)
    best, who = best.tolist(), who.tolist()
    tip_l = br.tip_structure.tolist()
    bone_l = br.bone_contact.tolist()
    depth_l = br.depth.tolist()
    nb_l = br.n_breaches.tolist()
    cnt_l = br.iv_count.tolist()
    # the session's clock never goes back (Session._time), here as in the per-needle way
    times = np.maximum.accumulate([float(sp.t) if sp.t is not None else float(k)
                                   for k, sp in enumerate(specs)]).tolist() if n else []
    breaches_of: dict[int, list] = {}
    above: dict[int, str | None] = {}
    for k in range(n):
        need_iv = nb_l[k] > 0 or (tip_l[k] < 0 and bone_l[k] >= 0)
        if not need_iv:
            continue
        if cnt_l[k] < 0:  # more intervals than the batch returns: this needle's own query
            tr = index.query(E[k], D[k], depth_l[k])
            ivs = tr.intervals
        else:
            c = cnt_l[k]
            ivs = [Interval(ids[si], str(kinds[si]), a, b, True, f) for si, a, b, f in
                   zip(br.iv_structure[k, :c].tolist(), br.iv_entry[k, :c].tolist(), br.iv_exit[k, :c].tolist(),
                       br.iv_filled[k, :c].tolist())]
        if nb_l[k] > 0:
            seen: set[str] = set()
            breaches_of[k] = [(iv.structure, harm[index._sidx[iv.structure]], iv.entry_depth) for iv in ivs
                              if harm[index._sidx[iv.structure]] and not (iv.structure in seen or seen.add(iv.structure))]
        if tip_l[k] < 0 and bone_l[k] >= 0:
            # resting on bone with no structure at the tip: the muscle just above the bone
            # (as PoseSample.from_traversal)
            above[k] = muscle_above_bone(ivs, depth_l[k], atlas)
    if breaches_of:
        # a needle's shaft clearance to what it entered is 0 (where its mesh is within range)
        ks = sorted(breaches_of)
        cl = index.shaft_clearances(E[ks], D[ks], br.depth[ks])
        for col, k in enumerate(ks):
            for sid, _h, _d in breaches_of[k]:
                r = drow.get(index._sidx[sid])
                if r is not None and np.isfinite(cl[r, col]) and (best[r] > 0.0 or k < who[r]):
                    best[r], who[r] = 0.0, k
    mine: dict[int, dict] = {}
    for r, k in enumerate(who):
        if k >= 0:
            mine.setdefault(k, {})[dnames[r]] = (dharm[r], best[r])
    empty: dict = {}
    for k in range(n):
        ts = tip_l[k]
        if k in above:
            tip_id = above[k]
            tip_kind = atlas_structs[tip_id].kind if tip_id else None
        else:
            tip_id = ids[ts] if ts >= 0 else None
            tip_kind = str(kinds[ts]) if ts >= 0 else None
        bone = ids[bone_l[k]] if bone_l[k] >= 0 else None
        smp = PoseSample(times[k], k, "insert", E[k], D[k], depth_l[k], br.tip[k], tip_id, tip_kind, [], bone,
                         breaches_of.get(k, []), mine.get(k, empty), specs[k].needle.length_mm)
        s._take_sample(smp)
    # finished when the last needle was placed (as the per-needle way, whose clock is then there)
    r = s.finish(t=times[-1] if n else None)
    return (r, s) if return_session else r


__all__ = ["Session", "SessionError", "PalpationFinding", "grade_placements", "apply_action", "check_action",
           "resume_session", "resume_case", "MODES", "Path"]


def resume_case(recording, bodies, seed_suffix: str = "-resumed"):
    """Continue an interrupted recording in a new one: the case it names opened the one
    way (:func:`~imssim.core.training.case.open_case`, the patient's body build), replayed by
    :func:`resume_session` into a new file in the recordings folder. Returns (case, session);
    on any failure nothing is left behind (RecordingError, ScenarioError, SessionError)."""
    from .case import open_case
    from .recording import new_recording_path

    rec = recording if hasattr(recording, "actions") else read_recording(recording)
    h = rec.header
    src = h.get("scenario_path") or h.get("scenario")
    if not src or not isinstance(src, str):
        raise SessionError(f"{rec.path}: the recording names no scenario")
    case = open_case(src, bodies)
    path = new_recording_path(case.scenario.id, int(h.get("seed", 0)), seed_suffix)
    return case, resume_session(rec, case.atlas, case.scenario, path, index=case.index)

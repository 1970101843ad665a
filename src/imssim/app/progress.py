"""The trainee's progress in the window (no Qt): who the trainee is, each finished attempt
saved in the progress store, the next session of a course, and what the Progress tab shows.

The core does the work (:mod:`imssim.core.training.progress`: the store, saving, the reports'
plots; :mod:`imssim.core.training.course`: the patient between sessions); this class calls it for
the window and tells the views what happened with the events of :mod:`imssim.app.events`.

Nothing finished is lost: an attempt finished while the database cannot be reached goes
to a pending file (saved the next time a store opens on that database, or with
:meth:`ProgressDesk.retry`); one finished before the trainee said who they are waits in
the window until they do (:meth:`ProgressDesk.set_trainee`). The recording is on disk in
any case.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.training.course import Course, CourseError, PatientState
from ..core.training.progress import (ProgressError, ProgressStore, ProgressUnavailable, configured_url, course_state_for,
                             last_course_case, mask_url, pending_for, remember_trainee, remembered_trainee,
                             save_finished)
from . import events as ev

NO_TRAINEE_TEXT = ("Not saved to your progress yet: say who you are (File > Trainee..., or the Progress tab); "
                   "the attempt waits in this window until then.")


class NeedTrainee(ProgressError):
    """The call needs to know who the trainee is (ask, then call again)."""


@dataclass
class ProgressPage:
    """What the Progress tab shows (plain data; the figures are PNG bytes)."""

    trainee: str | None
    db: str
    case: str | None = None  # the case the page is filtered on (None: every case)
    cases: list[str] = field(default_factory=list)  # the cases the trainee has sessions of
    sessions: list[dict] = field(default_factory=list)  # report.student_data(rows)["sessions"]
    summary: str = ""
    figures: list[tuple[str, bytes]] = field(default_factory=list)
    course: str | None = None  # where the trainee's latest course stands
    waiting: int = 0  # finished attempts not in the store yet (pending files, or waiting for a name)
    error: str | None = None  # the database could not be read (the text names it)


class ProgressDesk:
    """The window's link to the progress store. ``enabled`` False (``--screenshot``): nothing is saved."""

    def __init__(self, controller, url: str | None = None, enabled: bool = True):
        self.controller = controller
        self._url = url
        self.enabled = enabled
        self.trainee: str | None = remembered_trainee() if enabled else None
        self.kept: list = []  # finished sessions waiting for the trainee's name
        self.offline: dict[tuple[str, str], PatientState] = {}  # (trainee, case) -> next patient, not in the store
        self.last_saved = None  # the latest core.progress.Saved
        self._store: ProgressStore | None = None
        controller.listeners.append(self._on_event)

    # -- where ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._url or configured_url()

    @property
    def db(self) -> str:
        """The database, as it is named to the trainee (password masked)."""
        return mask_url(self.url)

    def _open(self) -> ProgressStore:
        """The store (opened once; opening saves the pending records first)."""
        if self._store is None:
            self._store = ProgressStore(self.url)
        return self._store

    def _drop(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def close(self) -> None:
        self._drop()

    def waiting(self) -> int:
        """Finished attempts not in the store yet."""
        try:
            n = len(pending_for(self.url))
        except OSError:
            n = 0
        return n + len(self.kept)

    # -- who -----------------------------------------------------------------------------
    def set_trainee(self, name: str) -> None:
        """Say who the trainee is (remembered in imssim's settings); the attempts that waited
        for a name are saved for them now."""
        name = (name or "").strip()
        if not name:
            raise ProgressError("a trainee needs a name or id")
        try:
            remember_trainee(name)
        except OSError:
            pass  # not remembered next time; this window knows
        self.trainee = name
        self.controller.emit(ev.TraineeChanged(name))
        kept, self.kept = self.kept, []
        for s in kept:
            self._save(s)

    # -- saving ------------------------------------------------------------------------------
    def _on_event(self, e) -> None:
        if isinstance(e, ev.Finished):
            self.save_attempt(self.controller.session)

    def save_attempt(self, session):
        """Save a finished attempt at a case for the trainee (a course session moves the course
        on). Returns the core's ``Saved`` (``row_id`` None: kept pending), or None when nothing
        was saved (no case, saving off, or no trainee yet: then it waits in :attr:`kept`)."""
        if not self.enabled or session.scenario is None or session.finished is None:
            return None
        if getattr(session, "preview", False):
            return None  # an author trying a case (Author mode's Preview as student) is not a trainee's attempt
        if self.trainee is None:
            if session not in self.kept:
                self.kept.append(session)
            self.controller.emit(ev.ProgressNotSaved(NO_TRAINEE_TEXT, None, "this window"))
            return None
        return self._save(session)

    def _save(self, session):
        state = session.patient_state if isinstance(session.patient_state, PatientState) else None
        if state is not None and state.case != session.scenario.id:
            state = None
        try:
            saved = save_finished(session, self.trainee, store=self._store, url=self.url, mode=session.graded_mode,
                                  state=state, atlas=session.atlas, keep_pending_on_error=False)
        except ProgressError as e:  # not a connection problem (e.g. a database refusing the write)
            self._drop()
            if session not in self.kept:
                self.kept.append(session)
            self.controller.emit(ev.ProgressNotSaved(f"{e}; the attempt waits in this window", self.db, "this window"))
            return None
        self.last_saved = saved
        case = session.scenario.id
        if saved.row_id is None:  # the database could not be reached: kept in a pending file
            self._drop()
            if saved.next_state is not None:
                self.offline[(self.trainee, case)] = saved.next_state  # "Continue course" still works
            self.controller.emit(ev.ProgressNotSaved(saved.error or "not saved", self.db, "pending"))
            return saved
        self.offline.pop((self.trainee, case), None)
        nxt = saved.next_state
        self.controller.emit(ev.ProgressSaved(self.trainee, self.db, 1, case, saved.record.course_session,
                                              None if nxt is None else nxt.session))
        return saved

    def retry(self) -> int:
        """Save what waits (pending files; attempts waiting for a name once there is one).
        Returns how many were saved; raises ProgressUnavailable/ProgressError naming the database."""
        before = len(pending_for(self.url))
        self._drop()
        try:
            self._open()  # opening saves the pending records first
        except ProgressError:
            self._drop()
            raise
        n = before - len(pending_for(self.url))
        if self.trainee is not None and self.kept:
            kept, self.kept = self.kept, []
            for s in kept:
                if self._save(s) is not None and self.last_saved.row_id is not None:
                    n += 1
        if n:
            self.controller.emit(ev.ProgressSaved(self.trainee or "", self.db, n))
        return n

    # -- reading -------------------------------------------------------------------------------
    def rows(self, case: str | None = None) -> list[dict]:
        """The trainee's saved sessions, oldest first (the store's summary rows)."""
        if self.trainee is None:
            raise NeedTrainee("say who you are to see your progress")
        try:
            return self._open().summary_rows(self.trainee, case)
        except ProgressError:
            self._drop()
            raise
        except Exception as e:  # noqa: BLE001 - the connection went away between calls
            self._drop()
            raise ProgressUnavailable(f"cannot read the progress database {self.db}: {str(e).splitlines()[0]}") \
                from None

    def page(self, case: str | None = None, figures: bool = True) -> ProgressPage:
        """What the Progress tab shows: the table, the report's plots, where the course stands."""
        from ..core.training.progress import report

        p = ProgressPage(self.trainee, self.db, case, waiting=self.waiting())
        if self.trainee is None:
            p.summary = "Say who you are to keep and see your progress."
            return p
        try:
            every = self.rows(None)
        except ProgressError as e:
            p.error = str(e)
            return p
        p.cases = sorted({r["case_id"] for r in every})
        rows = [r for r in every if case is None or r["case_id"] == case]
        d = report.student_data(rows)
        p.sessions = d["sessions"]
        p.summary = (f"{d['attempts']} session(s), {d['passed']} passed"
                     + (f"; best {d['best']:.0f}%, last {d['last']:.0f}%" if d["attempts"] else ""))
        cs = [r for r in every if r.get("course_session") and r.get("patient")]
        if cs:
            last = cs[-1]
            after = (last["patient"] or {}).get("after") or {}
            n = (last["patient"] or {}).get("sessions")
            nxt = after.get("session")
            if n and nxt and nxt > n:
                p.course = f"Your course of {last['case_id']} is complete ({n} sessions)."
            else:
                p.course = (f"Your course of {last['case_id']}: session {nxt} of {n} is next; "
                            f"the patient's pain was {after.get('pain')}/10 after the last one"
                            + (" (resolved)." if after.get("resolved") else "."))
        if figures and rows:
            atlas = self.controller.atlas
            names = {s.id: s.name for s in atlas if s.kind == "muscle"}
            p.figures = report.student_figures(rows, names)
        return p

    # -- the course --------------------------------------------------------------------------
    def course_case(self) -> str:
        """Which course "Continue course" continues: the open case when it has a course, else
        the trainee's latest course (raises CourseError when there is none)."""
        sc = self.controller.scenario
        if sc is not None and sc.course is not None:
            return str(getattr(sc, "path", None) or sc.id)
        try:
            cid = last_course_case(self._open(), self.trainee)
        except ProgressUnavailable:
            self._drop()
            mine = [c for (who, c) in self.offline if who == self.trainee]
            if mine:
                return mine[-1]
            raise
        if cid is None:
            raise CourseError("No course started yet: open a case that runs as a course "
                              f"({', '.join(course_cases()) or 'none in the library'}) and choose Continue course.")
        return cid

    def continue_course(self, scenario=None) -> ev.CourseContinued:
        """Open the trainee's next course session: the case with the patient as the saved
        sessions left them (which muscles released, pain, tenderness). When the database
        cannot be reached, a state this window kept continues it (said); otherwise the error
        names the database and nothing changes. Raises NeedTrainee, CourseError,
        ProgressError, ScenarioError."""
        if self.trainee is None:
            raise NeedTrainee("say who you are first: the course is kept under your name")
        case = self.controller.open_case(scenario if scenario is not None else self.course_case())
        sc = case.scenario
        if sc.course is None:
            raise CourseError(f"the case {sc.id!r} has no course (add a 'course:' block to run it as one)")
        offline = False
        restarted = False
        try:
            store = self._open()
            state = course_state_for(store, sc, self.trainee, case.atlas)
            last = store.last_patient(self.trainee, sc.id)
            restarted = last is not None and state.session == 1
        except ProgressUnavailable:
            self._drop()
            state = self.offline.get((self.trainee, sc.id))
            if state is None:
                raise
            offline = True
        if Course(sc, case.atlas).finished(state):
            state = Course(sc, case.atlas).start()
        self.controller.start_case(case, patient_state=state)
        lines = ([f"Your last course of this case was complete: a new course starts."] if restarted else [])
        lines += state.findings(case.atlas) + state.changes_since_last(case.atlas)
        if state.session > 1:
            lines += state.muscles(case.atlas)
        e = ev.CourseContinued(sc.id, state.session, sc.course.sessions, tuple(lines), offline)
        self.controller.emit(e)
        if offline:
            self.controller.say(f"The progress database {self.db} cannot be reached: the course continues from "
                                "the session this window kept.", "warn")
        return e


def course_cases() -> list[str]:
    """The library's cases that run as a course."""
    from ..core.training.scenario import library, load_scenario

    out = []
    for p in library():
        try:
            if load_scenario(p).course is not None:
                out.append(p.stem)
        except Exception:  # noqa: BLE001 - a broken library file is not a course
            continue
    return out

"""Saving a finished session (the hook the CLI and the window call)."""

from __future__ import annotations

from dataclasses import dataclass

from .record import record_from_report
from .store import ProgressStore


@dataclass
class Saved:
    row_id: int | None  # None: kept pending (the database was down; see ``error``)
    record: object  # SessionRecord
    next_state: object | None  # the course's PatientState for the next session (None: no course)
    error: str | None = None


def course_state_for(store: ProgressStore, scenario, trainee: str, atlas=None):
    """The patient state the trainee's next course session of ``scenario`` starts in (a fresh
    course when none is saved, or when the last one is complete)."""
    from ..course import Course, PatientState

    course = Course(scenario, atlas)
    last = store.last_patient(trainee, scenario.id)
    if last is None:
        return course.start()
    st = PatientState.from_dict(last)
    if course.finished(st):
        return course.start()
    return st


def last_course_case(store: ProgressStore, trainee: str) -> str | None:
    """The case of the trainee's most recent course session (None: no course started)."""
    rows = [r for r in store.summary_rows(trainee) if r.get("course_session")]
    return rows[-1]["case_id"] if rows else None


def save_finished(session_or_report, trainee: str, *, store: ProgressStore | None = None, mode: str = "practice",
                  scenario=None, state=None, atlas=None, recording_path=None, duration_s=None,
                  keep_pending_on_error: bool = True, url: str | None = None) -> Saved:
    """Save one finished session for ``trainee``.

    ``session_or_report``: a finished :class:`~imssim.core.training.session.Session` (its events are
    summarised) or a :class:`~imssim.core.training.scoring.Report`. ``state``: the course's
    :class:`~imssim.core.training.course.PatientState` the session started in (the record then
    carries the patient before and after, and the next state is returned).

    When the database is down, :class:`~imssim.core.training.progress.store.ProgressUnavailable` is
    raised after the record was kept in a pending file (``keep_pending_on_error=False``:
    return a :class:`Saved` with ``error`` set instead). ``url``: the database when no
    ``store`` is given (default: the configured one)."""
    from .store import ProgressUnavailable

    report = getattr(session_or_report, "finished", None) or session_or_report
    if report is None or not hasattr(report, "total"):
        raise ValueError("the session is not finished (call finish() first)")
    events = getattr(session_or_report, "events", ())
    scenario = scenario if scenario is not None else getattr(session_or_report, "scenario", None)
    if recording_path is None and getattr(session_or_report, "recorder", None) is not None:
        recording_path = session_or_report.recorder.path
    patient, nxt, course_session = None, None, None
    if state is not None and scenario is not None and scenario.course is not None:
        from ..course import Course

        course = Course(scenario, atlas)
        nxt = course.advance(state, report)
        course_session = state.session
        before = state.to_dict()
        before.pop("history", None)
        patient = {"before": before, "after": nxt.to_dict(), "expected": [round(x, 4) for x in course.expected_curve()],
                   "sessions": course.sessions}
    rec = record_from_report(report, trainee, mode, events=events, course_session=course_session, patient=patient,
                             duration_s=duration_s, recording_path=recording_path)
    own = store is None
    try:
        if own:
            store = ProgressStore(url)
        try:
            return Saved(store.save(rec), rec, nxt)
        finally:
            if own:
                store.close()
    except ProgressUnavailable as e:
        if own and store is None:  # could not even open: keep it pending here
            from .store import configured_url, keep_pending

            path = keep_pending(rec, url or configured_url())
            e = ProgressUnavailable(f"{e}; the session is kept in {path} and will be saved next time")
        if keep_pending_on_error:
            raise e from None
        return Saved(None, rec, nxt, str(e))

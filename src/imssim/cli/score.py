"""``imssim score`` and ``imssim replay``: grade a recording or a placements file headless."""

from __future__ import annotations

import json
import sys

from .errors import UserError


def _case(args, scenario):
    from ..core.model.atlas import AtlasFileError
    from ..core.training.scenario import ScenarioError
    from ..core.training.case import open_case

    try:
        return open_case(scenario, atlas_name=getattr(args, "atlas", None))
    except ScenarioError as e:
        for i in e.issues[:-1]:
            print(i, file=sys.stderr)
        raise UserError(str(e.issues[-1])) from None
    except AtlasFileError as e:
        raise UserError(str(e)) from None


def _print(report, as_json: bool, extra: dict | None = None) -> int:
    if as_json:
        d = report.to_dict()
        if extra:
            d.update(extra)
        print(json.dumps(d, indent=1))
    else:
        print(report.format_text())
    return 0 if report.passed else 1


def _replay(args, path, scenario_arg=None, course=False):
    from ..core.training.recording import RecordingError, read_recording
    from ..core.training.session import Session, SessionError

    try:
        rec = read_recording(path)
    except RecordingError as e:
        raise UserError(str(e)) from None
    scen = scenario_arg or rec.header.get("scenario_path") or rec.header.get("scenario")
    case = _case(args, scen)
    atlas, sc = case.atlas, case.scenario
    state = _course_state(args, atlas, sc) if course else None
    hs = rec.header.get("patient_state")
    if course and hs and "initial" in hs and hs.get("case") == sc.id:
        from ..core.training.course import PatientState

        state = PatientState.from_dict(hs)  # the state the recorded session really started in
    try:
        s = Session.replay(rec, atlas, sc, index=case.index, patient_state=state)
    except SessionError as e:
        raise UserError(f"{path}: {e}") from None
    report = s.finish()
    recorded = [e for e in rec.events]
    mine = [e.to_dict() for e in s.events][: len(recorded)]
    same = mine == recorded
    diff = next((i for i, (x, y) in enumerate(zip(mine, recorded)) if x != y), None)
    if diff is None and not same:
        diff = min(len(mine), len(recorded))
    if rec.truncated:
        print(f"imssim: note: {path}: the last record was cut off (the session ended mid-write); "
              "graded up to the record before it", file=sys.stderr)
    args._saved_with = (s, atlas, sc, state, path)
    return report, {"replay": {"recording": str(path), "truncated": rec.truncated,
                               "events_reproduced": same, "events": len(s.events),
                               "first_difference": None if same else {
                                   "index": diff, "replayed": mine[diff] if diff < len(mine) else None,
                                   "recorded": recorded[diff] if diff < len(recorded) else None}}}


def _course_state(args, atlas, sc):
    """--course: the patient state of the trainee's course of this case, from the store."""
    from ..core.training.course import CourseError
    from ..core.training.progress import ProgressError, ProgressStore, course_state_for

    if not args.save:
        raise UserError("--course needs --save (the course's state lives in the progress store)")
    if sc.course is None:
        raise UserError(str(CourseError(f"the case {sc.id!r} has no course (add a 'course:' block to run it as one)")))
    try:
        with ProgressStore(args.db) as st:
            return course_state_for(st, sc, _student(args), atlas)
    except ProgressError as e:
        raise UserError(str(e)) from None


def _student(args) -> str:
    import os

    who = args.student or os.environ.get("IMSSIM_TRAINEE")
    if not who:
        raise UserError("--save needs to know who: --student NAME (or set IMSSIM_TRAINEE)")
    return who


def _save(args, session, atlas, sc, state, recording=None) -> dict:
    """--save: keep the finished session in the progress store; the lines printed say where."""
    from ..core.training.progress import ProgressError, ProgressStore, ProgressUnavailable, save_finished

    try:
        store = ProgressStore(args.db)
    except ProgressUnavailable as e:
        store = None
        err = e
    except ProgressError as e:
        raise UserError(str(e)) from None
    try:
        if store is None:
            from ..core.training.progress.record import record_from_report
            from ..core.training.progress.store import configured_url, keep_pending

            rec = record_from_report(session.finished, _student(args), args.mode, events=session.events,
                                     recording_path=recording)
            p = keep_pending(rec, args.db or configured_url())
            print(f"imssim: error: {err}; the session is kept in {p} and will be saved next time", file=sys.stderr)
            return {"saved": False, "pending": str(p)}
        try:
            saved = save_finished(session, _student(args), store=store, mode=args.mode, scenario=sc, state=state,
                                  atlas=atlas, recording_path=recording)
        except ProgressUnavailable as e:
            print(f"imssim: error: {e}", file=sys.stderr)
            return {"saved": False}
        out = {"saved": True, "id": saved.row_id, "student": saved.record.trainee, "db": store.masked}
        if saved.next_state is not None:
            nxt = saved.next_state
            out["course"] = {"session": state.session, "of": sc.course.sessions, "next": nxt.session,
                             "pain": nxt.pain, "resolved": nxt.resolved, "findings": nxt.findings(atlas)}
        if not args.json:
            msg = f"Saved for {out['student']} in {out['db']}."
            if "course" in out:
                c = out["course"]
                msg += (f" Course session {c['session']} of {c['of']}; next time: pain {c['pain']}/10"
                        + (", resolved." if c["resolved"] else "."))
            print(msg)
        return out
    finally:
        if store is not None:
            store.close()


def cmd_score(args) -> int:
    from ..core.training.placements import PlacementsError, load_placements
    from ..core.training.recording import is_recording
    from ..core.training.session import grade_placements

    if args.save:
        _student(args)
    if args.course and not args.save:
        raise UserError("--course needs --save (the course's state lives in the progress store)")
    if is_recording(args.file):
        report, extra = _replay(args, args.file, args.scenario, course=args.course)
        if args.save:
            s, atlas, sc, state, path = args._saved_with
            extra["progress"] = _save(args, s, atlas, sc, state, recording=path)
        return _print(report, args.json, extra)
    case = _case(args, args.scenario)
    atlas, sc, index = case.atlas, case.scenario, case.index
    state = _course_state(args, atlas, sc) if args.course else None
    try:
        specs = load_placements(args.file, index)
    except PlacementsError as e:
        raise UserError(str(e)) from None
    report, session = grade_placements(atlas, sc, specs, index, seed=args.seed, patient_state=state,
                                       return_session=True)
    extra = {"progress": _save(args, session, atlas, sc, state)} if args.save else None
    return _print(report, args.json, extra)


def cmd_replay(args) -> int:
    report, extra = _replay(args, args.recording, args.scenario)
    if not args.json:
        r = extra["replay"]
        print(f"Replayed {r['events']} events from {args.recording}"
              + ("; the recorded events were reproduced." if r["events_reproduced"]
                 else "; WARNING: the events differ from the recorded ones."))
    return _print(report, args.json, extra)


def register(sub) -> None:
    p = sub.add_parser("score", help="grade a recording or a placements file without the window",
                       description="Grade a session recording (.jsonl) or a placements file (YAML/JSON) "
                                   "against a scenario; exit 0 on pass, 1 on fail.")
    p.add_argument("scenario", help="scenario file or library id")
    p.add_argument("file", help="a session recording or a placements file")
    p.add_argument("--json", action="store_true", help="print the JSON report")
    p.add_argument("--seed", type=int, default=0, help="physiology seed for placements (default 0)")
    p.add_argument("--save", action="store_true", help="keep the session in the progress store (docs/progress.md)")
    p.add_argument("--student", help="with --save: trainee name or id (default: IMSSIM_TRAINEE)")
    p.add_argument("--mode", choices=["practice", "quiz", "exam"], default="practice", help="with --save")
    p.add_argument("--course", action="store_true",
                   help="with --save: this is the trainee's next session of the case's course (the patient "
                        "starts where the last one left them)")
    p.add_argument("--db", metavar="URL", help="progress database URL (default: IMSSIM_DB_URL or settings)")
    p.set_defaults(func=cmd_score)
    r = sub.add_parser("replay", help="re-run a session recording and re-score it",
                       description="Replay a recording through a fresh session and print its score.")
    r.add_argument("recording")
    r.add_argument("--scenario", help="override the scenario named in the recording")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_replay)

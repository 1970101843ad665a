"""``imssim progress``, ``imssim class list|add|report`` and ``imssim course show``: training
over time (docs/progress.md). No Qt, no pyvista: matplotlib (Agg) draws the plots."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .errors import UserError


def _store(args):
    from ..core.training.progress import ProgressError, ProgressStore

    try:
        return ProgressStore(getattr(args, "db", None))
    except ProgressError as e:
        raise UserError(str(e)) from None


def _who(value, env: str, what: str) -> str:
    who = value or os.environ.get(env)
    if not who:
        raise UserError(f"say who you are: --{what} NAME (or set {env})")
    return who


def _write_html(path: str, text: str) -> None:
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    print(f"wrote {p} ({p.stat().st_size // 1024} KiB)", file=sys.stderr)


def cmd_progress(args) -> int:
    from ..core.training.progress import report

    who = _who(args.student, "IMSSIM_TRAINEE", "student")
    with _store(args) as st:
        if st.role_of(who) is None:
            raise UserError(f"no sessions saved for {who!r} in {st.masked}")
        rows = st.summary_rows(who, args.case)
    if args.html:
        _write_html(args.html, report.student_html(rows, who, args.case))
    data = report.student_data(rows)
    if args.json:
        print(json.dumps({"student": who, "case": args.case, **data}, indent=1, default=str))
        return 0
    if args.html:
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{who}: {data['attempts']} session(s), {data['passed']} passed")
    for c in ("#", "case", "mode", "course", "score", "result", "level err", "clearance"):
        t.add_column(c, justify="right" if c in ("#", "course", "score", "level err", "clearance") else "left",
                     no_wrap=True)
    for s in data["sessions"]:
        t.add_row(str(s["attempt"]), s["case"], s["mode"], str(s["course_session"] or ""), f"{s['total']:.0f}%",
                  "pass" if s["passed"] else "FAIL", "" if s["level_error"] is None else f"{s['level_error']:g}",
                  "" if s["min_clearance_mm"] is None else f"{s['min_clearance_mm']:.0f} mm")
    con = Console()
    (con if con.is_terminal else Console(width=120)).print(t)  # piped: wide enough for the case ids
    for f, v in data["families"].items():
        if v["change"] is not None:
            print(f"  {f:15s} {100 * v['first']:5.1f}% -> {100 * v['last']:5.1f}%")
    if data["mistakes"]:
        print("  most frequent: " + "; ".join(f"{m} ({n})" for m, n in list(data["mistakes"].items())[:3]))
    return 0


def _instructor(args, st) -> str:
    who = _who(args.instructor, "IMSSIM_INSTRUCTOR", "instructor")
    if st.role_of(who) != "instructor":
        raise UserError(f"{who!r} is not an instructor in {st.masked}; add one with: "
                        f"imssim class add {who!r} --role instructor")
    return who


def cmd_class_add(args) -> int:
    from ..core.training.progress import ProgressError

    with _store(args) as st:
        try:
            st.add_trainee(args.name, args.role)
        except ProgressError as e:
            raise UserError(str(e)) from None
        print(f"{args.name}: {args.role} in {st.masked}")
    return 0


def cmd_class_list(args) -> int:
    with _store(args) as st:
        _instructor(args, st)
        people = st.trainees()
    if args.json:
        print(json.dumps(people, indent=1))
        return 0
    for p in people:
        print(f"{p['name']:30s} {p['role']:10s} {p['sessions']:5d} session(s)")
    return 0


def cmd_class_report(args) -> int:
    from ..core.training.progress import report

    with _store(args) as st:
        _instructor(args, st)
        rows = st.summary_rows(None, args.case)
    _write_html(args.html, report.class_html(rows, args.case))
    if args.json:
        print(json.dumps(report.class_data(rows), indent=1))
    return 0


def cmd_course_show(args) -> int:
    from ..core.training.course import CourseError
    from ..core.training.progress import course_state_for
    from .score import _case

    who = _who(args.student, "IMSSIM_TRAINEE", "student")
    case = _case(args, args.scenario)
    atlas, sc = case.atlas, case.scenario
    with _store(args) as st:
        try:
            state = course_state_for(st, sc, who, atlas)
        except CourseError as e:
            raise UserError(str(e)) from None
    if args.json:
        print(json.dumps({"student": who, "case": sc.id, "sessions": sc.course.sessions, **state.to_dict(),
                          "findings": state.findings(atlas), "changes": state.changes_since_last(atlas)}, indent=1))
        return 0
    print(f"{sc.title}: course session {state.session} of {sc.course.sessions} for {who}")
    for line in state.findings(atlas) + state.changes_since_last(atlas):
        print("  " + line)
    return 0


def _db_arg(p):
    p.add_argument("--db", metavar="URL", help="progress database URL (default: IMSSIM_DB_URL, settings, or the "
                                               "SQLite file in the data folder)")


def register(sub) -> None:
    p = sub.add_parser("progress", help="a trainee's progress: scores, trends, course recovery",
                       description="Show a trainee's saved sessions; --html writes a self-contained report "
                                   "with plots.")
    p.add_argument("--student", help="trainee name or id (default: IMSSIM_TRAINEE)")
    p.add_argument("--case", help="only this case (scenario id)")
    p.add_argument("--html", metavar="FILE", help="write the report with plots to FILE")
    p.add_argument("--json", action="store_true", help="print the data as JSON")
    _db_arg(p)
    p.set_defaults(func=cmd_progress)

    c = sub.add_parser("class", help="the instructor's view of a class (list, add, report)")
    cs = c.add_subparsers(dest="class_command", metavar="COMMAND", required=True)
    a = cs.add_parser("add", help="register a trainee or an instructor")
    a.add_argument("name")
    a.add_argument("--role", choices=["trainee", "instructor"], default="trainee")
    _db_arg(a)
    a.set_defaults(func=cmd_class_add)
    ls = cs.add_parser("list", help="list the class (instructors only)")
    ls.add_argument("--instructor", help="your name (default: IMSSIM_INSTRUCTOR)")
    ls.add_argument("--json", action="store_true")
    _db_arg(ls)
    ls.set_defaults(func=cmd_class_list)
    r = cs.add_parser("report", help="the class report with plots (instructors only)")
    r.add_argument("--html", metavar="FILE", required=True, help="write the report to FILE")
    r.add_argument("--case", help="only this case")
    r.add_argument("--instructor", help="your name (default: IMSSIM_INSTRUCTOR)")
    r.add_argument("--json", action="store_true", help="also print the data as JSON")
    _db_arg(r)
    r.set_defaults(func=cmd_class_report)

    co = sub.add_parser("course", help="a case run as a course of sessions")
    cos = co.add_subparsers(dest="course_command", metavar="COMMAND", required=True)
    sh = cos.add_parser("show", help="where a trainee's course of a case stands: the patient now")
    sh.add_argument("scenario", help="scenario file or library id (with a course: block)")
    sh.add_argument("--student", help="trainee name or id (default: IMSSIM_TRAINEE)")
    sh.add_argument("--json", action="store_true")
    _db_arg(sh)
    sh.set_defaults(func=cmd_course_show)

"""``imssim score`` and ``imssim replay``: grade a recording or a placements file headless."""

from __future__ import annotations

import json
import sys

from .errors import UserError


def _case(args, scenario):
    from ..core.atlas import AtlasFileError
    from ..core.scenario import ScenarioError
    from ..core.session import open_case

    try:
        return open_case(scenario, getattr(args, "atlas", None))
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


def _replay(args, path, scenario_arg=None):
    from ..core.recording import RecordingError, read_recording
    from ..core.session import Session, SessionError

    try:
        rec = read_recording(path)
    except RecordingError as e:
        raise UserError(str(e)) from None
    scen = scenario_arg or rec.header.get("scenario_path") or rec.header.get("scenario")
    atlas, sc = _case(args, scen)
    try:
        s = Session.replay(rec, atlas, sc)
    except SessionError as e:
        raise UserError(f"{path}: {e}") from None
    report = s.finish()
    recorded = [e for e in rec.events]
    same = [e.to_dict() for e in s.events][: len(recorded)] == recorded
    if rec.truncated:
        print(f"imssim: note: {path}: the last record was cut off (the session ended mid-write); "
              "graded up to the record before it", file=sys.stderr)
    return report, {"replay": {"recording": str(path), "truncated": rec.truncated,
                               "events_reproduced": same, "events": len(s.events)}}


def cmd_score(args) -> int:
    from ..core.placements import PlacementsError, load_placements
    from ..core.recording import is_recording
    from ..core.session import grade_placements

    if is_recording(args.file):
        report, extra = _replay(args, args.file, args.scenario)
        return _print(report, args.json, extra)
    atlas, sc = _case(args, args.scenario)
    from ..core.traversal import TissueIndex

    index = TissueIndex(atlas)
    try:
        specs = load_placements(args.file, index)
    except PlacementsError as e:
        raise UserError(str(e)) from None
    report = grade_placements(atlas, sc, specs, index, seed=args.seed)
    return _print(report, args.json)


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
    p.set_defaults(func=cmd_score)
    r = sub.add_parser("replay", help="re-run a session recording and re-score it",
                       description="Replay a recording through a fresh session and print its score.")
    r.add_argument("recording")
    r.add_argument("--scenario", help="override the scenario named in the recording")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_replay)

"""Recording format, crash tolerance, replay, placements files and the score/replay commands."""

from __future__ import annotations

import json

import pytest

from imssim.cli import main
from imssim.core.training.placements import PlacementsError, load_placements
from imssim.core.training.recording import VERSION, RecordingError, read_recording
from imssim.core.training.session import Session

from needle_helpers import needle_into


def _session(index, l5, path, seed=11):
    s = Session(index.atlas, l5, seed=seed, index=index, record_to=path)
    e, d, depth = needle_into(index, "gluteus_medius_r")
    s.insert_needle(e, d, depth - 6, length_mm=75, t=1.0)
    s.palpate("right gluteus medius", t=1.5)
    for k in range(6):
        s.advance(0, 1.0, t=2.0 + k)
        s.piston(0, 3.0, t=2.5 + k)
    s.redirect(0, d + [0.05, 0, 0], t=9.0)
    s.advance(0, 20.0, t=10.0)
    e2, d2, dep2 = needle_into(index, "multifidus_L5_r")
    s.insert_needle(e2, d2, dep2, length_mm=75, t=11.0)
    s.withdraw(1, 2.0, t=12.0)
    s.remove(0, t=13.0)
    return s


def test_recording_holds_every_pose_and_event_and_replay_reproduces(index, l5, tmp_path):
    path = tmp_path / "s.jsonl"
    s = _session(index, l5, path)
    # written as the session goes: the file already has the poses before finish
    mid = read_recording(path)
    assert len(mid.poses) == len([p for n in s.needles for p in n.poses])
    rep = s.finish(t=14.0)
    rec = read_recording(path)
    assert rec.header["version"] == VERSION and rec.header["seed"] == 11 and rec.header["scenario"] == l5.id
    assert not rec.truncated
    assert len(rec.events) == len(s.events) and rec.events == [e.to_dict() for e in s.events]
    assert all("t" in r for r in rec.records)
    assert rec.records[-1]["type"] == "report"
    r2 = Session.replay(rec, index.atlas, l5, index=index)
    assert [e.to_dict() for e in r2.events] == rec.events
    rep2 = r2.finish()
    assert rep2.to_dict() == rep.to_dict()
    assert any(e.kind == "twitch" for e in s.events) or any(e.kind == "grasp" for e in s.events)


def test_a_crash_loses_at_most_the_last_record(index, l5, tmp_path):
    path = tmp_path / "crash.jsonl"
    s = _session(index, l5, path)
    n_events = len(s.events)
    # simulate a crash mid-write: the last line is cut off
    text = path.read_text()
    path.write_text(text[: len(text) - 7])
    rec = read_recording(path)
    assert rec.truncated
    assert len(rec.records) == len(text.splitlines()) - 2  # header and the cut record not in records
    r2 = Session.replay(rec, index.atlas, l5, index=index)
    assert len(r2.events) >= n_events - 3


def test_bad_recordings_name_the_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"format": "imssim-recording", "version": 1}\n{oops\n{"type": "event"}\n')
    with pytest.raises(RecordingError, match="line 2"):
        read_recording(p)
    p.write_text('{"format": "imssim-recording", "version": 99}\n')
    with pytest.raises(RecordingError, match="version"):
        read_recording(p)


def test_placements_file_landmark_and_absolute(index, tmp_path):
    e, d, depth = needle_into(index, "multifidus_L5_r")
    doc = {"version": 1, "needles": [
        {"landmark": "L5_spinous", "lateral_mm": 20, "side": "right", "cranial_mm": 16, "depth": 30},
        {"entry": e.tolist(), "toward": (e + d * depth).tolist(), "length_mm": 75},
        {"entry": e.tolist(), "direction": d.tolist(), "depth": depth, "length_mm": 75}]}
    p = tmp_path / "p.json"
    p.write_text(json.dumps(doc))
    specs = load_placements(p, index)
    assert specs[1].placement.depth == pytest.approx(depth)
    assert specs[0].placement.entry[0] < 0  # right of the midline
    y = tmp_path / "p.yaml"
    y.write_text("version: 1\nneedles:\n  - landmark: L5_spinous\n    lateral_mm: 20\n    side: right\n    depth: 30\n")
    assert len(load_placements(y, index)) == 1


@pytest.mark.parametrize("needle,msg", [
    ({"landmark": "L5_spinus", "depth": 30}, "needles[0].landmark"),
    ({"landmark": "L5_spinous", "side": "up", "depth": 30}, "needles[0].side"),
    ({"entry": [0, 1], "direction": [0, -1, 0], "depth": 3}, "needles[0].entry"),
    ({"entry": [0, 300, 1000], "direction": [0, -1, 0]}, "needles[0].depth: required"),
    ({"entry": [0, 300, 1000], "direction": [0, -1, 0], "depth": 60, "length_mm": 50}, "exceeds"),
    ({"landmark": "L5_spinous", "depth": 30, "colour": 1}, "needles[0].colour"),
])
def test_bad_placements_name_the_field(index, tmp_path, needle, msg):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"version": 1, "needles": [needle]}))
    with pytest.raises(PlacementsError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        load_placements(p, index)


def test_cli_score_and_replay(index, l5, tmp_path, capsys):
    e, d, depth = needle_into(index, "multifidus_L5_r")
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"version": 1, "needles": [{"entry": e.tolist(), "direction": d.tolist(), "depth": depth,
                                                        "length_mm": 75}]}))
    code = main(["score", "l5-radiculopathy-low-back", str(p), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["needles"][0]["structure"] == "multifidus_L5_r" and out["needles"][0]["target"]
    assert code == (0 if out["passed"] else 1)
    code = main(["score", "l5-radiculopathy-low-back", str(p)])
    text = capsys.readouterr().out
    assert "Needle 1 is in the right multifidus L5" in text and "level_error" in text
    # a recording: score and replay give the recorded total
    rp = tmp_path / "r.jsonl"
    rep = _session(index, l5, rp).finish(t=14.0)
    main(["replay", str(rp), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["replay"]["events_reproduced"], out["replay"]
    assert out["total"] == pytest.approx(rep.total, abs=0.01)
    main(["score", "l5-radiculopathy-low-back", str(rp), "--json"])
    assert json.loads(capsys.readouterr().out)["total"] == pytest.approx(rep.total, abs=0.01)
    # bad input: one line, exit 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "needles": []}')
    assert main(["score", "l5-radiculopathy-low-back", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needles" in err


def test_placements_examples_in_the_docs_parse(index, tmp_path):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "placements.md").read_text()
    blocks = re.findall(r"```(yaml|json)\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    for k, (lang, body) in enumerate(blocks):
        p = tmp_path / f"ex{k}.{lang}"
        p.write_text(body)
        specs = load_placements(p, index)
        assert specs and all(s.placement.depth > 0 for s in specs)


def test_a_refused_call_is_recorded_and_refused_again_on_replay(index, l5, tmp_path):
    from imssim.core.training.session import SessionError

    path = tmp_path / "refused.jsonl"
    s = Session(index.atlas, l5, seed=2, index=index, record_to=path)
    e, d, depth = needle_into(index, "multifidus_L5_r")
    s.insert_needle(e, d, depth, length_mm=75, t=0.0)
    with pytest.raises(SessionError, match="needle 5"):
        s.advance(5, 2.0, t=1.0)
    with pytest.raises(SessionError):
        s.insert_needle(e, d, 80.0, length_mm=50, t=2.0)  # deeper than the needle
    rep = s.finish(t=3.0)
    r2 = Session.replay(read_recording(path), index.atlas, l5, index=index)
    assert r2.finish().to_dict() == rep.to_dict()


def test_segment_call_and_palpation_place_are_recorded_replayed_and_reported(index, l5, tmp_path):
    path = tmp_path / "call.jsonl"
    s = Session(index.atlas, l5, seed=3, index=index, record_to=path)
    s.palpate("multifidus_L5_r", t=1.0, point=[-15.0, 250.0, 1000.0], normal=[0.0, 1.0, 0.0])
    s.mark_segments(["L4"], t=2.0)
    s.mark_segments(["L5"], t=3.0)  # a later call replaces the earlier one
    with pytest.raises(Exception, match="segment 'X9'"):
        s.mark_segments(["X9"], t=4.0)
    rep = s.finish(t=5.0)
    assert rep.segment_call == {"marked": ["L5"], "case": list(l5.diagnosis.segments), "right": True,
                                "sentence": "Segment call: L5, as in this case."}
    assert "Segment call: L5" in rep.format_text() and rep.to_dict()["segment_call"]["right"] is True
    rec = read_recording(path)
    acts = [a for a in rec.actions if a["name"] in ("palpate", "mark")]
    assert acts[0]["point"] == [-15.0, 250.0, 1000.0] and acts[0]["normal"] == [0.0, 1.0, 0.0]
    assert [a["segments"] for a in acts[1:]] == [["L4"], ["L5"]]
    r2 = Session.replay(rec, index.atlas, l5, index=index)
    assert r2.marked_segments == ["L5"] and r2.finish().to_dict() == rep.to_dict()
    wrong = Session(index.atlas, l5, seed=3, index=index)
    wrong.mark_segments(["L4", "L5"])
    assert wrong.finish().segment_call["right"] is False

"""Issue 22: nothing lost, nothing escapes.

Hostile files (made here by the tests), damaged atlas caches, names that would become
paths outside the cache, files that must not be overwritten, a killed session resumed,
and the exit codes the README promises.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from imssim.cli import main
from imssim.core.safefile import SafeFileError, loads_json, loads_yaml, read_data

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- the safe reader
def _laughs(levels: int = 9) -> str:
    """The 'billion laughs' placements file: each level aliases the one before ten times."""
    lines = ["version: 1", 'a0: &a0 "lol"']
    for k in range(1, levels):
        lines.append(f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * 10) + "]")
    lines.append("needles:")
    lines.append("  - {entry: [0, 0, 0], direction: [0, 1, 0], depth: 10, label: *a%d}" % (levels - 1))
    return "\n".join(lines) + "\n"


def test_alias_bomb_placements_refused_fast(tmp_path, index):
    from imssim.core.training.placements import PlacementsError, load_placements

    p = tmp_path / "bomb.yaml"
    p.write_text(_laughs())
    assert p.stat().st_size < 2000
    t0 = time.perf_counter()
    with pytest.raises(PlacementsError) as e:
        load_placements(p, index)
    assert time.perf_counter() - t0 < 1.0
    msg = str(e.value)
    assert msg.startswith(f"{p}:3: a1[0]: ") and "anchors and aliases" in msg and "*a0" in msg and "\n" not in msg


@pytest.mark.parametrize("text,line,field,what", [
    ("a: 1\nb: *x\n", 2, "b", "anchors and aliases"),              # an undefined alias
    ("a: &x 1\nb: *x\n", 2, "b", "anchors and aliases"),             # a scalar alias
    ("a: &x 1\n", 1, "a", "anchors and aliases"),                    # an anchor alone
    ("needles:\n  - {label: !!python/object/apply:os.system [true]}\n", 2, "needles[0].label", "tag"),
    ("a: !!str 3\n", 1, "a", "tag"),
    ("a: !custom {b: 1}\n", 1, "a", "tag"),
    ("x: {a: 1}\ny:\n  <<: {b: 2}\n", 3, "y", "merge keys"),
    ("? [a, b]\n: 1\n", 1, "", "key must be plain text"),
])
def test_yaml_refusals_name_file_line_and_field(text, line, field, what):
    with pytest.raises(SafeFileError) as e:
        loads_yaml(text, "f.yaml")
    assert e.value.line == line and e.value.field == field and what in str(e.value), str(e.value)
    assert str(e.value).startswith(f"f.yaml:{line}: ") and "\n" not in str(e.value)


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_100000_deep_nesting_refused_fast(tmp_path, fmt):
    p = tmp_path / f"deep.{fmt}"
    p.write_text("[" * 100_000 + "]" * 100_000)
    t0 = time.perf_counter()
    with pytest.raises(SafeFileError) as e:
        read_data(p)
    assert time.perf_counter() - t0 < 2.0
    assert "nested more than 64 levels deep" in str(e.value) and e.value.line == 1


def test_json_reader_refuses_nan_and_names_the_line():
    with pytest.raises(SafeFileError, match="NaN is not allowed"):
        loads_json('{"a": NaN}', "f.json")
    with pytest.raises(SafeFileError) as e:
        loads_json('{\n"a": 1,\n}', "f.json")
    assert e.value.line == 3
    # brackets inside strings are not nesting
    assert loads_json(json.dumps({"s": "[" * 1000})) == {"s": "[" * 1000}


def test_size_cap_checked_before_reading(tmp_path):
    p = tmp_path / "big.yaml"
    p.write_text("a: " + "x" * 5000 + "\n")
    with pytest.raises(SafeFileError, match="over the 1000-byte limit"):
        read_data(p, max_bytes=1000)


def test_manifest_and_settings_use_the_safe_reader(tmp_path, monkeypatch):
    from imssim.core.model import store
    from imssim.core.model.importer import ManifestError, load_manifest

    p = tmp_path / "m.yaml"
    p.write_text("name: &n a\nattributions: [{source: s, licence: l, attribution: *n}]\n"
                 "structures: [{file: a.stl, id: a, name: a, kind: bone, side: midline}]\n")
    with pytest.raises(ManifestError, match="anchors and aliases"):
        load_manifest(p)
    monkeypatch.setenv("IMSSIM_CONFIG_DIR", str(tmp_path / "cfg"))
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "settings.json").write_text("[" * 100_000)
    assert store.read_settings() == {}  # damaged settings: the defaults, not a crash
    assert store.current_atlas_name() == "builtin"


# ----------------------------------------------------------------------------- the atlas cache
def _toy():
    import trimesh

    from imssim.core.model.atlas import Atlas, Landmark, Structure

    m = trimesh.creation.box(bounds=[(-10, -10, 0), (10, 10, 20)])
    m2 = trimesh.creation.box(bounds=[(-5, -5, 2), (5, 5, 18)])
    return Atlas("builtin", [Structure("skin", "skin", "skin", "midline", "lumbar", m.vertices, m.faces),
                             Structure("bone", "bone", "bone", "midline", "lumbar", m2.vertices, m2.faces)],
                 [Landmark("L5_spinous", "L5 spinous process", (0.0, 10.0, 10.0))])


def _damage(path: Path, how: str) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(bytes(arrays["header"]).decode())
    if how == "header_list":
        header = [1, 2]
    elif how == "header_no_structures":
        del header["structures"]
    elif how == "header_structures_text":
        header["structures"] = "abc"
    elif how == "header_id_number":
        header["structures"][0]["id"] = 5
    elif how == "header_bad_landmark":
        header["landmarks"][0]["position"] = [1, 2]
    elif how == "header_deep":
        arrays["header"] = np.frombuffer(("[" * 100_000 + "]" * 100_000).encode(), np.uint8)
        header = None
    elif how == "header_floats":
        arrays["header"] = np.zeros(5, np.float64)
        header = None
    elif how == "nan_vertices":
        arrays["vertices"] = arrays["vertices"].copy()
        arrays["vertices"][3, 1] = np.nan
    elif how == "faces_out_of_range":
        arrays["faces"] = arrays["faces"].copy()
        arrays["faces"][0, 0] = 10_000
    elif how == "faces_negative":
        arrays["faces"] = arrays["faces"].copy()
        arrays["faces"][-1, 2] = -1
    elif how == "faces_2d":
        arrays["faces"] = arrays["faces"][:, :2].copy()
    elif how == "voff_short":
        arrays["voff"] = arrays["voff"][:-1]
    elif how == "voff_past_end":
        arrays["voff"] = arrays["voff"].copy()
        arrays["voff"][-1] += 5
    elif how == "no_faces":
        del arrays["faces"]
    if header is not None:
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


DAMAGES = ["header_list", "header_no_structures", "header_structures_text", "header_id_number",
           "header_bad_landmark", "header_deep", "header_floats", "nan_vertices", "faces_out_of_range",
           "faces_negative", "faces_2d", "voff_short", "voff_past_end", "no_faces"]


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_cache_is_refused_warned_and_rebuilt(tmp_path, monkeypatch, caplog, how):
    from imssim.core.model import store
    from imssim.core.model.atlas import Atlas, AtlasFileError

    monkeypatch.setenv("IMSSIM_CACHE_DIR", str(tmp_path))
    path = store.builtin_path()
    good = _toy()
    good.meta["cache_key"] = store.builtin_key()
    good.save(path)
    assert len(Atlas.load(path)) == 2  # the undamaged file loads
    _damage(path, how)
    with pytest.raises(AtlasFileError) as e:
        Atlas.load(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    builds = []

    def build(progress=None):
        builds.append(1)
        a = _toy()
        a.meta["cache_key"] = store.builtin_key()
        return a

    monkeypatch.setattr(store, "build_builtin", build)
    with caplog.at_level("WARNING"):
        a = store.load_builtin(habitus=None)
    assert builds == [1] and len(a) == 2
    assert any("rebuilding" in r.getMessage() for r in caplog.records)
    assert len(Atlas.load(path)) == 2  # the file on disk is sound again


# ----------------------------------------------------------------------------- names that become paths
@pytest.mark.parametrize("bad", ["../../x/ESCAPED", "a/b", "a\\b", "..", ".hidden", "", "x" * 65, "a b", "builtin",
                                 "BUILTIN"])
def test_unsafe_atlas_names_refused(bad):
    from imssim.core.model import store

    with pytest.raises(store.AtlasNameError):
        store.imported_path(bad)


def test_import_name_escape_refused_and_nothing_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IMSSIM_CACHE_DIR", str(tmp_path / "cache"))
    work = tmp_path / "work" / "a" / "b"
    work.mkdir(parents=True)
    m = work / "m.yaml"
    m.write_text("name: a\nattributions: [{source: s, licence: l, attribution: a}]\n"
                 "structures: [{file: a.stl, id: a, name: a, kind: bone, side: midline}]\n")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    for name in ("../../../x/ESCAPED", "builtin"):
        assert main(["atlas", "import", str(m), "--name", name]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("imssim: error: atlas name") and len(err.splitlines()) == 1
    assert main(["--atlas", "../../../x/ESCAPED", "atlas", "info"]) == 2
    assert "--atlas" in capsys.readouterr().err
    assert main(["atlas", "use", "../x"]) == 2
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing written anywhere


def test_import_does_not_overwrite_an_atlas_without_force(tmp_path, monkeypatch, capsys):
    from imssim.core.model import store

    monkeypatch.setenv("IMSSIM_CACHE_DIR", str(tmp_path / "cache"))
    taken = store.imported_path("taken")
    taken.parent.mkdir(parents=True)
    taken.write_bytes(b"the earlier import")
    m = tmp_path / "m.yaml"
    m.write_text("name: taken\nattributions: [{source: s, licence: l, attribution: a}]\n"
                 "structures: [{file: a.stl, id: a, name: a, kind: bone, side: midline}]\n")
    assert main(["atlas", "import", str(m)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err
    assert taken.read_bytes() == b"the earlier import"
    # with --force it goes on (and fails later on the missing mesh, still a one-line error)
    assert main(["atlas", "import", str(m), "--force"]) == 2
    assert "a.stl" in capsys.readouterr().err


def test_scenario_schema_does_not_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "schema.json"
    out.write_text("mine")
    assert main(["scenario", "schema", "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_text() == "mine"
    assert main(["scenario", "schema", "-o", str(out), "--force"]) == 0
    assert json.loads(out.read_text())["title"]


# ----------------------------------------------------------------------------- recordings
def test_session_never_truncates_a_recording_and_fsyncs_when_idle(index, tmp_path):
    from imssim.core.training.recording import RecordingWriter
    from imssim.core.training.session import Session, SessionError

    p = tmp_path / "r.jsonl"
    p.write_text("earlier work\n")
    with pytest.raises(SessionError, match="already exists"):
        Session(index.atlas, None, index=index, record_to=p)
    assert p.read_text() == "earlier work\n"
    w = RecordingWriter(tmp_path / "w.jsonl", {}, fsync_interval_s=0.05)
    w.write({"type": "action", "name": "finish", "t": 0.0})
    assert w.syncs == 0
    time.sleep(0.3)  # idle: the timer syncs the last records
    assert w.syncs == 1
    w.close()
    assert w.syncs == 2


def test_redirect_with_zero_direction_raises_session_error(index):
    from imssim.core.training.session import Session, SessionError

    from needle_helpers import needle_into

    s = Session(index.atlas, None, index=index)
    e, d, depth = needle_into(index, "multifidus_L5_r")
    s.insert_needle(e, d, depth, length_mm=75, t=0.0)
    with pytest.raises(SessionError, match="direction"):
        s.redirect(0, [0, 0, 0], t=1.0)
    with pytest.raises(SessionError, match="mm"):
        s.advance(0, "abc", t=1.0)


KILLED = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from imssim.core.model import store
    from imssim.core.training.scenario import load_scenario
    from imssim.core.training.session import Session, SessionError
    from imssim.core.engines.traversal import TissueIndex
    from needle_helpers import needle_into
    atlas = store.load_builtin()
    index = TissueIndex(atlas)
    sc = load_scenario("l5-radiculopathy-low-back", atlas)
    s = Session(atlas, sc, seed=7, index=index, record_to={path!r})
    e, d, depth = needle_into(index, "multifidus_L5_r")
    s.insert_needle(e, d, depth, length_mm=75, t=1.0)
    e2, d2, dep2 = needle_into(index, "gluteus_medius_r")
    s.insert_needle(e2, d2, dep2 - 5, length_mm=75, t=2.0)
    s.remove(0, t=3.0)
    for call in (lambda: s.advance(0, 2.0, t=4.0), lambda: s.insert_needle(e, d, 80.0, length_mm=50, t=5.0)):
        try:
            call()  # refused: the needle has been removed / deeper than the needle
        except SessionError:
            pass
    s.advance(1, 2.0, t=6.0)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_killed_session_with_refused_actions_resumes(index, l5, tmp_path):
    from imssim.core.training.recording import read_recording
    from imssim.core.training.session import Session, resume_session

    path = tmp_path / "killed.jsonl"
    code = KILLED.format(tests=str(REPO / "tests"), path=str(path))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert p.returncode == -signal.SIGKILL, p.stderr
    rec = read_recording(path)
    assert [r["name"] for r in rec.records if r["type"] == "refused"] == ["advance", "insert"]
    assert "removed" in next(r for r in rec.records if r["type"] == "refused")["reason"]
    out = tmp_path / "resumed.jsonl"
    s = resume_session(rec, index.atlas, l5, out, index=index)
    assert [a["name"] for a in s.skipped] == ["advance", "insert"]
    assert s.needles[0].removed and not s.needles[1].removed
    assert s.needles[1].poses[-1].depth == pytest.approx(rec.poses[-1]["depth"])
    assert s.recorder.path == out and sorted(x.name for x in tmp_path.iterdir()) == ["killed.jsonl", "resumed.jsonl"]
    s.advance(1, 1.0, t=7.0)  # and the trainee carries on
    rep = s.finish(t=8.0)
    # the resumed recording stands on its own: replay gives the same score
    again = Session.replay(read_recording(out), index.atlas, l5, index=index)
    assert again.finish().to_dict() == rep.to_dict()
    # the same recording through `imssim replay`: fine too (exit 0 or 1, never 2 or 3)
    assert main(["replay", str(path)]) in (0, 1)


def test_failed_resume_leaves_no_file(index, l5, tmp_path):
    from imssim.core.training.recording import RecordingError
    from imssim.core.training.session import Session, resume_session

    from needle_helpers import needle_into

    path = tmp_path / "a.jsonl"
    s = Session(index.atlas, l5, seed=3, index=index, record_to=path)
    e, d, depth = needle_into(index, "multifidus_L5_r")
    s.insert_needle(e, d, depth, length_mm=75, t=1.0)
    s.advance(0, 1.0, t=2.0)
    s.close()
    text = path.read_text().replace('"mm":1.0', '"mm":"abc"')
    path.write_text(text)
    line = next(k for k, ln in enumerate(text.splitlines(), 1) if '"abc"' in ln)
    out = tmp_path / "out" / "resumed.jsonl"
    out.parent.mkdir()
    with pytest.raises(RecordingError) as err:
        resume_session(path, index.atlas, l5, out, index=index)
    msg = str(err.value)
    assert f"{path}: line {line}: " in msg and "field mm" in msg and "'abc'" in msg
    assert list(out.parent.iterdir()) == []  # no stray partial recording
    assert main(["replay", str(path)]) == 2


# ----------------------------------------------------------------------------- exit codes
def test_exit_codes(tmp_path, capsys, monkeypatch, index):
    import imssim.cli.scenario as cli_scenario

    # 0: ok
    assert main(["scenario", "validate", "l5-radiculopathy-low-back", "-q"]) == 0
    # 1: a failed grade
    pl = tmp_path / "one.json"
    pl.write_text(json.dumps({"version": 1, "needles": [{"landmark": "L5_spinous", "lateral_mm": 20, "side": "right",
                                                         "depth": 20}]}))
    assert main(["score", "l5-radiculopathy-low-back", str(pl)]) == 1
    # 2: bad input (a hostile file), one line, no traceback
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_laughs())
    capsys.readouterr()
    assert main(["score", "l5-radiculopathy-low-back", str(bomb)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imssim: error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    # 2: usage
    with pytest.raises(SystemExit) as e:
        main(["score"])
    assert e.value.code == 2
    capsys.readouterr()

    # 3: an internal error: one line, the traceback only with --debug or IMSSIM_DEBUG=1
    def boom(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli_scenario, "cmd_schema", boom)
    monkeypatch.delenv("IMSSIM_DEBUG", raising=False)
    assert main(["scenario", "schema"]) == 3
    err = capsys.readouterr().err
    assert err.strip() == "imssim: internal error: RuntimeError: a bug (run with --debug or IMSSIM_DEBUG=1 for the traceback)"
    assert main(["--debug", "scenario", "schema"]) == 3
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("IMSSIM_DEBUG", "1")
    assert main(["scenario", "schema"]) == 3
    assert "Traceback" in capsys.readouterr().err


def test_exit_codes_are_in_the_readme():
    text = (REPO / "README.md").read_text()
    sec = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |"):
        assert code in sec
    assert "--debug" in sec and "IMSSIM_DEBUG" in sec
